/** How a call's rows are cut into parts. */

/** Contiguous row ranges of `size` rows (the last one shorter), in order; none for no rows. */
export function fixedParts(rows: number, size: number): [number, number][] {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`a part needs a positive integer of rows, got ${size}`);
  return Array.from({ length: Math.ceil(rows / size) }, (_, i) => [i * size, Math.min(rows, (i + 1) * size)] as [number, number]);
}
