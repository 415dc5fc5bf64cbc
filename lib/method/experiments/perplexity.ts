/** §4.5, Table 2: perplexity of neutral sentences before and after zeroing the relation's top-k. */
import type { Experiment } from '../experiment.ts';
import { quickCap } from '../experiment.ts';
import { capK, checkResults, relationsOf, resultProvenance, type Context, type ScoreJob, type ScoreResult } from '../jobs.ts';
import { type Ablation, ablation, type AblationOp, type PoolName } from '../neurons.ts';
import { paperNumbers } from '../paper-numbers.ts';
import type { Provenance } from '../identity.ts';
import { topNeurons } from '../ranking.ts';
import { mean, median } from '../../stats/summary.ts';
import { holds, type VerdictInput } from '../verdicts.ts';
import type { Dataset } from '../dataset.ts';
import { knownPrompts, type KnownFacts } from '../known.ts';

export interface PerplexityResult {
  schema: 'rsn-perplexity/1';
  provenance: Provenance;
  k: number;
  relations: { name: string; sentences: number; before: number; after: number }[];
}

export interface PerplexityOptions {
  /** Neutral sentences per relation (the object last). */
  sentences: Record<string, readonly string[]>;
  k?: number;
  pool?: PoolName;
  ablate?: AblationOp;
  /** At most this many sentences per relation (quick mode: at most 10). */
  maxSentences?: number;
  quick?: boolean;
}

/** Each relation's top-k, ablated, and its sentences scored with and without. */
export interface PerplexityPlan {
  k: number;
  pool: PoolName;
  ablate: AblationOp;
  /** Relations that have sentences, in the dataset's order. */
  relations: string[];
  own: Record<string, Ablation>;
  jobs: ScoreJob[];
}

function plan(ctx: Context, opts: PerplexityOptions): PerplexityPlan {
  const pool = opts.pool ?? 'ffn';
  const k = capK(ctx, opts.k ?? 3000, pool);
  const how = opts.ablate ?? ctx.ablate;
  const limit = quickCap(opts.quick, opts.maxSentences ?? Infinity, 10);
  const sentences = (n: string) => opts.sentences[n]!.slice(0, limit);
  const relations = relationsOf(ctx).filter((n) => opts.sentences[n]?.length);
  const own: Record<string, Ablation> = Object.fromEntries(relations.map((n) => [n, ablation(topNeurons(ctx.ranking, n, k, pool), how)]));
  const jobs = relations.flatMap((n): ScoreJob[] => [
    { key: { relation: n, condition: 'original' }, sentences: sentences(n), ablation: null },
    { key: { relation: n, condition: 'relation' }, sentences: sentences(n), ablation: own[n]! },
  ]);
  return { k, pool, ablate: how, relations, own, jobs };
}

function summarise(ctx: Context, plan: PerplexityPlan, results: readonly ScoreResult[]): PerplexityResult {
  checkResults('perplexity.summarise', plan.jobs, results);
  const get = (relation: string, condition: string) => results.find((r) => r.key['relation'] === relation && r.key['condition'] === condition)!;
  const relations = plan.relations.map((name) => {
    const before = get(name, 'original').perplexity;
    return { name, sentences: before.length, before: mean(before), after: mean(get(name, 'relation').perplexity) };
  });
  return { schema: 'rsn-perplexity/1', provenance: resultProvenance(ctx, { k: plan.k, pool: plan.pool }, plan.ablate), k: plan.k, relations };
}

/** exp(mean log(after / before)). */
function geometricRatio(pairs: readonly (readonly [number, number])[]): number {
  return Math.exp(pairs.reduce((a, [b, c]) => a + Math.log(c / b), 0) / Math.max(1, pairs.length));
}

/** Table 2's claims. */
function verdicts(ppl: PerplexityResult, ctx: Context): VerdictInput[] {
  const paper = paperNumbers().perplexity.table2;
  const cfg = ctx.model.config;
  const rows = ppl.relations;
  const oursRatio = geometricRatio(rows.map((r) => [r.before, r.after]));
  const paperRatio = geometricRatio(Object.values(paper).map(([, b, a]) => [b, a]));
  const down = rows.filter((r) => r.after < r.before).length;
  const comparable = rows.filter((r) => paper[r.name] !== undefined);
  const relDiff = median(comparable.map((r) => Math.abs(r.before - paper[r.name]![1]) / paper[r.name]![1]));
  const paperBefore = Object.values(paper).reduce((a, v) => a + v[1], 0) / Object.values(paper).length;
  const is7B = cfg.hiddenSize === 4096 && cfg.numLayers === 32;
  return [
    {
      claim: 'No systematic perplexity increase: it rises for some relations and drops for others',
      paper: `6 up / 6 down; geometric-mean ratio after/before ${paperRatio.toFixed(3)}`,
      ours: `${rows.length - down} up / ${down} down; geometric-mean ratio ${oursRatio.toFixed(3)}`,
      status: holds(down > 0 && oursRatio <= 1.1),
      detail: 'criterion: at least one relation\'s perplexity drops and the geometric-mean ratio is ≤ 1.10',
    },
    {
      claim: 'Table 2 perplexities (LLaMA-2-7B)',
      paper: `mean PPL before ${paperBefore.toFixed(1)}`,
      ours: `mean PPL before ${(rows.reduce((a, r) => a + r.before, 0) / Math.max(1, rows.length)).toFixed(1)}; median |relative difference| to the paper ${(100 * relDiff).toFixed(0)} %`,
      ...(!is7B
        ? { status: 'not applicable' as const, detail: `not LLaMA-2-7B (${cfg.numLayers} layers, hidden ${cfg.hiddenSize}): absolute perplexities depend on the model and its tokenizer` }
        : { status: holds(relDiff <= 0.25), detail: 'criterion: median relative difference of the before-perplexities ≤ 25 %' }),
    },
  ];
}

export const perplexity: Experiment<PerplexityOptions, PerplexityPlan, PerplexityResult, ScoreJob> = {
  name: 'perplexity',
  paper: '§4.5, Table 2',
  jobKind: 'score',
  plan,
  summarise,
  verdicts: (result, ctx) => verdicts(result, ctx),
};

/**
 * The neutral sentences per relation: the world's own (a model organism's world.json), else the
 * paper's Table 8 template of the relation filled with each distinct object of its known P^det.
 */
export function neutralSentences(dataset: Dataset, known: KnownFacts, world: { neutralSentences: Record<string, string[]> } | null): Record<string, string[]> {
  const table8 = paperNumbers().perplexity.table8;
  const sentences: Record<string, string[]> = {};
  for (const r of dataset.relations) {
    const name = r.relation.name;
    if (world?.neutralSentences[name]) sentences[name] = world.neutralSentences[name]!;
    else if (table8[name]) {
      const objects = [...new Set(knownPrompts(dataset, known, name).map((p) => p.object))];
      sentences[name] = objects.map((o) => table8[name]!.replace('<o>', () => o));
    }
  }
  return sentences;
}
