/** How a call's rows are shared among workers. */

/** Contiguous row ranges, as even as possible, at most `parts` of them and none empty. */
export function splitRows(rows: number, parts: number): [number, number][] {
  const n = Math.max(1, Math.min(parts, rows));
  return Array.from({ length: n }, (_, i) => [Math.floor((i * rows) / n), Math.floor(((i + 1) * rows) / n)] as [number, number]);
}
