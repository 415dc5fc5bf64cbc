/**
 * float16 ↔ float32 at the bit level, one implementation for the whole project: the converter
 * (weights-converter/numeric.ts), float16 weight storage (lib/model/weights.ts) and float16
 * activation stores (lib/method/activation-store.ts) all use these.
 */

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

/** float16 bits → float32 value for all 65,536 halves (256 KiB), filled from halfBitsToFloatBits: a lookup is much faster than bit-twiddling per value in JS. */
export const HALF_TO_FLOAT32 = (() => {
  const t = new Float32Array(65536);
  const bits = new Uint32Array(t.buffer);
  for (let h = 0; h < 65536; h++) bits[h] = halfBitsToFloatBits(h);
  return t;
})();

/** The same table as float32 bit patterns. */
export const HALF_TO_FLOAT32_BITS = new Uint32Array(HALF_TO_FLOAT32.buffer);

export function halfToFloat(h: number): number {
  return HALF_TO_FLOAT32[h]!;
}

const f32scratch = new Float32Array(1);
const u32scratch = new Uint32Array(f32scratch.buffer);

/** A number → the float16 bits nearest to it as a float32 (ties to even). */
export function floatToHalf(x: number): number {
  f32scratch[0] = x;
  return floatBitsToHalfBits(u32scratch[0]!);
}
