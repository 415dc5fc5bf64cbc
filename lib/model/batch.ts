/**
 * Left-padded batches. Left padding puts every row's last real token in the same column, so
 * greedy decoding appends one column for all rows at once and a KV cache stays rectangular.
 * Position ids count real tokens only, so a padded row sees exactly the positions it would
 * see alone.
 */
import { ShapeError } from '../errors.ts';

export interface PaddedBatch {
  batchSize: number;
  seqLen: number;
  /** Real tokens per row. */
  lengths: number[];
  /** [B*T] token ids, pads = padId. */
  ids: Int32Array;
  /** [B*T] 1 for real tokens, 0 for padding. */
  valid: Float32Array;
  /** [B*T] position ids: 0.. for real tokens, 0 for pads. */
  positions: Int32Array;
}

export function padLeft(sequences: readonly (readonly number[])[], padId: number, vocabSize: number, minLength = 0): PaddedBatch {
  if (sequences.length === 0) throw new ShapeError('empty batch: give at least one token sequence');
  const lengths = sequences.map((s, i) => {
    if (s.length === 0) throw new ShapeError(`sequence ${i} is empty; every sequence needs at least one token`);
    for (const id of s) {
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
        throw new ShapeError(`sequence ${i}: token id ${id} is outside the vocabulary (0–${vocabSize - 1})`);
      }
    }
    return s.length;
  });
  const B = sequences.length;
  // reduce, not Math.max(...lengths): a spread of a million rows overflows the stack.
  const T = lengths.reduce((m, l) => Math.max(m, l), minLength);
  const ids = new Int32Array(B * T).fill(padId);
  const valid = new Float32Array(B * T);
  const positions = new Int32Array(B * T);
  sequences.forEach((s, b) => {
    const start = T - s.length;
    for (let t = 0; t < s.length; t++) {
      ids[b * T + start + t] = s[t]!;
      valid[b * T + start + t] = 1;
      positions[b * T + start + t] = t;
    }
  });
  return { batchSize: B, seqLen: T, lengths, ids, valid, positions };
}

/** Large negative instead of -Infinity: a pad query row with no visible key must not give NaN. */
export const MASKED = -1e9;

/**
 * Additive attention mask [B, T, S] for T new queries that sit at the end of S keys:
 * query t (absolute column S - T + t) sees key j iff j <= S - T + t and key j is real, and,
 * with a sliding window W, j > S - T + t - W (the query and the W - 1 keys before it, as in
 * transformers' sliding-window mask). Padding is all on the left and a cache appends columns,
 * so between real tokens the column distance is the position distance.
 */
export function causalMask(keyValid: Float32Array, batchSize: number, keyLen: number, queryLen: number, slidingWindow: number | null = null): Float32Array {
  const m = new Float32Array(batchSize * queryLen * keyLen);
  const offset = keyLen - queryLen;
  for (let b = 0; b < batchSize; b++) {
    for (let t = 0; t < queryLen; t++) {
      const row = (b * queryLen + t) * keyLen;
      for (let j = 0; j < keyLen; j++) {
        const inWindow = slidingWindow === null || j > offset + t - slidingWindow;
        m[row + j] = j <= offset + t && inWindow && keyValid[b * keyLen + j] === 1 ? 0 : MASKED;
      }
    }
  }
  return m;
}

/** The arrays one after the other (the first itself when there is one). */
export function concatFloat32(parts: readonly Float32Array[]): Float32Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Float32Array(parts.reduce((a, x) => a + x.length, 0));
  let at = 0;
  for (const x of parts) {
    out.set(x, at);
    at += x.length;
  }
  return out;
}

/** Contiguous [start, end) ranges of `size` rows covering 0 … rows (the last one shorter); none for no rows. */
export function rowRanges(rows: number, size: number): [number, number][] {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`a range needs a positive integer of rows, got ${size}`);
  return Array.from({ length: Math.ceil(rows / size) }, (_, i) => [i * size, Math.min(rows, (i + 1) * size)] as [number, number]);
}
