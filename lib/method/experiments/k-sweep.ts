/** §4.3, Fig. 5: every relation's P^eva accuracy as more of one relation's top neurons are zeroed. */
import { sampleRankCorrelation } from 'simple-statistics';
import type { Experiment } from '../experiment.ts';
import { checkResults, relationPrompts, relationsOf, resultProvenance, type Context, type Job, type JobResult } from '../jobs.ts';
import { ablation, type AblationOp, type PoolName } from '../neurons.ts';
import type { Provenance } from '../identity.ts';
import { topNeurons } from '../ranking.ts';
import { mean } from '../../stats/summary.ts';
import { holds, type VerdictInput } from '../verdicts.ts';

/** The paper's ks (Fig. 5); quick mode sweeps QUICK_KS. */
export const PAPER_KS = [0, 10, 50, 200, 500, 1000, 3000, 10000, 20000, 50000];
export const QUICK_KS = [0, 10, 50, 200, 1000, 3000];

export interface SweepResult {
  schema: 'rsn-ksweep/1';
  provenance: Provenance;
  ks: number[];
  poolSize: number;
  relations: string[];
  /** accuracy[r][ki][j]: relation j's P^eva accuracy with relation r's top-ks[ki] zeroed. */
  accuracy: number[][][];
  /** correct[r][ki]: per-prompt correctness of relation r's own P^eva (for cumulativity). */
  ownCorrect: boolean[][][];
}

export interface SweepOptions {
  ks?: number[];
  pool?: PoolName;
  /** How the selected neurons are ablated (default: the context's, i.e. zeroed as in the paper). */
  ablate?: AblationOp;
  /** Quick mode: the ks of QUICK_KS instead of those given. */
  quick?: boolean;
}

/** For each relation r and k, every relation's P^eva with r's top-k ablated. */
export interface SweepPlan {
  /** The ks, capped at the pool size and deduplicated (a large k on a small model = the whole pool). */
  ks: number[];
  pool: PoolName;
  poolSize: number;
  relations: string[];
  ablate: AblationOp;
  jobs: Job[];
}

function plan(ctx: Context, opts: SweepOptions): SweepPlan {
  const pool = opts.pool ?? 'ffn';
  const poolSize = ctx.space.poolIndices(pool).length;
  const asked = opts.quick ? QUICK_KS : (opts.ks ?? PAPER_KS);
  const ks = [...new Set(asked.map((k) => Math.min(k, poolSize)))].sort((a, b) => a - b);
  const how = opts.ablate ?? ctx.ablate;
  const names = relationsOf(ctx);
  const jobs: Job[] = [];
  for (const r of names) {
    ks.forEach((k, ki) => {
      const own = k === 0 ? null : ablation(topNeurons(ctx.ranking, r, k, pool), how);
      for (const j of names) jobs.push({ key: { r, ki, j }, prompts: relationPrompts(ctx, j, 'eva'), ablation: own });
    });
  }
  return { ks, pool, poolSize, relations: names, ablate: how, jobs };
}

function summarise(ctx: Context, plan: SweepPlan, results: readonly JobResult[]): SweepResult {
  checkResults('kSweep.summarise', plan.jobs, results);
  const names = plan.relations;
  const at = (r: string, ki: number, j: string) => results.find((x) => x.key['r'] === r && x.key['ki'] === ki && x.key['j'] === j)!;
  return {
    schema: 'rsn-ksweep/1',
    provenance: resultProvenance(ctx, { pool: plan.pool }, plan.ablate),
    ks: plan.ks,
    poolSize: plan.poolSize,
    relations: names,
    accuracy: names.map((r) => plan.ks.map((_, ki) => names.map((j) => at(r, ki, j).accuracy))),
    ownCorrect: names.map((r) => plan.ks.map((_, ki) => at(r, ki, r).correct)),
  };
}

/** Accuracy % of each relation's own P^eva per k, and the mean of the other relations'. */
export function sweepCurves(sweep: SweepResult): { own: number[][]; others: number[][] } {
  const own = sweep.relations.map((_, r) => sweep.ks.map((__, ki) => 100 * sweep.accuracy[r]![ki]![r]!));
  const others = sweep.relations.map((_, r) => sweep.ks.map((__, ki) => 100 * mean(sweep.accuracy[r]![ki]!.filter((___, j) => j !== r))));
  return { own, others };
}

/** Fig. 5's claims; `k` is the k the other notebooks use. */
function verdicts(sweep: SweepResult, _ctx: Context, opts: { k: number }): VerdictInput[] {
  const R = sweep.relations;
  const pool = sweep.poolSize;
  const { own, others } = sweepCurves(sweep);
  // Within the paper's range of k: at most 6 % of the FFN pool (50,000 of 835,584); at least 3 points.
  const inRange = sweep.ks.map((_, i) => i).filter((i) => sweep.ks[i]! <= 0.06 * pool);
  const use = inRange.length >= 3 ? inRange : sweep.ks.map((_, i) => i);
  const falling = R.filter((_, i) => {
    const o = use.map((j) => own[i]![j]!);
    return o[o.length - 1]! < o[0]! && sampleRankCorrelation(use.map((j) => sweep.ks[j]!), o) <= -0.5;
  });
  // Others at the sweep k closest to (not above) the k of the other notebooks.
  const ki = Math.max(0, sweep.ks.filter((x) => x <= opts.k).length - 1);
  const kAt = sweep.ks[ki]!;
  const relDrop = (curve: number[][]) => mean(R.map((_, i) => (curve[i]![0]! > 0 ? (curve[i]![0]! - curve[i]![ki]!) / curve[i]![0]! : 0))) * 100;
  const ownDrop = relDrop(own);
  const othersDrop = relDrop(others);
  const kMax = sweep.ks[sweep.ks.length - 1]!;
  const hq = R.indexOf('company_hq');
  const last = (xs: number[]) => xs[xs.length - 1]!;
  return [
    {
      claim: "A relation's own accuracy falls steadily as more of its top neurons are zeroed",
      paper: 'falls with k for every relation (Fig. 5)',
      ours: `${falling.length}/${R.length} relations over k = ${use.map((j) => sweep.ks[j]).join(', ')}; mean own accuracy ${mean(own.map((o) => o[use[0]!]!)).toFixed(0)} % → ${mean(own.map((o) => o[use[use.length - 1]!]!)).toFixed(0)} %`,
      status: holds(falling.length >= Math.ceil(0.75 * R.length)),
      detail: `criterion: Spearman ρ(k, accuracy) ≤ −0.5 and lower at the largest k, for ≥ 3/4 of the relations; ks ${inRange.length >= 3 ? "within the paper's range (≤ 6 % of the FFN pool)" : '(all: fewer than 3 within 6 % of the pool)'}`,
    },
    {
      claim: 'At the chosen k the other relations stay stable while the own relation drops',
      paper: 'others stable up to k ≈ 3000–10,000 (0.36–1.2 % of FFN)',
      ours: kAt === 0 ? null : `at k = ${kAt} (${((100 * kAt) / pool).toFixed(2)} %): own −${ownDrop.toFixed(1)} %, others −${othersDrop.toFixed(1)} % (relative)`,
      ...(kAt === 0
        ? { status: 'not applicable' as const, detail: 'no swept k at or below the chosen k' }
        : { status: holds(ownDrop > 0 && othersDrop < ownDrop / 2), detail: "criterion: the others' mean relative drop is less than half the own relation's" }),
    },
    {
      claim: "Only company_hq's top-50,000 take every relation to ≈ 0 (7B)",
      paper: 'company_hq at k = 50,000: all relations ≈ 0',
      ours: hq < 0 || kMax < 50000 ? null : `company_hq: others ${last(others[hq]!).toFixed(0)} %; lowest of the other relations' rows: ${Math.min(...others.filter((_, i) => i !== hq).map(last)).toFixed(0)} %`,
      ...(hq < 0
        ? { status: 'not applicable' as const, detail: 'company_hq not selected' }
        : kMax < 50000
          ? { status: 'not applicable' as const, detail: `k = 50,000 is beyond this model's ${pool} FFN neurons (largest swept k: ${kMax} = ${((100 * kMax) / pool).toFixed(0)} % of the pool)` }
          : { status: holds(last(others[hq]!) < 10 && others.every((o, i) => i === hq || last(o) > last(others[hq]!))), detail: "criterion: company_hq's others < 10 % and the lowest of all relations" }),
    },
  ];
}

export const kSweep: Experiment<SweepOptions, SweepPlan, SweepResult, Job, { k: number }> = {
  name: 'k-sweep',
  paper: '§4.3, Fig. 5',
  jobKind: 'generate',
  plan,
  summarise,
  verdicts,
};
