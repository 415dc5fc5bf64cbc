/**
 * A small seeded PRNG, so that every sampled set (negatives, random-neuron baselines) can be
 * rebuilt bit for bit from a saved seed on any machine and any Node version. Math.random()
 * cannot be seeded, hence this.
 *
 * Generator: mulberry32 (Tommy Ettinger, public domain). 32 bits of state, period 2^32, passes
 * the gjrand/PractRand batteries far beyond what sampling a few thousand prompts needs. It is
 * not cryptographic and not meant for more than ~2^32 draws from one seed.
 */

export interface Rng {
  /** Next raw output, a uniform integer in [0, 2^32). */
  nextUint32(): number;
  /** Uniform float in [0, 1) with 32 bits of resolution. */
  nextFloat(): number;
  /**
   * Uniform integer in [0, n), exactly uniform (rejection sampling, no modulo bias).
   * n must be an integer in [1, 2^32].
   */
  nextInt(n: number): number;
  /** Current internal state; `mulberry32(state)` continues the same stream. */
  readonly state: number;
}

const TWO_32 = 4294967296;

function checkSeed(seed: number): number {
  if (!Number.isSafeInteger(seed)) {
    throw new RangeError(`seed must be a safe integer, found ${seed}`);
  }
  // Reduce modulo 2^32 so that negative seeds and seeds ≥ 2^32 are still well defined.
  return ((seed % TWO_32) + TWO_32) % TWO_32;
}

/** Seeded mulberry32 generator. The seed is any safe integer, taken modulo 2^32. */
export function mulberry32(seed: number): Rng {
  let s = checkSeed(seed) | 0;
  const nextUint32 = (): number => {
    s = (s + 0x6d2b79f5) | 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  return {
    nextUint32,
    nextFloat: () => nextUint32() / TWO_32,
    nextInt(n: number): number {
      if (!Number.isInteger(n) || n < 1 || n > TWO_32) {
        throw new RangeError(`nextInt(n) needs an integer n in [1, 2^32], found ${n}`);
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

/**
 * Draw `count` distinct entries of `otherPromptIndices` uniformly at random without replacement
 * (a partial Fisher–Yates shuffle driven by `mulberry32(seed)`). Used to pick a relation's
 * negatives among the other relations' prompts. Returns them in draw order, so the first m of
 * a sample of n are themselves a uniform sample of m for the same seed.
 *
 * Throws RangeError when count is not an integer in [0, available], when the input has
 * duplicates (sampling "without replacement" would be ambiguous), or holds non-indices.
 */
export function sampleNegatives(otherPromptIndices: readonly number[], count: number, seed: number): number[] {
  const n = otherPromptIndices.length;
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
  const rng = mulberry32(seed);
  const pool = otherPromptIndices.slice();
  for (let i = 0; i < count; i++) {
    const j = i + rng.nextInt(n - i);
    const t = pool[i];
    pool[i] = pool[j];
    pool[j] = t;
  }
  return pool.slice(0, count);
}
