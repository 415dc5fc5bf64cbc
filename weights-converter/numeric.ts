/**
 * Bit-level float conversions used by the converter: bf16/f16/f32 sources to f32 or f16
 * storage, with counts of non-finite source values and of values that overflow float16.
 *
 * All functions work on little-endian bit patterns in typed arrays (the converter refuses to
 * run on a big-endian host).
 */

/** The largest finite float16 value. */
export const HALF_MAX = 65504;
/** Bit pattern (sign cleared) of float32 65504; anything above it (and finite) overflows half. */
const HALF_MAX_F32_BITS = 0x477fe000;

/**
 * float32 bits → float16 bits, round to nearest, ties to even (a port of numpy's
 * `npy_floatbits_to_halfbits`). Overflow gives ±Inf, NaN stays NaN, tiny values become
 * subnormal halves or signed zero.
 */
export function floatBitsToHalfBits(f: number): number {
  const hSgn = (f >>> 16) & 0x8000;
  const fExp = f & 0x7f800000;
  if (fExp >= 0x47800000) {
    if (fExp === 0x7f800000) {
      const fSig = f & 0x007fffff;
      if (fSig !== 0) {
        let ret = 0x7c00 + (fSig >>> 13);
        if (ret === 0x7c00) ret++; // keep it a NaN
        return hSgn + ret;
      }
      return hSgn + 0x7c00; // ±Inf
    }
    return hSgn + 0x7c00; // overflow → ±Inf
  }
  if (fExp <= 0x38000000) {
    // Result is a subnormal half or signed zero.
    if (fExp < 0x33000000) return hSgn;
    const e = fExp >>> 23;
    let fSig = (0x00800000 + (f & 0x007fffff)) >>> (113 - e);
    // Round half to even; the shift above may have dropped up to 11 bits, checked in f itself.
    if ((fSig & 0x3fff) !== 0x1000 || (f & 0x7ff) !== 0) fSig += 0x1000;
    return hSgn + (fSig >>> 13); // a carry into the exponent field is the correct result
  }
  const hExp = (fExp - 0x38000000) >>> 13;
  let fSig = f & 0x007fffff;
  if ((fSig & 0x3fff) !== 0x1000) fSig += 0x1000;
  return hSgn + hExp + (fSig >>> 13); // a carry may reach 0x7c00 = Inf, which is correct
}

/** float16 bits → float32 bits (exact; subnormals, ±Inf and NaN included). */
export function halfBitsToFloatBits(h: number): number {
  const s = (h & 0x8000) << 16;
  const e = (h >>> 10) & 0x1f;
  let m = h & 0x3ff;
  if (e === 0) {
    if (m === 0) return s >>> 0;
    // Subnormal: normalise the mantissa.
    let e2 = 1;
    while ((m & 0x400) === 0) {
      m <<= 1;
      e2--;
    }
    m &= 0x3ff;
    return (s | ((e2 + 112) << 23) | (m << 13)) >>> 0;
  }
  if (e === 31) return (s | 0x7f800000 | (m << 13)) >>> 0;
  return (s | ((e + 112) << 23) | (m << 13)) >>> 0;
}

let halfTable: Uint32Array | null = null;
/** 65536-entry float16 → float32 bits table (256 KiB, built on first use). */
function halfToFloatTable(): Uint32Array {
  if (halfTable === null) {
    halfTable = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfBitsToFloatBits(h);
  }
  return halfTable;
}

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
      const table = halfToFloatTable();
      for (let i = 0; i < n; i++) {
        const h = s[i];
        if ((h & 0x7c00) === 0x7c00) noteNonFinite(stats, (h & 0x3ff) !== 0, base + i);
        o[i] = table[h];
      }
    }
  }
}
