/**
 * On-disk store of token-mean activations: P prompts × N neurons (a NeuronSpace), split by
 * neuron range into files `n{start}-{end}.bin`, each prompt-major [P][end-start] in float32 or
 * float16. Collection writes one prompt batch at a time and then records progress in meta.json
 * (atomically) with a sha256 of each chunk's new rows, so a killed run resumes where it stopped
 * and a chunk damaged since (missing, truncated, altered) is detected and its rows collected
 * again. Stores that cover consecutive prompt ranges of the same prompt list can be merged.
 */
import { closeSync, existsSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex, writeFileAtomic } from '../data/io.ts';
import { writeThroughStaging } from '../data/staging.ts';
import { seal, unseal } from '../data/sealed-json.ts';
import { CheckpointError } from '../errors.ts';
import type { ModelRunner } from '../model/runner.ts';
import { hookPointName } from '../model/hooks.ts';
import { recordSpec } from '../model/record-spec.ts';
import type { ProgressState } from '../progress.ts';
import { forEachBatch } from './batches.ts';
import type { ActivationSource } from '../stats/ap-engine.ts';
import { modelIdentity, type ModelIdentity } from './identity.ts';
import { NeuronSpace, type NeuronSite } from './neurons.ts';
import { floatToHalf, halfToFloat } from '../half.ts';

export const STORE_SCHEMA = 'rsn-activations/2';

export interface StoreChunk {
  start: number;
  end: number;
  file: string;
  /** sha256 of each checkpointed row segment of this file (segment j = rows checkpoints[j-1]…checkpoints[j]). */
  sha256: string[];
}

export interface StoreMeta {
  schema: typeof STORE_SCHEMA;
  model: ModelIdentity;
  /** sha256 of the full prompt list's token ids: a resumed or merged store must see the same list. */
  promptsSha256: string;
  /** This store holds rows [promptStart, promptEnd) of that list. */
  promptStart: number;
  promptEnd: number;
  /** Rows written so far (from promptStart). */
  completed: number;
  /** `completed` after each checkpoint (one per written batch), increasing; the last is `completed`. */
  checkpoints: number[];
  space: ReturnType<NeuronSpace['describe']>;
  dtype: 'float32' | 'float16';
  includeBos: boolean;
  /** Prompts per forward pass: padding in a batch moves token means in the last float bits, so a resume must use the same. */
  batchSize: number;
  chunks: StoreChunk[];
  createdAt: string;
  updatedAt: string;
}

export interface CollectOptions {
  /** Sites to record (default the FFN pool). */
  sites?: readonly NeuronSite[];
  dtype?: 'float32' | 'float16';
  /** Include the BOS token in the token mean (default true, as the paper). */
  includeBos?: boolean;
  batchSize?: number;
  /** Neurons per file (default 65536). */
  chunkNeurons?: number;
  /** Only rows [start, end) of the list (to split a run over processes or machines). */
  promptRange?: [number, number];
  quiet?: boolean;
  onProgress?: (s: ProgressState) => void;
  /** Where damage found on resume is reported (default stderr). */
  log?: (line: string) => void;
}

const META = 'meta.json';

function bytesPer(dtype: 'float32' | 'float16'): number {
  return dtype === 'float32' ? 4 : 2;
}

export function promptsHash(tokenized: readonly (readonly number[])[]): string {
  return sha256Hex(JSON.stringify(tokenized));
}

/** Bytes [from, to) of an open file, or null when the file is shorter. */
function readBytes(fd: number, from: number, to: number): Uint8Array | null {
  const buf = new Uint8Array(to - from);
  let got = 0;
  while (got < buf.length) {
    const r = readSync(fd, buf, got, buf.length - got, from + got);
    if (r === 0) return null;
    got += r;
  }
  return buf;
}

/**
 * How many leading rows of every chunk file match their recorded checksums, with a line per
 * damaged file (missing, short, or a segment whose bytes changed).
 */
function verifiedRows(dir: string, meta: StoreMeta): { rows: number; problems: string[] } {
  const bpv = bytesPer(meta.dtype);
  let rows = meta.completed;
  const problems: string[] = [];
  for (const c of meta.chunks) {
    const path = join(dir, c.file);
    const rowBytes = (c.end - c.start) * bpv;
    if (!existsSync(path)) {
      problems.push(`${path}: chunk file is missing`);
      rows = 0;
      continue;
    }
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      let from = 0;
      for (let j = 0; j < meta.checkpoints.length && meta.checkpoints[j]! <= rows; j++) {
        const to = meta.checkpoints[j]!;
        const bytes = readBytes(fd, from * rowBytes, to * rowBytes);
        if (bytes === null) {
          problems.push(`${path}: ${size} bytes, expected ${meta.completed * rowBytes} for ${meta.completed} prompts (short file; valid up to prompt ${from})`);
          rows = Math.min(rows, from);
          break;
        }
        if (sha256Hex(bytes) !== c.sha256[j]) {
          problems.push(`${path}: prompts ${from}–${to} do not match their checksum`);
          rows = Math.min(rows, from);
          break;
        }
        from = to;
      }
    } finally {
      closeSync(fd);
    }
  }
  return { rows, problems };
}

/** Forget every checkpoint after `rows` (the rows are then collected again). */
function rollBack(meta: StoreMeta, rows: number): void {
  const keep = meta.checkpoints.filter((c) => c <= rows).length;
  meta.checkpoints = meta.checkpoints.slice(0, keep);
  meta.completed = keep ? meta.checkpoints[keep - 1]! : 0;
  for (const c of meta.chunks) c.sha256 = c.sha256.slice(0, keep);
}

/**
 * Record token-mean activations of every neuron in `sites` for every prompt, into `dir`.
 * Resumes an unfinished store made for the same model, prompts and settings; refuses a
 * store made for anything else. Every chunk is checked against its checksums first: rows of a
 * missing, short or altered chunk are reported and collected again.
 */
export async function collectActivations(model: ModelRunner, tokenized: readonly (readonly number[])[], dir: string, opts: CollectOptions = {}): Promise<ActivationStore> {
  const space = NeuronSpace.forModel(model.config, opts.sites ?? ['mlp.gate', 'mlp.up', 'mlp.down']);
  const dtype = opts.dtype ?? 'float32';
  const includeBos = opts.includeBos ?? true;
  const batchSize = opts.batchSize ?? 32;
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
  const [pStart, pEnd] = opts.promptRange ?? [0, tokenized.length];
  if (!(Number.isInteger(pStart) && Number.isInteger(pEnd) && 0 <= pStart && pStart < pEnd && pEnd <= tokenized.length)) {
    throw new RangeError(`promptRange [${pStart}, ${pEnd}) must lie inside 0–${tokenized.length} and be non-empty`);
  }
  const identity = modelIdentity(model);
  const hash = promptsHash(tokenized);
  let meta: StoreMeta;
  if (existsSync(join(dir, META))) {
    meta = readMeta(dir);
    const mismatch: string[] = [];
    if (meta.model.sha256 !== identity.sha256) mismatch.push(`model ${meta.model.name} ≠ ${identity.name}`);
    if (meta.promptsSha256 !== hash) mismatch.push('prompt list differs');
    if (meta.promptStart !== pStart || meta.promptEnd !== pEnd) mismatch.push(`prompt range [${meta.promptStart}, ${meta.promptEnd}) ≠ [${pStart}, ${pEnd})`);
    if (meta.dtype !== dtype) mismatch.push(`dtype ${meta.dtype} ≠ ${dtype}`);
    if (meta.includeBos !== includeBos) mismatch.push(`includeBos ${meta.includeBos} ≠ ${includeBos}`);
    if (meta.batchSize !== batchSize) mismatch.push(`batchSize ${meta.batchSize} ≠ ${batchSize}`);
    if (JSON.stringify(meta.space) !== JSON.stringify(space.describe())) mismatch.push('neuron sites differ');
    if (mismatch.length) {
      throw new CheckpointError(`${dir}: an activation store for different settings is already there (${mismatch.join('; ')}); choose another directory or delete it`, join(dir, META));
    }
    const check = verifiedRows(dir, meta);
    if (check.rows < meta.completed) {
      for (const p of check.problems) log(`[rsn] activations: ${p}`);
      log(`[rsn] activations: ${dir}: keeping the ${check.rows} verified prompts, collecting prompts ${check.rows}–${meta.completed} again`);
      rollBack(meta, check.rows);
      writeMeta(dir, meta);
    }
  } else {
    mkdirSync(dir, { recursive: true });
    const chunkNeurons = opts.chunkNeurons ?? 65536;
    const chunks: StoreChunk[] = [];
    for (let s = 0; s < space.size; s += chunkNeurons) {
      const e = Math.min(space.size, s + chunkNeurons);
      chunks.push({ start: s, end: e, file: `n${s}-${e}.bin`, sha256: [] });
    }
    const now = new Date().toISOString();
    meta = { schema: STORE_SCHEMA, model: identity, promptsSha256: hash, promptStart: pStart, promptEnd: pEnd, completed: 0, checkpoints: [], space: space.describe(), dtype, includeBos, batchSize, chunks, createdAt: now, updatedAt: now };
    writeMeta(dir, meta);
  }
  const rowsTotal = pEnd - pStart;
  const bpv = bytesPer(dtype);
  const fds = meta.chunks.map((c) => {
    const fd = openSync(join(dir, c.file), existsSync(join(dir, c.file)) ? 'r+' : 'w+');
    // Rows past `completed` may be a half-written batch from a killed run: drop them.
    ftruncateSync(fd, meta.completed * (c.end - c.start) * bpv);
    return fd;
  });
  const progress = { itemName: 'prompts', label: 'activations', silent: opts.quiet, onUpdate: opts.onProgress };
  try {
    await forEachBatch({ total: rowsTotal, batchSize, from: meta.completed, progress }, async (start, end) => {
      const B = end - start;
      const rows = await pooledBatch(model, space, tokenized.slice(pStart + start, pStart + end), includeBos);
      meta.chunks.forEach((c, ci) => {
        const w = c.end - c.start;
        const buf = new Uint8Array(B * w * bpv);
        const f32 = dtype === 'float32' ? new Float32Array(buf.buffer) : null;
        const f16 = dtype === 'float16' ? new Uint16Array(buf.buffer) : null;
        for (let i = 0; i < B; i++) {
          const src = rows.subarray(i * space.size + c.start, i * space.size + c.end);
          if (f32) f32.set(src, i * w);
          else for (let j = 0; j < w; j++) f16![i * w + j] = floatToHalf(src[j]!);
        }
        writeSync(fds[ci]!, buf, 0, buf.length, meta.completed * w * bpv);
        c.sha256.push(sha256Hex(buf));
      });
      for (const fd of fds) fsyncSync(fd);
      meta.completed += B;
      meta.checkpoints.push(meta.completed);
      meta.updatedAt = new Date().toISOString();
      writeMeta(dir, meta);
    });
  } finally {
    for (const fd of fds) closeSync(fd);
  }
  return ActivationStore.open(dir, { verify: false });
}

/**
 * Token-mean activations of every neuron of `space` for one batch of prompts, [B][N] in
 * neuron order (the row layout of the store; also used in memory by the organism's measurements).
 */
export async function pooledBatch(model: ModelRunner, space: NeuronSpace, batch: readonly (readonly number[])[], includeBos = true): Promise<Float32Array> {
  // "Without BOS" drops the first token only where the tokenizer put a BOS there (Qwen2's adds none).
  const skipFirstToken = !includeBos && (model.tokenizer?.addsBos ?? true);
  const record = recordSpec(model.config, space.hookPoints(), skipFirstToken ? 'token-mean-no-bos' : 'token-mean');
  const r = await model.forward(batch, { logits: 'none', hooks: { record } });
  const B = batch.length;
  const rows = new Float32Array(B * space.size);
  for (const b of space.blocks) {
    const data = r.records.record(hookPointName(b.layer, b.site)).data;
    for (let i = 0; i < B; i++) rows.set(data.subarray(i * b.width, (i + 1) * b.width), i * space.size + b.offset);
  }
  return rows;
}

/** meta.json, sealed: a field edited or damaged after it was written (a flag, a count) is refused. */
function writeMeta(dir: string, meta: StoreMeta): void {
  writeFileAtomic(join(dir, META), JSON.stringify(seal(meta), null, 1));
}

function readMeta(dir: string): StoreMeta {
  const file = join(dir, META);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new CheckpointError(`${file}: not a readable activation store (${(e as Error).message})`, file);
  }
  const m = unseal(raw, file) as unknown as StoreMeta;
  if (m?.schema !== STORE_SCHEMA) {
    const found: unknown = m?.schema;
    const old = typeof found === 'string' && found.startsWith('rsn-activations/') ? ' (a store written before chunk checksums existed; delete it and collect again)' : '';
    throw new CheckpointError(`${file}: field "schema" is ${JSON.stringify(m?.schema)}, expected "${STORE_SCHEMA}"${old}`, file);
  }
  const bad = (field: string, want: string): never => {
    throw new CheckpointError(`${file}: field "${field}" must be ${want}`, file);
  };
  const isCount = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0;
  if (!isCount(m.completed)) bad('completed', 'a non-negative integer');
  if (!isCount(m.promptStart) || !isCount(m.promptEnd) || m.promptEnd <= m.promptStart) bad('promptStart/promptEnd', 'integers with promptStart < promptEnd');
  if (m.completed > m.promptEnd - m.promptStart) bad('completed', `at most promptEnd − promptStart = ${m.promptEnd - m.promptStart}`);
  if (m.dtype !== 'float32' && m.dtype !== 'float16') bad('dtype', '"float32" or "float16"');
  if (!Array.isArray(m.checkpoints) || !m.checkpoints.every((c, i) => isCount(c) && c > (i ? m.checkpoints[i - 1]! : 0))) bad('checkpoints', 'an increasing array of row counts');
  if ((m.checkpoints.at(-1) ?? 0) !== m.completed) bad('checkpoints', `to end at completed = ${m.completed}`);
  if (!Array.isArray(m.chunks) || m.chunks.length === 0) bad('chunks', 'a non-empty array');
  m.chunks.forEach((c, i) => {
    if (!isCount(c?.start) || !isCount(c.end) || c.end <= c.start) bad(`chunks[${i}].start/end`, 'integers with start < end');
    if (typeof c.file !== 'string' || !/^n\d+-\d+\.bin$/.test(c.file)) bad(`chunks[${i}].file`, 'a file name n<start>-<end>.bin');
    if (!Array.isArray(c.sha256) || c.sha256.length !== m.checkpoints.length) bad(`chunks[${i}].sha256`, `an array of ${m.checkpoints.length} checksums`);
  });
  return m;
}

export class ActivationStore {
  readonly space: NeuronSpace;

  private constructor(readonly dir: string, readonly meta: StoreMeta) {
    this.space = NeuronSpace.fromDescription(meta.space);
  }

  /**
   * Open a store for reading. By default every chunk is checked against its checksums (one
   * read of the store); a missing, short or altered chunk is a CheckpointError naming the file.
   */
  static open(dir: string, opts: { verify?: boolean } = {}): ActivationStore {
    const meta = readMeta(dir);
    if (opts.verify ?? true) {
      const check = verifiedRows(dir, meta);
      if (check.rows < meta.completed) {
        throw new CheckpointError(`${dir}: damaged activation store: ${check.problems.join('; ')}; resume the collection to collect those prompts again`, join(dir, META));
      }
    }
    return new ActivationStore(dir, meta);
  }

  get complete(): boolean {
    return this.meta.completed === this.meta.promptEnd - this.meta.promptStart;
  }

  get numPrompts(): number {
    return this.meta.completed;
  }

  /** Activations of neurons [start, end) for every stored prompt, [P][end-start] float32 (a fresh array). */
  readRange(start: number, end: number): Float32Array {
    const P = this.meta.completed;
    const w = end - start;
    if (!(0 <= start && start < end && end <= this.space.size)) throw new RangeError(`neuron range [${start}, ${end}) outside 0–${this.space.size}`);
    const out = new Float32Array(P * w);
    const bpv = bytesPer(this.meta.dtype);
    for (const c of this.meta.chunks) {
      const s = Math.max(start, c.start);
      const e = Math.min(end, c.end);
      if (s >= e) continue;
      const cw = c.end - c.start;
      const fd = openSync(join(this.dir, c.file), 'r');
      try {
        // Whole rows of the chunk are read and the needed columns copied out: reads stay large and sequential.
        const rowsPerRead = Math.max(1, Math.floor((8 << 20) / (cw * bpv)));
        const buf = new Uint8Array(rowsPerRead * cw * bpv);
        for (let p0 = 0; p0 < P; p0 += rowsPerRead) {
          const n = Math.min(rowsPerRead, P - p0);
          const len = n * cw * bpv;
          let got = 0;
          while (got < len) {
            const r = readSync(fd, buf, got, len - got, p0 * cw * bpv + got);
            if (r === 0) throw new CheckpointError(`${join(this.dir, c.file)}: unexpected end of file (the store was changed after it was opened)`, join(this.dir, c.file));
            got += r;
          }
          const f32 = bpv === 4 ? new Float32Array(buf.buffer, 0, n * cw) : null;
          const f16 = bpv === 2 ? new Uint16Array(buf.buffer, 0, n * cw) : null;
          for (let i = 0; i < n; i++) {
            const dst = (p0 + i) * w + (s - start);
            const src = i * cw + (s - c.start);
            if (f32) out.set(f32.subarray(src, src + (e - s)), dst);
            else for (let j = 0; j < e - s; j++) out[dst + j] = halfToFloat(f16![src + j]!);
          }
        }
      } finally {
        closeSync(fd);
      }
    }
    return out;
  }

  /**
   * Each neuron's mean over the stored prompts (of their token-mean activations): the values a
   * mean ablation sets neurons to. Read in blocks of neurons, in float64.
   */
  neuronMeans(blockNeurons = 4096): Float32Array {
    const P = this.numPrompts;
    if (P === 0) throw new RangeError(`${this.dir}: the activation store holds no prompts, so it has no means`);
    const out = new Float32Array(this.space.size);
    for (let s = 0; s < this.space.size; s += blockNeurons) {
      const e = Math.min(this.space.size, s + blockNeurons);
      const x = this.readRange(s, e);
      const w = e - s;
      for (let j = 0; j < w; j++) {
        let sum = 0;
        for (let p = 0; p < P; p++) sum += x[p * w + j]!;
        out[s + j] = sum / P;
      }
    }
    return out;
  }

  /** The store as an AP-engine source (all neurons, all stored prompts). */
  source(): ActivationSource {
    return { numPrompts: this.numPrompts, numNeurons: this.space.size, getChunk: (s, e) => this.readRange(s, e) };
  }
}

/** Bytes copied per read when merging: a few pieces per chunk file, each a moment in which a signal can be answered. */
const MERGE_PIECE_BYTES = 64 << 20;

/**
 * Concatenate stores that hold consecutive prompt ranges of the same list (e.g. two machines
 * each did half) into `outDir`, written through a staging folder and renamed on success (a
 * signal or an error leaves no partial output; see lib/data/staging.ts). Stores given open are
 * not verified again (a verification reads the whole store).
 */
export async function mergeStores(dirs: readonly (string | ActivationStore)[], outDir: string, log?: (line: string) => void): Promise<ActivationStore> {
  const stores = dirs.map((d) => (typeof d === 'string' ? ActivationStore.open(d) : d)).sort((a, b) => a.meta.promptStart - b.meta.promptStart);
  const first = stores[0];
  if (!first) throw new RangeError('mergeStores needs at least one store');
  let expect = first.meta.promptStart;
  for (const s of stores) {
    const m = s.meta;
    if (!s.complete) throw new CheckpointError(`${s.dir}: store is unfinished (${m.completed} of ${m.promptEnd - m.promptStart} prompts); finish it before merging`, s.dir);
    const same = m.model.sha256 === first.meta.model.sha256 && m.promptsSha256 === first.meta.promptsSha256 && m.dtype === first.meta.dtype && m.includeBos === first.meta.includeBos && m.batchSize === first.meta.batchSize && JSON.stringify(m.space) === JSON.stringify(first.meta.space);
    if (!same) throw new CheckpointError(`${s.dir}: store was made with another model, prompt list, dtype, BOS setting, batch size or neuron space than ${first.dir}`, s.dir);
    if (m.promptStart !== expect) throw new CheckpointError(`${s.dir}: covers prompts from ${m.promptStart}, expected ${expect} (the stores must cover consecutive ranges)`, s.dir);
    expect = m.promptEnd;
  }
  if (existsSync(outDir)) throw new CheckpointError(`${outDir}: already exists; merge into a new directory`, outDir);
  const bpv = bytesPer(first.meta.dtype);
  const chunks = first.meta.chunks;
  await writeThroughStaging(outDir, async (tmp) => {
    mkdirSync(tmp, { recursive: true });
    const piece = Buffer.allocUnsafe(MERGE_PIECE_BYTES);
    for (const c of chunks) {
      const out = await open(join(tmp, c.file), 'wx');
      try {
        for (const s of stores) {
          const sc = s.meta.chunks.find((x) => x.start === c.start && x.end === c.end);
          if (!sc) throw new CheckpointError(`${s.dir}: has no chunk for neurons ${c.start}–${c.end}`, s.dir);
          const bytes = s.meta.completed * (c.end - c.start) * bpv;
          const src = await open(join(s.dir, sc.file), 'r');
          try {
            for (let at = 0; at < bytes; ) {
              const { bytesRead } = await src.read(piece, 0, Math.min(piece.length, bytes - at), at);
              if (bytesRead === 0) throw new CheckpointError(`${join(s.dir, sc.file)}: ends after ${at} of ${bytes} bytes`, s.dir);
              await out.write(piece, 0, bytesRead);
              at += bytesRead;
            }
          } finally {
            await src.close();
          }
        }
      } finally {
        await out.close();
      }
    }
    const total = expect - first.meta.promptStart;
    const checkpoints: number[] = [];
    const sums: string[][] = chunks.map(() => []);
    let offset = 0;
    for (const s of stores) {
      checkpoints.push(...s.meta.checkpoints.map((c) => c + offset));
      chunks.forEach((c, ci) => sums[ci]!.push(...s.meta.chunks.find((x) => x.start === c.start && x.end === c.end)!.sha256));
      offset += s.meta.completed;
    }
    const meta: StoreMeta = {
      ...first.meta,
      promptEnd: expect,
      completed: total,
      checkpoints,
      chunks: chunks.map((c, ci) => ({ ...c, sha256: sums[ci]! })),
      updatedAt: new Date().toISOString(),
    };
    writeMeta(tmp, meta);
  }, log);
  return ActivationStore.open(outDir);
}
