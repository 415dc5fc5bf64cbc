/**
 * A small seeded PRNG so that splits (and anything else sampled from data) are identical on
 * every machine and Node version: Math.random cannot be seeded, and mulberry32 uses only
 * 32-bit integer arithmetic (Math.imul, >>>), which JavaScript defines exactly.
 */

export const RNG_NAME = 'mulberry32';

/** Throws unless `seed` is an integer in [0, 2^32), the state space of mulberry32. */
export function checkSeed(seed: number, what = 'seed'): number {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(`${what}: expected an integer in [0, 4294967295], found ${String(seed)}`);
  }
  return seed;
}

export interface Rng {
  /** Next value in [0, 2^32). */
  nextUint32(): number;
  /** Next value in [0, 1), a multiple of 2^-32. */
  next(): number;
  /** Uniform-enough integer in [0, n); the bias is below n / 2^32, negligible for data sizes. */
  int(n: number): number;
}

/** mulberry32 (Tommy Ettinger, public domain). */
export function mulberry32(seed: number): Rng {
  let a = checkSeed(seed) >>> 0;
  const nextUint32 = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  return {
    nextUint32,
    next: () => nextUint32() / 4294967296,
    int: (n: number) => {
      if (!Number.isInteger(n) || n <= 0) throw new RangeError(`Rng.int: expected a positive integer, found ${n}`);
      return Math.floor((nextUint32() / 4294967296) * n);
    },
  };
}

/** Fisher–Yates shuffle into a new array (the input is left alone). */
export function shuffled<T>(items: readonly T[], rng: Rng): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const tmp = out[i];
    out[i] = out[j];
    out[j] = tmp;
  }
  return out;
}
