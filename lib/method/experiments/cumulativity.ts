/** §4.4, Fig. 6 and Table 3: do the neurons ranked k_a+1 … k_b alone break what the top-k_b broke? */
import type { Experiment } from '../experiment.ts';
import { checkResults, relationPrompts, resultProvenance, type Context, type Job, type JobResult } from '../jobs.ts';
import { ablation, type AblationOp, type PoolName } from '../neurons.ts';
import type { Provenance } from '../identity.ts';
import { rankRange } from '../ranking.ts';
import { mean } from '../../stats/summary.ts';
import { holds, type VerdictInput } from '../verdicts.ts';
import type { SweepResult } from './k-sweep.ts';

export interface CumulativityResult {
  schema: 'rsn-cumulativity/1';
  provenance: Provenance;
  ranges: [number, number][];
  relations: string[];
  /** total[r][i] = |T|, affected[r][i] = prompts of T that also fail with only ranks (k_a, k_b] zeroed. */
  total: number[][];
  affected: number[][];
  /** Per range: mean over relations with total > 0 of 1 − affected/total. */
  macro: number[];
  /** Per range: 1 − Σ affected / Σ total. */
  micro: number[];
}

export interface CumulativityOptions {
  /** The k-sweep whose consecutive ks are the ranges (paper: 10–50, 50–200, …, 20000–50000). */
  sweep: SweepResult;
  pool?: PoolName;
  ablate?: AblationOp;
}

/**
 * For each relation and consecutive ks (k_a, k_b] of the sweep, the prompts T that are right with
 * the top-k_a zeroed and wrong with the top-k_b zeroed, run with only the neurons ranked
 * k_a+1 … k_b zeroed.
 */
export interface CumulativityPlan {
  ranges: [number, number][];
  pool: PoolName;
  relations: string[];
  ablate: AblationOp;
  /** total[r][i] = |T| of relation r and range i. */
  total: number[][];
  /** One job per (relation, range) with a non-empty T. */
  jobs: Job[];
}

function plan(ctx: Context, opts: CumulativityOptions): CumulativityPlan {
  const { sweep } = opts;
  const pool = opts.pool ?? 'ffn';
  const how = opts.ablate ?? ctx.ablate;
  const ranges: [number, number][] = [];
  const kis: [number, number][] = [];
  for (let i = 0; i + 1 < sweep.ks.length; i++) {
    if (sweep.ks[i]! === 0) continue;
    ranges.push([sweep.ks[i]!, sweep.ks[i + 1]!]);
    kis.push([i, i + 1]);
  }
  const names = sweep.relations;
  const targets = names.map((r, ri) => {
    const prompts = relationPrompts(ctx, r, 'eva');
    return kis.map(([a, b]) => prompts.flatMap((p, pi) => (sweep.ownCorrect[ri]![a]![pi] && !sweep.ownCorrect[ri]![b]![pi] ? [p] : [])));
  });
  const jobs: Job[] = [];
  names.forEach((r, ri) =>
    ranges.forEach(([ka, kb], i) => {
      const t = targets[ri]![i]!;
      if (t.length) jobs.push({ key: { r, i }, prompts: t, ablation: ablation(rankRange(ctx.ranking, r, ka, kb, pool), how) });
    }),
  );
  return { ranges, pool, relations: names, ablate: how, total: targets.map((t) => t.map((x) => x.length)), jobs };
}

function summarise(ctx: Context, plan: CumulativityPlan, results: readonly JobResult[]): CumulativityResult {
  checkResults('cumulativity.summarise', plan.jobs, results);
  const { ranges, total } = plan;
  const names = plan.relations;
  const affected = names.map((r) => ranges.map((_, i) => results.find((x) => x.key['r'] === r && x.key['i'] === i)?.correct.filter((c) => !c).length ?? 0));
  const macro = ranges.map((_, i) => mean(names.flatMap((__, ri) => (total[ri]![i]! > 0 ? [1 - affected[ri]![i]! / total[ri]![i]!] : []))));
  const micro = ranges.map((_, i) => {
    const t = names.reduce((a, __, ri) => a + total[ri]![i]!, 0);
    const f = names.reduce((a, __, ri) => a + affected[ri]![i]!, 0);
    return t > 0 ? 1 - f / t : NaN;
  });
  return { schema: 'rsn-cumulativity/1', provenance: resultProvenance(ctx, { pool: plan.pool }, plan.ablate), ranges, relations: names, total, affected, macro, micro };
}

/** Ranks with ties averaged, 0-based. */
function ranks(xs: readonly number[]): number[] {
  const o = xs.map((v, i) => [v, i] as const).sort((a, b) => a[0] - b[0]);
  const r = new Array<number>(xs.length);
  for (let i = 0; i < o.length; ) {
    let j = i;
    while (j + 1 < o.length && o[j + 1]![0] === o[i]![0]) j++;
    for (let t = i; t <= j; t++) r[o[t]![1]] = (i + j) / 2;
    i = j + 1;
  }
  return r;
}

/** Spearman's ρ (ties averaged); 0 when either side does not vary. */
export function spearmanOrZero(a: readonly number[], b: readonly number[]): number {
  const ra = ranks(a);
  const rb = ranks(b);
  const ma = mean(ra);
  const mb = mean(rb);
  const num = ra.reduce((s, x, i) => s + (x - ma) * (rb[i]! - mb), 0);
  const den = Math.sqrt(ra.reduce((s, x) => s + (x - ma) ** 2, 0) * rb.reduce((s, x) => s + (x - mb) ** 2, 0));
  return den ? num / den : 0;
}

const rangeLabel = ([a, b]: [number, number]) => `${a}–${b}`;

/** Fig. 6's claims. */
function verdicts(cum: CumulativityResult, ctx: Context): VerdictInput[] {
  const pool = ctx.space.poolIndices('ffn').length;
  const ranges = cum.ranges.map(rangeLabel);
  // The rising part of the paper's curve: ranges up to 3000–10000 (the dip comes after), each with at least 5 prompts in T.
  const sumTotal = (j: number) => cum.total.reduce((a, row) => a + row[j]!, 0);
  const rising = cum.ranges.map((_, j) => j).filter((j) => cum.ranges[j]![1] <= 10000 && Number.isFinite(cum.macro[j]!) && sumTotal(j) >= 5);
  const rhoMacro = spearmanOrZero(rising, rising.map((j) => cum.macro[j]!));
  const rhoMicro = spearmanOrZero(rising, rising.map((j) => cum.micro[j]!));
  const tooFew = { status: 'not applicable' as const, detail: 'fewer than 3 ranges with data' };
  const big = cum.ranges.map((_, j) => j).filter((j) => cum.ranges[j]![0] >= 10000);
  const beforeBig = rising.length ? cum.macro[rising[rising.length - 1]!]! : NaN;
  return [
    {
      claim: 'Cumulativity rises with the rank range (macro)',
      paper: 'rises from 10–50 to 3000–10000 (Fig. 6)',
      ours: rising.length < 3 ? null : `Spearman ρ(range, macro) = ${rhoMacro.toFixed(2)} over ${rising.map((j) => ranges[j]).join(', ')}: ${rising.map((j) => cum.macro[j]!.toFixed(2)).join(' → ')}`,
      ...(rising.length < 3 ? tooFew : { status: holds(rhoMacro > 0), detail: 'criterion: ρ > 0 over the ranges up to 3000–10000 with at least 5 prompts' }),
    },
    {
      claim: 'Cumulativity rises with the rank range (micro)',
      paper: 'rises (Fig. 6)',
      ours: rising.length < 3 ? null : `ρ = ${rhoMicro.toFixed(2)}: ${rising.map((j) => cum.micro[j]!.toFixed(2)).join(' → ')}`,
      ...(rising.length < 3 ? tooFew : { status: holds(rhoMicro > 0), detail: 'criterion: ρ > 0' }),
    },
    {
      claim: 'It dips at the two largest ranges (10k–20k, 20k–50k)',
      paper: 'dip',
      ours: big.length === 0 ? null : big.map((j) => `${ranges[j]}: ${Number.isFinite(cum.macro[j]!) ? cum.macro[j]!.toFixed(2) : '–'}`).join(', '),
      ...(big.length === 0
        ? { status: 'not applicable' as const, detail: `these ranges lie beyond this model's ${pool} FFN neurons` }
        : { status: holds(big.every((j) => cum.macro[j]! < beforeBig)), detail: `criterion: below the macro value at ${ranges[rising[rising.length - 1]!]} (${beforeBig.toFixed(2)})` }),
    },
  ];
}

export const cumulativity: Experiment<CumulativityOptions, CumulativityPlan, CumulativityResult> = {
  name: 'cumulativity',
  paper: '§4.4, Fig. 6, Table 3',
  jobKind: 'generate',
  plan,
  summarise,
  verdicts: (result, ctx) => verdicts(result, ctx),
};
