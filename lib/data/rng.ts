/**
 * A small seeded PRNG so that splits (and anything else sampled from data) are identical on
 * every machine and Node version: Math.random cannot be seeded, and mulberry32 uses only
 * 32-bit integer arithmetic (Math.imul, >>>), which JavaScript defines exactly.
 */

import { mulberry32 as statsMulberry32 } from '../stats/rng.ts';

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

/**
 * mulberry32 from lib/stats/rng.ts (same 32-bit stream), with the float-scaled `int` that the
 * committed splits were drawn with (changing it would change every split).
 */
export function mulberry32(seed: number): Rng {
  const g = statsMulberry32(checkSeed(seed));
  return {
    nextUint32: g.nextUint32,
    next: g.nextFloat,
    int: (n: number) => {
      if (!Number.isInteger(n) || n <= 0) throw new RangeError(`Rng.int: expected a positive integer, found ${n}`);
      return Math.floor(g.nextFloat() * n);
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
