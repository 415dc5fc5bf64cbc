/** §3, Fig. 2's premise: every relation has neurons whose AP is far above chance, down to rank k. */
import type { Analysis } from '../experiment.ts';
import { paperNumbers } from '../paper-numbers.ts';
import { rankableIdentificationSet, type Ranking, topNeurons } from '../ranking.ts';
import type { VerdictInput } from '../verdicts.ts';

export interface IdentificationParams {
  k: number;
  /** FFN neurons of the model (the pool the ranking orders). */
  poolSize: number;
  /** How k was chosen (said in the verdict). */
  kHow: string;
}

export interface ApSummaryRow {
  relation: string;
  positives: number;
  negatives: number;
  /** AP of a random ranking: positives / (positives + negatives). */
  chance: number;
  maxAp: number;
  apAtK: number;
  meanApTopK: number;
  medianAp: number;
  aboveTwiceChance: number;
}

export interface IdentificationResult extends IdentificationParams {
  rows: ApSummaryRow[];
  /** Per relation (rows' order): the AP of every FFN neuron, best first. */
  sortedAp: Float64Array[];
}

function summarise(ranking: Ranking, params: IdentificationParams): IdentificationResult {
  const { k, poolSize } = params;
  const sortedAp = ranking.relations.map((r) => Float64Array.from(topNeurons(ranking, r.name, poolSize), (i) => r.ap[i]!));
  const rows = ranking.relations.map((r, ri) => {
    const s = sortedAp[ri]!;
    const chance = r.numPositives / (r.numPositives + r.numNegatives);
    return {
      relation: r.name,
      positives: r.numPositives,
      negatives: r.numNegatives,
      chance,
      maxAp: s[0]!,
      apAtK: s[k - 1]!,
      meanApTopK: s.slice(0, k).reduce((a, b) => a + b, 0) / k,
      medianAp: s[Math.floor(s.length / 2)]!,
      aboveTwiceChance: s.filter((x) => x > 2 * chance).length,
    };
  });
  return { ...params, rows, sortedAp };
}

/** The rows as the notebook's table shows (and saves) them. */
export function apSummaryTable(result: IdentificationResult): Record<string, string | number>[] {
  const { k } = result;
  return result.rows.map((r) => ({
    relation: r.relation,
    positives: r.positives,
    negatives: r.negatives,
    'chance AP': r.chance,
    'max AP': r.maxAp,
    [`AP at rank ${k}`]: r.apAtK,
    [`mean AP of top-${k}`]: r.meanApTopK,
    'median AP (all FFN)': r.medianAp,
    'neurons with AP > 2× chance': r.aboveTwiceChance,
  }));
}

function verdicts(result: IdentificationResult): VerdictInput[] {
  const { rows, k, poolSize } = result;
  const paper = paperNumbers().ranking;
  const n = rows.length;
  const maxAbove = rows.filter((r) => r.maxAp > r.chance).length;
  const minMax = rows.reduce((a, r) => (r.maxAp < a.maxAp ? r : a));
  const chances = rows.map((r) => r.chance.toFixed(2)).filter((v, i, a) => a.indexOf(v) === i);
  const kthAbove = rows.filter((r) => r.apAtK > r.chance).length;
  return [
    {
      claim: 'The top-AP neuron of every relation scores well above the chance AP (0.2)',
      paper: 'top AP well above 0.2 for every relation',
      ours: `lowest max AP ${minMax.maxAp.toFixed(3)} (${minMax.relation}); ${maxAbove}/${n} relations above chance`,
      status: maxAbove === n && minMax.maxAp > 2 * minMax.chance ? 'reproduced' : 'differs',
      detail: `criterion: max AP > 2× chance for every relation; chance = positives/(positives+negatives) = ${chances.join('/')}`,
    },
    {
      claim: `All top-k neurons of a relation (k = ${k}, ${((100 * k) / poolSize).toFixed(2)} % of FFN) score above chance`,
      paper: `top-${paper.k} of ${paper.ffnPoolSize.toLocaleString('en-US')} (${((100 * paper.k) / paper.ffnPoolSize).toFixed(2)} %) used as relation-specific`,
      ours: `${kthAbove}/${n} relations have AP > chance at rank ${k}; lowest AP at rank k ${Math.min(...rows.map((r) => r.apAtK)).toFixed(3)}`,
      status: kthAbove === n ? 'reproduced' : 'differs',
      detail: `k = ${k} of ${poolSize} FFN neurons (${result.kHow})`,
    },
  ];
}

/**
 * Identification's plan is the identification set: per relation, its known detection prompts as
 * positives and 4× as many other relations' known prompts as negatives. Its job is the ranking
 * (every prompt's token-mean activations once, then the AP of every neuron per relation), which
 * the pipeline caches with its activation store; summarise and verdicts read that ranking.
 */
export const identification: Analysis<Ranking, IdentificationParams, IdentificationResult> & { plan: typeof rankableIdentificationSet } = {
  name: 'identification',
  paper: '§3 (the AP ranking behind Figs. 1–2)',
  plan: rankableIdentificationSet,
  summarise,
  verdicts,
};
