/** §4.2.2, Fig. 4: every relation evaluated with each relation's top-k zeroed (the acc_drop matrix). */
import { ConfigError } from '../../errors.ts';
import type { Experiment } from '../experiment.ts';
import { capK, checkResults, relationPrompts, relationsOf, resultProvenance, type Context, type Job, type JobResult } from '../jobs.ts';
import { type Ablation, ablation, type AblationOp, type PoolName } from '../neurons.ts';
import { paperNumbers } from '../paper-numbers.ts';
import type { Provenance } from '../identity.ts';
import { topNeurons } from '../ranking.ts';
import { mean, median } from '../../stats/summary.ts';
import { compare, holds, type VerdictInput } from '../verdicts.ts';

export interface InterResult {
  schema: 'rsn-inter/1';
  provenance: Provenance;
  k: number;
  pool: PoolName;
  set: 'eva' | 'eva2';
  relations: string[];
  original: number[];
  /** accuracy[i][j]: relation i evaluated with relation j's top-k zeroed. */
  accuracy: number[][];
  /** dropPercent[i][j] = (orig_i − acc_ij) / orig_i × 100; negative = improvement; NaN when orig_i = 0. */
  dropPercent: number[][];
}

export interface InterOptions {
  k?: number;
  pool?: PoolName;
  set?: 'eva' | 'eva2';
  /** How the selected neurons are ablated (default: the context's, i.e. zeroed as in the paper). */
  ablate?: AblationOp;
  /**
   * Only this relation's row and column of the matrix: its prompts under every relation's top-k,
   * and every relation's prompts under its top-k (other cells are NaN). A relation of one's own
   * needs no more.
   */
  involving?: string;
}

/** Every relation's top-k, and each relation's prompts under each of them. */
export interface InterPlan {
  k: number;
  pool: PoolName;
  set: 'eva' | 'eva2';
  ablate: AblationOp;
  relations: string[];
  /** Per relation: its top-k neurons, ablated. */
  own: Record<string, Ablation>;
  jobs: Job[];
}

function plan(ctx: Context, opts: InterOptions): InterPlan {
  const pool = opts.pool ?? 'ffn';
  const k = capK(ctx, opts.k ?? 3000, pool);
  const set = opts.set ?? 'eva';
  const how = opts.ablate ?? ctx.ablate;
  const names = relationsOf(ctx);
  const only = opts.involving;
  if (only !== undefined && !names.includes(only)) throw new ConfigError(`involving: "${only}" is not one of the relations (${names.join(', ')})`, undefined, 'involving');
  const own: Record<string, Ablation> = Object.fromEntries(names.map((n) => [n, ablation(topNeurons(ctx.ranking, n, k, pool), how)]));
  const jobs: Job[] = [];
  for (const evaluated of names) {
    const prompts = relationPrompts(ctx, evaluated, set);
    jobs.push({ key: { evaluated, zeroed: '' }, prompts, ablation: null });
    for (const zeroed of names) {
      if (only === undefined || evaluated === only || zeroed === only) jobs.push({ key: { evaluated, zeroed }, prompts, ablation: own[zeroed]! });
    }
  }
  return { k, pool, set, ablate: how, relations: names, own, jobs };
}

function summarise(ctx: Context, plan: InterPlan, results: readonly JobResult[]): InterResult {
  checkResults('interRelation.summarise', plan.jobs, results);
  const names = plan.relations;
  // Cells a plan `involving` one relation left out are NaN.
  const acc = (e: string, z: string) => results.find((r) => r.key['evaluated'] === e && r.key['zeroed'] === z)?.accuracy ?? NaN;
  const original = names.map((n) => acc(n, ''));
  const accuracy = names.map((e) => names.map((z) => acc(e, z)));
  const dropPercent = accuracy.map((row, i) => row.map((a) => (original[i]! > 0 ? ((original[i]! - a) / original[i]!) * 100 : NaN)));
  return {
    schema: 'rsn-inter/1',
    provenance: resultProvenance(ctx, { k: plan.k, pool: plan.pool, set: plan.set }, plan.ablate),
    k: plan.k,
    pool: plan.pool,
    set: plan.set,
    relations: names,
    original,
    accuracy,
    dropPercent,
  };
}

/** The off-diagonal cells of the acc_drop matrix that are numbers. */
export function offDiagonal(inter: InterResult): number[] {
  return inter.dropPercent.flatMap((row, i) => row.filter((v, j) => j !== i && Number.isFinite(v)));
}

/** Per evaluated relation: its diagonal drop, the largest other drop and how many columns raise its accuracy. */
export function interRows(inter: InterResult): { relation: string; 'diagonal drop %': number; 'largest other drop %': number; 'columns with a gain': number }[] {
  const D = inter.dropPercent;
  return inter.relations.map((r, i) => ({
    relation: r,
    'diagonal drop %': D[i]![i]!,
    'largest other drop %': Math.max(...D[i]!.filter((_, j) => j !== i)),
    'columns with a gain': D[i]!.filter((v, j) => j !== i && v < 0).length,
  }));
}

/** Relations whose own neurons cause the largest drop of their row. */
export function diagonalMaxima(inter: InterResult): string[] {
  const D = inter.dropPercent;
  return inter.relations.filter((_, i) => Number.isFinite(D[i]![i]!) && D[i]!.every((v, j) => j === i || !Number.isFinite(v) || v < D[i]![i]!));
}

const notSelected = { status: 'not applicable' as const, detail: 'relation not selected' };

function verdicts(inter: InterResult): VerdictInput[] {
  const paper = paperNumbers().interRelation;
  const R = inter.relations;
  const D = inter.dropPercent;
  const n = R.length;
  const idx = (r: string) => R.indexOf(r);
  const cell = (evaluated: string, zeroed: string) => (idx(evaluated) >= 0 && idx(zeroed) >= 0 ? D[idx(evaluated)]![idx(zeroed)]! : null);
  const offDiag = offDiagonal(inter);
  const medianOff = median(offDiag);
  const diagTop = diagonalMaxima(inter);
  const pair = (claim: string, paperText: string, evaluated: string, zeroed: string, asymmetric: boolean): VerdictInput => {
    const there = cell(evaluated, zeroed);
    const back = cell(zeroed, evaluated);
    if (there === null || back === null) return { claim, paper: paperText, ours: null, ...notSelected };
    const ok = there > medianOff && there > 0 && (!asymmetric || there > back);
    const criterion = `criterion: a drop above the median off-diagonal cell${asymmetric ? ' and above the reverse direction' : ''}`;
    return { claim, paper: paperText, ours: `${there.toFixed(1)} % (reverse direction ${back.toFixed(1)} %; median off-diagonal ${medianOff.toFixed(1)} %)`, status: holds(ok), detail: criterion };
  };
  const mother = interRows(inter).find((r) => r.relation === 'person_mother');
  const ceoHq = cell('company_hq', 'company_ceo');
  const gains = offDiag.filter((v) => v < 0).length;
  return [
    {
      claim: "The drop is largest on the diagonal (a relation's own neurons hurt it most)",
      paper: 'clear diagonal in Fig. 4',
      ours: `diagonal is the row maximum for ${diagTop.length}/${n} relations; mean diagonal ${mean(R.map((_, i) => D[i]![i]!)).toFixed(1)} % vs mean off-diagonal ${mean(offDiag).toFixed(1)} %`,
      status: holds(diagTop.length > n / 2),
      detail: 'criterion: the diagonal is the largest drop of its row for more than half of the relations',
    },
    pair('Versatility: person_pro_sport neurons hurt person_sport_position, not the reverse', 'drop, asymmetric', 'person_sport_position', 'person_pro_sport', true),
    pair('Versatility: person_father neurons hurt person_mother', 'drop', 'person_mother', 'person_father', false),
    pair('Versatility: star_constellation neurons hurt landmark_continent', 'drop', 'landmark_continent', 'star_constellation', false),
    {
      claim: "Interference: person_mother improves when other relations' neurons are zeroed (7B)",
      paper: `gains in ${paper.motherGainColumns} of 11 columns`,
      ours: mother ? `gains in ${mother['columns with a gain']} of ${n - 1} columns` : null,
      ...(mother ? compare(paper.motherGainColumns, mother['columns with a gain'], { tolerance: 2, unit: 'columns' }) : { status: 'not applicable' as const, detail: 'person_mother not selected' }),
    },
    {
      claim: 'Interference: zeroing company_ceo slightly raises company_hq (7B and 13B)',
      paper: 'acc_drop < 0',
      ours: ceoHq === null ? null : `${ceoHq.toFixed(1)} %`,
      ...(ceoHq === null ? notSelected : { status: holds(ceoHq < 0), detail: ceoHq < 0 ? 'a gain' : ceoHq === 0 ? 'no change' : 'a drop instead of a gain' }),
    },
    {
      claim: 'Interference exists: some off-diagonal cells are gains',
      paper: 'several negative cells (7B stronger than 13B)',
      ours: `${gains} of ${offDiag.length} off-diagonal cells are gains (most negative ${Math.min(0, ...offDiag).toFixed(1)} %)`,
      status: holds(gains > 0),
    },
  ];
}

export const interRelation: Experiment<InterOptions, InterPlan, InterResult> = {
  name: 'inter-relation',
  paper: '§4.2.2, Fig. 4',
  jobKind: 'generate',
  plan,
  summarise,
  verdicts: (result) => verdicts(result),
};
