/**
 * Average precision exactly as `sklearn.metrics.average_precision_score(y_true, y_score)` for
 * binary labels (paper §3, step 2), plus the per-chunk kernel that the engine (ap-engine.ts)
 * and its workers run.
 *
 * sklearn's definition: sort by score descending; every *distinct* score is one threshold
 * (tied scores enter together, whatever their labels); at each threshold n, P_n = TP/(TP+FP)
 * and R_n = TP/(#positives); AP = Σ_n (R_n − R_{n−1}) · P_n, no interpolation.
 * Thresholds where only negatives enter add nothing (R_n = R_{n−1}), so
 *   AP = (1/#pos) · Σ_{groups with ΔTP>0} ΔTP · TP/(TP+FP).
 * Both entry points below evaluate that same sum in the same order (highest threshold first),
 * so on float32-representable scores they agree bit for bit.
 */

/**
 * Labels per prompt for one task, as codes: 1 = positive, 2 = negative, 0 = not in the task.
 * Bit 0 counts a TP and bit 1 an FP, so apPass counts both without a branch.
 */
export const CODE_OUT = 0;
export const CODE_POS = 1;
export const CODE_NEG = 2;

/**
 * Walk prompts in descending-score order and accumulate the AP sum for one task.
 * `order[i]` is the prompt at rank i; `last[i]` is 1 when rank i closes a group of tied scores.
 * A group's TP/FP are only read at its end, after all its members have been counted.
 */
function apPass(order: Int32Array, last: Uint8Array, codes: Uint8Array, n: number, numPositives: number): number {
  let tp = 0;
  let fp = 0;
  let prevTp = 0;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const c = codes[order[i]];
    tp += c & 1;
    fp += c >>> 1;
    if (last[i] !== 0 && tp !== prevTp) {
      sum += (tp - prevTp) * (tp / (tp + fp));
      prevTp = tp;
    }
  }
  return sum / numPositives;
}

/**
 * sklearn's `average_precision_score(labels, scores)` for one binary problem.
 *
 * labels: 1/true = positive, 0/false = negative (any other value is an error).
 * Throws RangeError on: empty input, length mismatch, a label that is not 0/1/true/false, a
 * non-finite score (sklearn rejects NaN and ±Infinity too), and no positive label. For the
 * last case sklearn only warns and returns 0; here it is an error because a relation without
 * positives is always a bug upstream. All labels positive gives 1, as in sklearn.
 */
export function averagePrecision(scores: ArrayLike<number>, labels: ArrayLike<number | boolean>): number {
  const n = scores.length;
  if (labels.length !== n) {
    throw new RangeError(`averagePrecision: ${n} scores but ${labels.length} labels; they must have the same length`);
  }
  if (n === 0) throw new RangeError('averagePrecision: empty input (no scores, no labels)');
  const codes = new Uint8Array(n);
  let numPositives = 0;
  for (let i = 0; i < n; i++) {
    const s = scores[i];
    if (typeof s !== 'number' || !Number.isFinite(s)) {
      throw new RangeError(`averagePrecision: score ${i} is ${s}; scores must be finite numbers`);
    }
    const l = labels[i];
    if (l === 1 || l === true) {
      codes[i] = CODE_POS;
      numPositives++;
    } else if (l === 0 || l === false) {
      codes[i] = CODE_NEG;
    } else {
      throw new RangeError(`averagePrecision: label ${i} is ${String(l)}; labels must be 0/1 or false/true`);
    }
  }
  if (numPositives === 0) {
    throw new RangeError(`averagePrecision: no positive labels among ${n}; average precision is undefined`);
  }
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  // Descending score, ties by index: the tie order is irrelevant to AP but keeps runs reproducible.
  order.sort((a, b) => scores[b] - scores[a] || a - b);
  const last = new Uint8Array(n);
  for (let i = 0; i < n - 1; i++) last[i] = scores[order[i]] !== scores[order[i + 1]] ? 1 : 0;
  last[n - 1] = 1;
  return apPass(order, last, codes, n, numPositives);
}

// ---------------------------------------------------------------------------------------------
// Chunk kernel: many neurons × many tasks. A neuron's ranking of the prompts does not depend on
// the task, so each neuron is sorted once; then one walk down that order updates every task
// the current prompt belongs to. Task membership is kept as bit masks per prompt, so the walk
// touches only the tasks a prompt is in (Σ|task| updates, not R·P) without per-task branches.

/** Task bits per mask word; 31, not 32, so mask arithmetic never leaves V8's int32 range. */
const TASKS_PER_WORD = 31;
const RADIX_BITS = 11;
const RADIX = 1 << RADIX_BITS; // 3 passes of 11/11/10 bits cover a 32-bit key
const RADIX_MASK = RADIX - 1;
/** Neurons gathered together from a [P][width] chunk: 16 float32 = one 64-byte cache line per row. */
const GATHER_BLOCK = 16;
const SIGN = 0x80000000 | 0;

/** Raised by the kernel for a NaN/±Infinity activation; the engine turns it into a RangeError. */
export class NonFiniteScoreError extends RangeError {
  override name = 'NonFiniteScoreError';
}

/**
 * Per-thread scratch and task tables for computing AP of whole chunks. Create one per thread
 * and reuse it: it allocates O(P·⌈R/31⌉) once, nothing per neuron.
 *
 * Keys and masks are Int32Array on purpose: Uint32 values ≥ 2^31 leave V8's int32 fast path.
 */
export class ApChunkKernel {
  readonly numPrompts: number;
  readonly numTasks: number;
  private readonly numPositives: Int32Array; // [R]
  // Membership masks, [word][P]: bit b of word w set ⇔ prompt is a positive (negative) of
  // task 31·w + b.
  private readonly numWords: number;
  private readonly posMask: Int32Array;
  private readonly negMask: Int32Array;
  private readonly tp: Int32Array; // [R] running true positives
  private readonly fp: Int32Array; // [R] running false positives
  private readonly prevTp: Int32Array; // [R] TP at the last threshold that counted
  private readonly sums: Float64Array; // [R]
  private readonly keys: Int32Array; // [GATHER_BLOCK][P]
  private readonly keyA: Int32Array;
  private readonly keyB: Int32Array;
  private readonly idxA: Int32Array;
  private readonly idxB: Int32Array;
  private readonly last: Uint8Array;
  private readonly hist: Int32Array;

  /**
   * codes: [R][P] task codes (CODE_POS / CODE_NEG / CODE_OUT); every task needs ≥1 positive.
   * The caller (the engine) validates the tasks; this only checks the table's shape.
   */
  constructor(numPrompts: number, numTasks: number, codes: Uint8Array) {
    if (codes.length !== numPrompts * numTasks) {
      throw new RangeError(`ApChunkKernel: codes has ${codes.length} entries, expected ${numTasks}×${numPrompts}`);
    }
    const P = numPrompts;
    const R = numTasks;
    this.numPrompts = P;
    this.numTasks = R;
    this.numPositives = new Int32Array(R);
    this.numWords = Math.ceil(R / TASKS_PER_WORD);
    this.posMask = new Int32Array(this.numWords * P);
    this.negMask = new Int32Array(this.numWords * P);
    for (let r = 0; r < R; r++) {
      const w = Math.floor(r / TASKS_PER_WORD);
      const bit = 1 << r % TASKS_PER_WORD;
      for (let p = 0; p < P; p++) {
        const c = codes[r * P + p];
        if (c === CODE_POS) {
          this.posMask[w * P + p] |= bit;
          this.numPositives[r]++;
        } else if (c === CODE_NEG) {
          this.negMask[w * P + p] |= bit;
        } else if (c !== CODE_OUT) {
          throw new RangeError(`ApChunkKernel: unknown code ${c} for task ${r}, prompt ${p}`);
        }
      }
      if (this.numPositives[r] === 0) throw new RangeError(`ApChunkKernel: task ${r} has no positive prompt`);
    }
    this.tp = new Int32Array(R);
    this.fp = new Int32Array(R);
    this.prevTp = new Int32Array(R);
    this.sums = new Float64Array(R);
    this.keys = new Int32Array(GATHER_BLOCK * P);
    this.keyA = new Int32Array(P);
    this.keyB = new Int32Array(P);
    this.idxA = new Int32Array(P);
    this.idxB = new Int32Array(P);
    this.last = new Uint8Array(P);
    this.hist = new Int32Array(3 * RADIX);
  }

  /**
   * AP of every neuron of a chunk for every task.
   * chunk: [P][width] float32, prompt-major (row p holds neurons start..start+width).
   * out: [R][width] — out[r*width + j] = AP of neuron (start + j) for task r.
   * firstNeuron only labels error messages.
   */
  run(chunk: Float32Array, width: number, out: Float64Array | Float32Array, firstNeuron = 0): void {
    const P = this.numPrompts;
    if (chunk.length !== P * width) {
      throw new RangeError(`ApChunkKernel: chunk has ${chunk.length} values, expected ${P} prompts × ${width} neurons`);
    }
    if (out.length !== this.numTasks * width) {
      throw new RangeError(`ApChunkKernel: out has ${out.length} slots, expected ${this.numTasks} tasks × ${width} neurons`);
    }
    // The float bits themselves, so keys come from integer ops rather than float round trips.
    const bits = new Int32Array(chunk.buffer, chunk.byteOffset, chunk.length);
    const keys = this.keys;
    for (let j0 = 0; j0 < width; j0 += GATHER_BLOCK) {
      const b = Math.min(GATHER_BLOCK, width - j0);
      for (let p = 0; p < P; p++) {
        const row = p * width + j0;
        for (let q = 0; q < b; q++) {
          let u = bits[row + q];
          if ((u & 0x7f800000) === 0x7f800000) {
            throw new NonFiniteScoreError(
              `activation of neuron ${firstNeuron + j0 + q} on prompt ${p} is ${chunk[row + q]}; scores must be finite`,
            );
          }
          if (u === SIGN) u = 0; // −0 ties with +0, as in sklearn (numpy compares by value)
          // Map float bits to a key whose unsigned order is the *descending* order of the
          // floats: negatives keep their bits (more negative = larger bits), non-negatives are
          // complemented with the sign bit cleared (larger float = smaller key).
          keys[q * P + p] = u < 0 ? u : ~(u | SIGN);
        }
      }
      for (let q = 0; q < b; q++) {
        const order = this.sortOne(keys, q * P);
        this.walk(order, out, width, j0 + q);
      }
    }
  }

  /**
   * LSD radix sort of keys[off..off+P) by unsigned value (stable, so ties keep prompt order).
   * Returns the prompt indices in that order and fills `last` with the tie-group ends.
   */
  private sortOne(keys: Int32Array, off: number): Int32Array {
    const P = this.numPrompts;
    const hist = this.hist;
    hist.fill(0);
    let srcK = this.keyA;
    let srcI = this.idxA;
    let dstK = this.keyB;
    let dstI = this.idxB;
    for (let i = 0; i < P; i++) {
      const k = keys[off + i];
      srcK[i] = k;
      srcI[i] = i;
      hist[k & RADIX_MASK]++;
      hist[RADIX + ((k >>> RADIX_BITS) & RADIX_MASK)]++;
      hist[2 * RADIX + (k >>> (2 * RADIX_BITS))]++;
    }
    for (let pass = 0; pass < 3; pass++) {
      const shift = pass * RADIX_BITS;
      const h = pass * RADIX;
      // A digit shared by every key leaves the order unchanged: skip the scatter (common for
      // the top digit, where activations share sign and exponent).
      if (hist[h + ((srcK[0] >>> shift) & RADIX_MASK)] === P) continue;
      let acc = 0;
      for (let d = 0; d < RADIX; d++) {
        const c = hist[h + d];
        hist[h + d] = acc;
        acc += c;
      }
      for (let i = 0; i < P; i++) {
        const k = srcK[i];
        const pos = hist[h + ((k >>> shift) & RADIX_MASK)]++;
        dstK[pos] = k;
        dstI[pos] = srcI[i];
      }
      const tk = srcK;
      srcK = dstK;
      dstK = tk;
      const ti = srcI;
      srcI = dstI;
      dstI = ti;
    }
    const last = this.last;
    for (let i = 0; i < P - 1; i++) last[i] = srcK[i] !== srcK[i + 1] ? 1 : 0;
    last[P - 1] = 1;
    return srcI;
  }

  /**
   * One walk down a neuron's order updating all tasks: the same sum as apPass, term for term
   * and in the same order, so the result is bit-identical to averagePrecision.
   */
  private walk(order: Int32Array, out: Float64Array | Float32Array, width: number, j: number): void {
    const P = this.numPrompts;
    const R = this.numTasks;
    const { posMask, negMask, tp, fp, prevTp, sums, last } = this;
    tp.fill(0);
    fp.fill(0);
    prevTp.fill(0);
    sums.fill(0);
    let groupStart = 0;
    for (let i = 0; i < P; i++) {
      const p = order[i];
      // A group of one prompt (no tie, the usual case) can take its precision terms right away;
      // then ΔTP is 1 and (tp − prev) is exactly 1, so the term equals apPass's.
      const single = last[i] !== 0 && groupStart === i;
      for (let w = 0, base = 0; w < this.numWords; w++, base += TASKS_PER_WORD) {
        let nm = negMask[w * P + p];
        while (nm !== 0) {
          fp[base + 31 - Math.clz32(nm & -nm)]++;
          nm &= nm - 1;
        }
        let pm = posMask[w * P + p];
        while (pm !== 0) {
          const r = base + 31 - Math.clz32(pm & -pm);
          const t = ++tp[r];
          if (single) {
            sums[r] += (t - prevTp[r]) * (t / (t + fp[r]));
            prevTp[r] = t;
          }
          pm &= pm - 1;
        }
      }
      if (single) {
        groupStart = i + 1;
        continue;
      }
      if (last[i] === 0) continue;
      // A tied group just closed: every task with a positive in it gets one precision term.
      for (let w = 0, base = 0; w < this.numWords; w++, base += TASKS_PER_WORD) {
        let gm = 0;
        for (let g = groupStart; g <= i; g++) gm |= posMask[w * P + order[g]];
        while (gm !== 0) {
          const r = base + 31 - Math.clz32(gm & -gm);
          const t = tp[r];
          sums[r] += (t - prevTp[r]) * (t / (t + fp[r]));
          prevTp[r] = t;
          gm &= gm - 1;
        }
      }
      groupStart = i + 1;
    }
    for (let r = 0; r < R; r++) out[r * width + j] = sums[r] / this.numPositives[r];
  }
}
