/**
 * The project's one seeded PRNG, so that every sampled set (data splits, the organism's world,
 * corpus order and initialisation, negatives, random-neuron baselines) can be rebuilt bit for
 * bit from a saved seed on any machine and Node version. Math.random() cannot be seeded, hence
 * this.
 *
 * Generator: mulberry32 (Tommy Ettinger, public domain). 32 bits of state, period 2^32, passes
 * the gjrand/PractRand batteries far beyond what sampling a few thousand prompts needs. It uses
 * only 32-bit integer arithmetic (Math.imul, >>>), which JavaScript defines exactly. It is not
 * cryptographic and not meant for more than ~2^32 draws from one seed.
 *
 * Two integer draws exist because committed files were drawn with each, and changing either
 * would change those files:
 * - `intScaled(n)` = floor(next() · n): the data splits (data/relations/*.split.json) and the
 *   organism's world, corpus and training order were drawn with it. Its bias is below n / 2^32,
 *   negligible at data sizes.
 * - `intUniform(n)`: exact rejection sampling, used for negatives (`sampleNegatives`) and thus
 *   for every cached ranking and random-neuron baseline.
 */

/** Recorded in split files so that a reader can tell which generator drew them. */
export const RNG_NAME = 'mulberry32';

const TWO_32 = 4294967296;

/**
 * Throws a RangeError naming `what` unless `seed` is an integer in [0, 2^32 - 1], the state
 * space of mulberry32. Returns the seed.
 */
export function checkSeed(seed: number, what = 'seed'): number {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(`${what}: expected an integer in [0, 4294967295], found ${String(seed)}`);
  }
  return seed;
}

export interface Rng {
  /** Next raw output, a uniform integer in [0, 2^32). */
  nextUint32(): number;
  /** Next float in [0, 1), a multiple of 2^-32 (one raw output divided by 2^32). */
  next(): number;
  /** floor(next() · n) for an integer n ≥ 1: the draw the committed splits and the organism use. */
  intScaled(n: number): number;
  /**
   * Exactly uniform integer in [0, n) by rejection sampling (no modulo bias), n an integer in
   * [1, 2^32]: the draw `sampleNegatives` uses.
   */
  intUniform(n: number): number;
  /** Current internal state; `mulberry32(state)` continues the same stream. */
  readonly state: number;
}

/** Seeded mulberry32 generator; `seed` must be an integer in [0, 2^32 - 1] (RangeError naming `what` otherwise). */
export function mulberry32(seed: number, what = 'seed'): Rng {
  let s = checkSeed(seed, what) | 0;
  const nextUint32 = (): number => {
    s = (s + 0x6d2b79f5) | 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  const next = (): number => nextUint32() / TWO_32;
  return {
    nextUint32,
    next,
    intScaled(n: number): number {
      if (!Number.isInteger(n) || n <= 0) throw new RangeError(`Rng.intScaled(n): expected a positive integer, found ${n}`);
      return Math.floor(next() * n);
    },
    intUniform(n: number): number {
      if (!Number.isInteger(n) || n < 1 || n > TWO_32) {
        throw new RangeError(`Rng.intUniform(n): expected an integer n in [1, 2^32], found ${n}`);
      }
      // Reject the top partial block of 2^32 so each residue has the same number of preimages.
      const limit = TWO_32 - (TWO_32 % n);
      for (;;) {
        const x = nextUint32();
        if (x < limit) return x % n;
      }
    },
    get state(): number {
      return s >>> 0;
    },
  };
}

/** Fisher–Yates shuffle into a new array (the input is left alone), drawing with `intScaled`. */
export function shuffled<T>(items: readonly T[], rng: Rng): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.intScaled(i + 1);
    const tmp = out[i];
    out[i] = out[j];
    out[j] = tmp;
  }
  return out;
}

/**
 * Draw `count` distinct entries of `otherPromptIndices` uniformly at random without replacement
 * (a partial Fisher–Yates shuffle driven by `mulberry32(seed mod 2^32)` and `intUniform`). Used
 * to pick a relation's negatives among the other relations' prompts. Returns them in draw order,
 * so the first m of a sample of n are themselves a uniform sample of m for the same seed.
 *
 * `seed` is any safe integer, reduced modulo 2^32: callers derive per-relation seeds
 * arithmetically (e.g. seed · 1000 + relation index), which can leave [0, 2^32), and the cached
 * rankings were drawn with this reduction.
 *
 * Throws RangeError when count is not an integer in [0, available], when the input has
 * duplicates (sampling "without replacement" would be ambiguous), or holds non-indices.
 */
export function sampleNegatives(otherPromptIndices: readonly number[], count: number, seed: number): number[] {
  const n = otherPromptIndices.length;
  if (!Number.isSafeInteger(seed)) {
    throw new RangeError(`sampleNegatives: seed must be a safe integer, found ${seed}`);
  }
  if (!Number.isInteger(count) || count < 0) {
    throw new RangeError(`sampleNegatives: count must be a non-negative integer, found ${count}`);
  }
  if (count > n) {
    throw new RangeError(
      `sampleNegatives: asked for ${count} negatives but only ${n} candidate prompts are available`,
    );
  }
  const seen = new Set<number>();
  for (const v of otherPromptIndices) {
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new RangeError(`sampleNegatives: prompt indices must be non-negative integers, found ${v}`);
    }
    if (seen.has(v)) {
      throw new RangeError(`sampleNegatives: prompt index ${v} appears twice among the candidates`);
    }
    seen.add(v);
  }
  const rng = mulberry32(((seed % TWO_32) + TWO_32) % TWO_32);
  const pool = otherPromptIndices.slice();
  for (let i = 0; i < count; i++) {
    const j = i + rng.intUniform(n - i);
    const t = pool[i];
    pool[i] = pool[j];
    pool[j] = t;
  }
  return pool.slice(0, count);
}
