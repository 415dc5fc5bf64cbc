/**
 * Bit-level float conversions used by the converter: bf16/f16/f32 sources to f32 or f16
 * storage, with counts of non-finite source values and of values that overflow float16.
 *
 * All functions work on little-endian bit patterns in typed arrays (the converter refuses to
 * run on a big-endian host).
 */
import { floatBitsToHalfBits, HALF_TO_FLOAT32_BITS } from '../lib/half.ts';

/** The largest finite float16 value. */
export const HALF_MAX = 65504;
/** Bit pattern (sign cleared) of float32 65504; anything above it (and finite) overflows half. */
const HALF_MAX_F32_BITS = 0x477fe000;

/** Running counts over one tensor (chunks are converted one after another). */
export interface ValueStats {
  nan: number;
  inf: number;
  /** Flat index of the first NaN/Inf, -1 if none. */
  firstNonFinite: number;
  /** Finite source values with |x| > 65504 (only counted when storing float16). */
  overflow: number;
  firstOverflow: number;
  firstOverflowValue: number;
}

export function newStats(): ValueStats {
  return { nan: 0, inf: 0, firstNonFinite: -1, overflow: 0, firstOverflow: -1, firstOverflowValue: 0 };
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);
function bitsToFloat(bits: number): number {
  u32Scratch[0] = bits;
  return f32Scratch[0];
}

function noteNonFinite(stats: ValueStats, isNaN: boolean, index: number): void {
  if (isNaN) stats.nan++;
  else stats.inf++;
  if (stats.firstNonFinite < 0) stats.firstNonFinite = index;
}

function noteOverflow(stats: ValueStats, bits: number, index: number): void {
  stats.overflow++;
  if (stats.firstOverflow < 0) {
    stats.firstOverflow = index;
    stats.firstOverflowValue = bitsToFloat(bits);
  }
}

/**
 * Convert `n` values from `src` (F32: a Uint32Array of float bits; F16/BF16: a Uint16Array)
 * into `out` (float32 storage: Uint32Array of float bits; float16 storage: Uint16Array).
 * `base` is the flat index of src[0] within the tensor (for error messages).
 * When source and storage formats are identical, `out` may be `src` (values are only checked).
 */
export function convertValues(
  srcDtype: 'F32' | 'F16' | 'BF16',
  storage: 'float32' | 'float16',
  src: Uint16Array | Uint32Array,
  out: Uint16Array | Uint32Array,
  n: number,
  base: number,
  stats: ValueStats,
): void {
  if (srcDtype === 'F32') {
    const s = src as Uint32Array;
    if (storage === 'float32') {
      const o = out as Uint32Array;
      for (let i = 0; i < n; i++) {
        const b = s[i];
        if ((b & 0x7f800000) === 0x7f800000) noteNonFinite(stats, (b & 0x007fffff) !== 0, base + i);
        o[i] = b;
      }
    } else {
      const o = out as Uint16Array;
      for (let i = 0; i < n; i++) {
        const b = s[i];
        const a = b & 0x7fffffff;
        if (a > HALF_MAX_F32_BITS) {
          if (a >= 0x7f800000) noteNonFinite(stats, a > 0x7f800000, base + i);
          else noteOverflow(stats, b, base + i);
        }
        o[i] = floatBitsToHalfBits(b);
      }
    }
  } else if (srcDtype === 'BF16') {
    const s = src as Uint16Array;
    if (storage === 'float32') {
      const o = out as Uint32Array;
      for (let i = 0; i < n; i++) {
        const h = s[i];
        if ((h & 0x7f80) === 0x7f80) noteNonFinite(stats, (h & 0x7f) !== 0, base + i);
        o[i] = h << 16;
      }
    } else {
      const o = out as Uint16Array;
      for (let i = 0; i < n; i++) {
        const b = s[i] << 16;
        const a = b & 0x7fffffff;
        if (a > HALF_MAX_F32_BITS) {
          if (a >= 0x7f800000) noteNonFinite(stats, a > 0x7f800000, base + i);
          else noteOverflow(stats, b, base + i);
        }
        o[i] = floatBitsToHalfBits(b);
      }
    }
  } else {
    const s = src as Uint16Array;
    if (storage === 'float16') {
      const o = out as Uint16Array;
      for (let i = 0; i < n; i++) {
        const h = s[i];
        if ((h & 0x7c00) === 0x7c00) noteNonFinite(stats, (h & 0x3ff) !== 0, base + i);
        o[i] = h;
      }
    } else {
      const o = out as Uint32Array;
      const table = HALF_TO_FLOAT32_BITS;
      for (let i = 0; i < n; i++) {
        const h = s[i];
        if ((h & 0x7c00) === 0x7c00) noteNonFinite(stats, (h & 0x3ff) !== 0, base + i);
        o[i] = table[h];
      }
    }
  }
}
