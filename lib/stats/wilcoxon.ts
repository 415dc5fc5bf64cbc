/**
 * The Wilcoxon signed-rank test of App. E (fact frequency of resilient vs sensitive facts,
 * paired per relation). simple-statistics only has the rank-sum statistic.
 */

export type Alternative = 'two-sided' | 'greater' | 'less';

export interface WilcoxonResult {
  /** Differences used (zeros dropped, Wilcoxon's method). */
  n: number;
  /** Zero differences dropped. */
  zeros: number;
  /** Sum of the ranks of |d| over positive / negative differences (mid-ranks for ties). */
  wPlus: number;
  wMinus: number;
  /** As scipy.stats.wilcoxon: min(W+, W−) for two-sided, W+ otherwise. */
  statistic: number;
  p: number;
  /** exact: the sign-flip distribution of the observed ranks (n ≤ 50); normal: the large-sample approximation. */
  method: 'exact' | 'normal';
  alternative: Alternative;
}

/** Mid-ranks (1-based) of `xs`, ties sharing the average rank. */
export function midRanks(xs: readonly number[]): number[] {
  const order = xs.map((v, i) => [v, i] as const).sort((a, b) => a[0] - b[0]);
  const ranks = new Array<number>(xs.length);
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && order[j + 1]![0] === order[i]![0]) j++;
    for (let t = i; t <= j; t++) ranks[order[t]![1]] = (i + j) / 2 + 1;
    i = j + 1;
  }
  return ranks;
}

/** Standard normal CDF (Abramowitz–Stegun 7.1.26 via erf; |error| < 1.5e-7). */
function normalCdf(z: number): number {
  const t = 1 / (1 + 0.3275911 * (Math.abs(z) / Math.SQRT2));
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-(z * z) / 2);
  return z >= 0 ? 0.5 * (1 + y) : 0.5 * (1 - y);
}

/**
 * Wilcoxon signed-rank test of the differences `x − y` (or of `x` against 0 when `y` is omitted).
 * Zero differences are dropped. For n ≤ 50 the p-value is exact: under H0 every sign pattern of
 * the observed ranks is equally likely (mid-ranks for ties, so the test stays exact with ties);
 * without ties this equals scipy.stats.wilcoxon's exact p. For n > 50 it uses the normal
 * approximation with the tie correction and no continuity correction (scipy's default).
 */
export function wilcoxonSignedRank(x: readonly number[], y?: readonly number[], opts: { alternative?: Alternative } = {}): WilcoxonResult {
  if (y && y.length !== x.length) throw new RangeError(`wilcoxonSignedRank: x has ${x.length} values, y has ${y.length}`);
  const alternative = opts.alternative ?? 'two-sided';
  const all = x.map((v, i) => v - (y ? y[i]! : 0));
  if (all.some((d) => !Number.isFinite(d))) throw new RangeError('wilcoxonSignedRank: differences must be finite numbers');
  const d = all.filter((v) => v !== 0);
  const n = d.length;
  const ranks = midRanks(d.map(Math.abs));
  let wPlus = 0;
  let wMinus = 0;
  d.forEach((v, i) => (v > 0 ? (wPlus += ranks[i]!) : (wMinus += ranks[i]!)));
  const statistic = alternative === 'two-sided' ? Math.min(wPlus, wMinus) : wPlus;
  if (n === 0) return { n, zeros: all.length, wPlus, wMinus, statistic, p: 1, method: 'exact', alternative };
  let pLow: number; // P(W+ ≤ observed)
  let pHigh: number; // P(W+ ≥ observed)
  let method: WilcoxonResult['method'];
  if (n <= 50) {
    // Doubled ranks are integers; count sign patterns by their W+ (dynamic programming).
    const r2 = ranks.map((r) => Math.round(2 * r));
    const max = r2.reduce((a, b) => a + b, 0);
    let counts = new Float64Array(max + 1);
    counts[0] = 1;
    for (const r of r2) {
      const next = new Float64Array(max + 1);
      for (let s = 0; s <= max; s++) {
        const c = counts[s]!;
        if (c === 0) continue;
        next[s] += c;
        if (s + r <= max) next[s + r] += c;
      }
      counts = next;
    }
    const total = 2 ** n;
    const w = Math.round(2 * wPlus);
    let low = 0;
    let high = 0;
    for (let s = 0; s <= max; s++) {
      if (s <= w) low += counts[s]!;
      if (s >= w) high += counts[s]!;
    }
    pLow = low / total;
    pHigh = high / total;
    method = 'exact';
  } else {
    const mean = (n * (n + 1)) / 4;
    // Tie correction: Σ (t³ − t) / 48 over groups of tied |d|.
    const groups = new Map<number, number>();
    for (const r of ranks) groups.set(r, (groups.get(r) ?? 0) + 1);
    let tie = 0;
    for (const t of groups.values()) tie += t ** 3 - t;
    const sd = Math.sqrt((n * (n + 1) * (2 * n + 1)) / 24 - tie / 48);
    const z = sd > 0 ? (wPlus - mean) / sd : 0;
    pLow = normalCdf(z);
    pHigh = 1 - normalCdf(z);
    method = 'normal';
  }
  const p = alternative === 'greater' ? pHigh : alternative === 'less' ? pLow : Math.min(1, 2 * Math.min(pLow, pHigh));
  return { n, zeros: all.length - n, wPlus, wMinus, statistic, p, method, alternative };
}
