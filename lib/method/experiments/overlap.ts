/** §4.1, Fig. 2: how many top-k neurons two relations share. */
import type { Analysis } from '../experiment.ts';
import type { PoolName } from '../neurons.ts';
import { paperNumbers } from '../paper-numbers.ts';
import { type Ranking, topNeurons } from '../ranking.ts';
import { median } from '../../stats/summary.ts';
import { compare, type VerdictInput } from '../verdicts.ts';

export interface OverlapParams {
  k: number;
  /** FFN neurons of the model: two random k-sets share k²/poolSize on average. */
  poolSize: number;
  pool?: PoolName;
}

export interface OverlapPair {
  a: string;
  b: string;
  overlap: number;
  /** overlap / k. */
  share: number;
  /** overlap / the chance overlap. */
  timesChance: number;
}

export interface OverlapResult {
  k: number;
  /** The mean overlap of two random k-sets, k²/poolSize. */
  chance: number;
  relations: string[];
  /** counts[i][j] = |top-k(i) ∩ top-k(j)|. */
  counts: number[][];
  /** Every pair of different relations once, largest overlap first (ties keep the relations' order). */
  pairs: OverlapPair[];
}

/** |top-k(i) ∩ top-k(j)| for every pair of relations. */
export function overlapMatrix(ranking: Ranking, k: number, pool: PoolName = 'ffn'): { relations: string[]; k: number; counts: number[][] } {
  const names = ranking.relations.map((r) => r.name);
  const sets = names.map((n) => new Set(topNeurons(ranking, n, k, pool)));
  return { relations: names, k, counts: sets.map((a) => sets.map((b) => [...a].filter((x) => b.has(x)).length)) };
}

function summarise(ranking: Ranking, params: OverlapParams): OverlapResult {
  const { k } = params;
  const ov = overlapMatrix(ranking, k, params.pool);
  const chance = (k * k) / params.poolSize;
  const pairs: OverlapPair[] = [];
  ov.relations.forEach((a, i) =>
    ov.relations.forEach((b, j) => {
      const overlap = ov.counts[i]![j]!;
      if (j > i) pairs.push({ a, b, overlap, share: overlap / k, timesChance: overlap / chance });
    }),
  );
  pairs.sort((x, y) => y.overlap - x.overlap);
  return { k, chance, relations: ov.relations, counts: ov.counts, pairs };
}

/** The pair of relations a and b (either order), if both were selected. */
export function overlapPair(result: OverlapResult, a: string, b: string): OverlapPair | undefined {
  return result.pairs.find((p) => (p.a === a && p.b === b) || (p.a === b && p.b === a));
}

/** Rank of the pair among all pairs, 1 = largest; tied pairs share the best rank. */
export function overlapRank(result: OverlapResult, a: string, b: string): number | null {
  const p = overlapPair(result, a, b);
  return p ? 1 + result.pairs.filter((x) => x.overlap > p.overlap).length : null;
}

/** The overlap matrix as a table (one row per relation, a column per relation). */
export function overlapTable(result: OverlapResult): Record<string, string | number>[] {
  return result.relations.map((r, i) => ({ relation: r, ...Object.fromEntries(result.relations.map((c, j) => [c, result.counts[i]![j]!])) }));
}

/** The largest pairs as the notebook's table shows them. */
export function overlapPairTable(result: OverlapResult, n = 12): Record<string, string | number>[] {
  return result.pairs.slice(0, n).map((p) => ({ a: p.a, b: p.b, overlap: p.overlap, share: p.share, '× chance': p.timesChance }));
}

function verdicts(result: OverlapResult): VerdictInput[] {
  const { k, chance, pairs } = result;
  const paper = paperNumbers().ranking;
  const percent = (overlap: number) => Number(((100 * overlap) / paper.k).toFixed(1));
  const fm = overlapPair(result, 'person_father', 'person_mother');
  const os = overlapPair(result, 'person_occupation', 'person_sport_position');
  const cc = overlapPair(result, 'company_ceo', 'company_hq');
  const ccRank = overlapRank(result, 'company_ceo', 'company_hq');
  const fmPaper = percent(paper.overlapFatherMother);
  const osPaper = percent(paper.overlapOccupationSportPosition);
  return [
    {
      claim: `person_father and person_mother share most of their neurons (7B: ${paper.overlapFatherMother} of ${paper.k})`,
      paper: `${paper.overlapFatherMother}/${paper.k} = ${fmPaper} %`,
      ours: fm ? `${fm.overlap}/${k} = ${(100 * fm.share).toFixed(1)} % (${fm.timesChance.toFixed(1)}× chance), rank ${overlapRank(result, 'person_father', 'person_mother')} of ${pairs.length} pairs` : null,
      ...(fm ? compare(fmPaper, 100 * fm.share, { tolerance: 15, unit: 'points' }) : { status: 'not applicable' as const, detail: 'person_father or person_mother not selected' }),
    },
    {
      claim: `person_occupation ∩ person_sport_position is a notable pair (7B: ${paper.overlapOccupationSportPosition} of ${paper.k})`,
      paper: `${paper.overlapOccupationSportPosition}/${paper.k} = ${osPaper} %`,
      ours: os ? `${os.overlap}/${k} = ${(100 * os.share).toFixed(1)} % (${os.timesChance.toFixed(1)}× chance)` : null,
      ...(os ? compare(osPaper, 100 * os.share, { tolerance: 5, unit: 'points' }) : { status: 'not applicable' as const, detail: 'relation not selected' }),
    },
    {
      claim: 'Same-subject pairs (company_ceo / company_hq) overlap noticeably more than other pairs',
      paper: 'company_ceo / company_hq above other pairs',
      ours: cc ? `${cc.overlap} = ${cc.timesChance.toFixed(1)}× chance (rank ${ccRank} of ${pairs.length}; median pair ${median(pairs.map((p) => p.overlap))})` : null,
      ...(cc
        ? { status: cc.overlap >= 2 * chance && ccRank! <= Math.ceil(pairs.length / 4) ? ('reproduced' as const) : ('differs' as const), detail: `criterion: at least 2× the chance overlap (${chance.toFixed(1)}) and in the top quarter of all pairs` }
        : { status: 'not applicable' as const, detail: 'relation not selected' }),
    },
  ];
}

export const overlap: Analysis<Ranking, OverlapParams, OverlapResult> = {
  name: 'overlap',
  paper: '§4.1, Fig. 2',
  summarise,
  verdicts,
};
