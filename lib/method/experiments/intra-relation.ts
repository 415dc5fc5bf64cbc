/** §4.2.1, Fig. 3: zeroing a relation's own top-k neurons against k random neurons, per relation and prompt set. */
import type { Experiment } from '../experiment.ts';
import { quickCap } from '../experiment.ts';
import { capK, checkResults, relationPrompts, relationsOf, resultProvenance, type Context, type Job, type PromptSetName, type JobResult } from '../jobs.ts';
import { type Ablation, ablation, type AblationOp, randomNeurons, type PoolName } from '../neurons.ts';
import { paperNumbers } from '../paper-numbers.ts';
import type { Provenance } from '../identity.ts';
import { topNeurons } from '../ranking.ts';
import { mean, sampleSd } from '../../stats/summary.ts';
import { holds, compare, type VerdictInput } from '../verdicts.ts';

export interface IntraOptions {
  k?: number;
  randomSeeds?: number;
  pool?: PoolName;
  sets?: PromptSetName[];
  /** At most this many P^det prompts per relation (the random baseline multiplies the work). */
  detLimit?: number;
  /** How the selected neurons are ablated (default: the context's, i.e. zeroed as in the paper). */
  ablate?: AblationOp;
  /** Quick mode: at most 3 random seeds and 50 P^det prompts per relation. */
  quick?: boolean;
  /** Only these relations of the context (default: all; e.g. a relation of one's own). */
  relations?: readonly string[];
}

export interface IntraSetResult {
  original: number;
  randomMean: number;
  randomSd: number;
  random: number[];
  relation: number;
  /** Prompts correct originally and wrong with the relation's neurons zeroed. */
  flips: { prompt: string; object: string; before: string; after: string }[];
}

export interface IntraResult {
  schema: 'rsn-intra/1';
  provenance: Provenance;
  k: number;
  pool: PoolName;
  randomSeeds: number;
  relations: { name: string; sets: Record<string, IntraSetResult> }[];
}

/** The selected neurons, the interventions and the jobs that run them. */
export interface IntraPlan {
  /** The relations planned, in the context's order. */
  relations: string[];
  k: number;
  pool: PoolName;
  randomSeeds: number;
  sets: PromptSetName[];
  detLimit: number | undefined;
  ablate: AblationOp;
  /** Per relation: its top-k neurons, ablated. */
  own: Record<string, Ablation>;
  /** The random-k draws (seeds 1000, 1001, …), shared by every relation. */
  random: Ablation[];
  /** Per relation and prompt set: original, relation-k and each random-k over the same prompts. */
  jobs: Job[];
}

/** Relations whose relation-k accuracy is below the random-k mean by more than 2 sd (and below the original). */
export function relationSpecific(intra: IntraResult, set: PromptSetName): string[] {
  return intra.relations
    .filter((r) => {
      const s = r.sets[set]!;
      return s.relation < s.randomMean - 2 * s.randomSd - 1e-9 && s.relation < s.original;
    })
    .map((r) => r.name);
}

const pct = (x: number) => 100 * x;

function plan(ctx: Context, opts: IntraOptions): IntraPlan {
  const pool = opts.pool ?? 'ffn';
  const k = capK(ctx, opts.k ?? 3000, pool);
  const seeds = quickCap(opts.quick, opts.randomSeeds ?? 10, 3);
  const detLimit = opts.quick ? Math.min(50, opts.detLimit ?? Infinity) : opts.detLimit;
  const sets = opts.sets ?? ['eva', 'det'];
  const how = opts.ablate ?? ctx.ablate;
  const poolIdx = ctx.space.poolIndices(pool);
  const random = Array.from({ length: seeds }, (_, s) => ablation(randomNeurons(poolIdx, k, 1000 + s), how));
  const all = relationsOf(ctx);
  const unknown = (opts.relations ?? []).filter((r) => !all.includes(r));
  if (unknown.length) throw new RangeError(`intraRelation.plan: relations ${unknown.join(', ')} are not in the data (it has ${all.join(', ')})`);
  const relations = opts.relations ? all.filter((r) => opts.relations!.includes(r)) : all;
  const own: Record<string, Ablation> = {};
  const jobs: Job[] = [];
  for (const name of relations) {
    own[name] = ablation(topNeurons(ctx.ranking, name, k, pool), how);
    for (const set of sets) {
      const prompts = relationPrompts(ctx, name, set, detLimit);
      jobs.push({ key: { relation: name, set, condition: 'original' }, prompts, ablation: null });
      jobs.push({ key: { relation: name, set, condition: 'relation' }, prompts, ablation: own[name]! });
      random.forEach((m, s) => jobs.push({ key: { relation: name, set, condition: `random${s}` }, prompts, ablation: m }));
    }
  }
  return { relations, k, pool, randomSeeds: seeds, sets, detLimit, ablate: how, own, random, jobs };
}

function summarise(ctx: Context, plan: IntraPlan, results: readonly JobResult[]): IntraResult {
  checkResults('intraRelation.summarise', plan.jobs, results);
  const get = (relation: string, set: string, condition: string) => results.find((r) => r.key['relation'] === relation && r.key['set'] === set && r.key['condition'] === condition)!;
  return {
    schema: 'rsn-intra/1',
    provenance: resultProvenance(ctx, { k: plan.k, pool: plan.pool, randomSeeds: plan.randomSeeds }, plan.ablate),
    k: plan.k,
    pool: plan.pool,
    randomSeeds: plan.randomSeeds,
    relations: plan.relations.map((name) => ({
      name,
      sets: Object.fromEntries(
        plan.sets.map((set) => {
          const orig = get(name, set, 'original');
          const rel = get(name, set, 'relation');
          const random = plan.random.map((_, s) => get(name, set, `random${s}`).accuracy);
          const prompts = plan.jobs.find((j) => j.key['relation'] === name && j.key['set'] === set)!.prompts;
          const flips = prompts.flatMap((p, i) => (orig.correct[i] && !rel.correct[i] ? [{ prompt: p.text, object: p.object, before: orig.outputs[i]!, after: rel.outputs[i]! }] : []));
          return [set, { original: orig.accuracy, randomMean: mean(random), randomSd: sampleSd(random), random, relation: rel.accuracy, flips }];
        }),
      ),
    })),
  };
}

/** Fig. 3's claims; needs the P^eva and P^det sets. */
function verdicts(intra: IntraResult, ctx: Context): VerdictInput[] {
  const paper = paperNumbers().intraRelation;
  const pool = ctx.space.poolIndices(intra.pool).length;
  const n = intra.relations.length;
  const setMean = (set: PromptSetName, field: 'original' | 'randomMean' | 'relation') => mean(intra.relations.map((r) => pct(r.sets[set]![field])));
  const detSpecific = relationSpecific(intra, 'det');
  const evaSpecific = relationSpecific(intra, 'eva');
  // When k covers the whole pool, relation-k and random-k zero the same neurons: no comparison is possible.
  const whole =
    intra.k >= pool ? { status: 'not applicable' as const, detail: `k = ${intra.k} covers all ${pool} FFN neurons, so relation-k and random-k are the same set (lower kMaxPercent or set kPercent)` } : null;
  const randomDrop = mean(intra.relations.map((r) => pct(r.sets['det']!.original) - pct(r.sets['det']!.randomMean)));
  const zeros = intra.relations.filter((r) => pct(r.sets['eva']!.relation) === 0).map((r) => r.name);
  return [
    {
      claim: "P^det: zeroing a relation's top-k lowers its accuracy far more than zeroing k random neurons",
      paper: 'clear drop for every relation (Fig. 3b)',
      ours: `${detSpecific.length}/${n} relations; mean accuracy ${setMean('det', 'relation').toFixed(1)} % (relation-k) vs ${setMean('det', 'randomMean').toFixed(1)} % (random-k)`,
      status: holds(detSpecific.length >= Math.ceil(0.75 * n)),
      detail: `criterion: ≥ 3/4 of the relations below random by > 2 sd; k = ${intra.k} (${((100 * intra.k) / pool).toFixed(2)} % of ${pool} FFN neurons)`,
      ...whole,
    },
    {
      claim: 'P^eva (subjects unseen in P^det): a drop for most relations, so the neurons are entity-independent',
      paper: 'notable drop for most relations (Fig. 3a)',
      ours: `${evaSpecific.length}/${n} relations; mean accuracy ${setMean('eva', 'relation').toFixed(1)} % vs random ${setMean('eva', 'randomMean').toFixed(1)} % vs original ${setMean('eva', 'original').toFixed(1)} %`,
      status: holds(evaSpecific.length > n / 2),
      detail: 'criterion: more than half of the relations below random by > 2 sd',
      ...whole,
    },
    {
      claim: 'Zeroing k random neurons leaves accuracy close to the original',
      paper: 'random ≈ original (Fig. 3)',
      ours: `mean P^det drop ${randomDrop.toFixed(1)} points`,
      ...compare(paper.randomDropPoints, randomDrop, { tolerance: 5, unit: 'points' }),
    },
    {
      claim: 'Accuracy never reaches 0 (7B)',
      paper: `${paper.relationsAtZeroAccuracy} relations at 0 % (7B; 13B: landmark_country)`,
      ours: `${zeros.length} relation(s) at 0 % on P^eva${zeros.length ? `: ${zeros.join(', ')}` : ''}`,
      status: holds(zeros.length === paper.relationsAtZeroAccuracy),
    },
  ];
}

export const intraRelation: Experiment<IntraOptions, IntraPlan, IntraResult> = {
  name: 'intra-relation',
  paper: '§4.2.1, Fig. 3',
  jobKind: 'generate',
  plan,
  summarise,
  verdicts,
};
