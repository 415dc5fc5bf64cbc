/**
 * The paper's experiments (§4–§5, App. E/G/J) over a model, a dataset, its known facts and a
 * neuron ranking. Each experiment builds one list of (prompt, ablation) rows and runs it through
 * greedyRows in big batches with per-row ablations, then aggregates. The paper zeroes neurons;
 * a context made with another AblationOp (scale, set, mean) runs every experiment with it.
 */
import type { Prompt } from '../data/prompts.ts';
import type { LlamaModel } from '../model/llama.ts';
import type { LlamaTokenizer } from '../tokenizer.ts';
import type { Dataset } from './dataset.ts';
import { accuracyOf, gradeAnswers } from './accuracy.ts';
import { scoreRows, type RunOptions } from './generation.ts';
import { provenance, type Provenance } from './identity.ts';
import { knownPrompts, requireTokenizer, type KnownFacts } from './known.ts';
import { type Ablation, ablation, type AblationOp, describeAblation, NeuronSpace, randomNeurons, type PoolName, ZERO } from './neurons.ts';
import { rankRange, topNeurons, type Ranking } from './ranking.ts';
import { mean, sampleSd } from '../stats/summary.ts';
import { canonicalJson } from '../data/io.ts';

/** Everything an experiment needs; build it once with makeContext. */
export interface Context {
  model: LlamaModel;
  tok: LlamaTokenizer;
  dataset: Dataset;
  known: KnownFacts;
  ranking: Ranking;
  /** The ranking's neuron space (ablations name global indices in it). */
  space: NeuronSpace;
  run: RunOptions;
  /** How the experiments ablate neurons (default zeroing, as the paper). */
  ablate: AblationOp;
  /** Token ids per prompt text, so repeated sets are tokenized once. */
  cache: Map<string, number[]>;
}

export function makeContext(model: LlamaModel, dataset: Dataset, known: KnownFacts, ranking: Ranking, run: RunOptions = {}, ablate: AblationOp = ZERO): Context {
  return { model, tok: requireTokenizer(model), dataset, known, ranking, space: ranking.space, run, ablate, cache: new Map() };
}

/** Provenance of an experiment result: the run's identity, its settings and the ablation. */
function resultProvenance(ctx: Context, settings: Record<string, unknown>, how: AblationOp = ctx.ablate): Provenance {
  return provenance(ctx.model, ctx.dataset.hash, ctx.dataset.seed, { ...settings, ablation: describeAblation(how) });
}

function ids(ctx: Context, text: string): number[] {
  let v = ctx.cache.get(text);
  if (!v) {
    v = ctx.tok.encode(text);
    ctx.cache.set(text, v);
  }
  return v;
}

export interface Job {
  /** Caller's labels (relation evaluated, condition, prompt set, …). */
  key: Record<string, string | number>;
  prompts: readonly Prompt[];
  ablation: Ablation | null;
}

export interface JobResult {
  key: Record<string, string | number>;
  outputs: string[];
  correct: boolean[];
  accuracy: number;
}

/** Runs every job's prompts under its ablation, all jobs batched together. */
export async function runJobs(ctx: Context, jobs: readonly Job[], label = 'evaluate'): Promise<JobResult[]> {
  const rows = jobs.flatMap((j) => j.prompts.map((p) => ({ ids: ids(ctx, p.text), object: p.object, ablation: j.ablation })));
  const answers = await gradeAnswers(ctx.model, ctx.tok, rows, { space: ctx.space, label, ...ctx.run });
  let at = 0;
  return jobs.map((j) => {
    const graded = answers.slice(at, at + j.prompts.length);
    at += j.prompts.length;
    return { key: j.key, outputs: graded.map((a) => a.output), correct: graded.map((a) => a.correct), accuracy: accuracyOf(graded) };
  });
}

function relationNames(ctx: Context): string[] {
  return ctx.dataset.relations.map((r) => r.relation.name);
}

function promptSet(ctx: Context, relation: string, set: 'eva' | 'eva2' | 'det', detLimit?: number): Prompt[] {
  const r = ctx.dataset.relations.find((x) => x.relation.name === relation)!;
  if (set === 'det') {
    const p = knownPrompts(ctx.dataset, ctx.known, relation);
    return detLimit !== undefined && p.length > detLimit ? p.slice(0, detLimit) : p;
  }
  return set === 'eva' ? r.eva : r.eva2;
}

/** k capped at the pool size, so that a sweep's large k on a small model means "every neuron of the pool". */
export function capK(ctx: Context, k: number, pool: PoolName = 'ffn'): number {
  return Math.min(k, ctx.space.poolIndices(pool).length);
}

// ---------------------------------------------------------------- E3 intra-relation (Fig. 3)

export interface IntraOptions {
  k?: number;
  randomSeeds?: number;
  pool?: PoolName;
  sets?: ('eva' | 'det' | 'eva2')[];
  /** At most this many P^det prompts per relation (the random baseline multiplies the work). */
  detLimit?: number;
  /** How the selected neurons are ablated (default: the context's, i.e. zeroed as in the paper). */
  ablate?: AblationOp;
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

/** The intra-relation experiment as data: the selected neurons, the interventions and the jobs that run them. */
export interface IntraPlan {
  k: number;
  pool: PoolName;
  randomSeeds: number;
  sets: ('eva' | 'det' | 'eva2')[];
  detLimit: number | undefined;
  ablate: AblationOp;
  /** Per relation: its top-k neurons, ablated. */
  own: Record<string, Ablation>;
  /** The random-k draws (seeds 1000, 1001, …), shared by every relation. */
  random: Ablation[];
  /** Per relation and prompt set: original, relation-k and each random-k over the same prompts. */
  jobs: Job[];
}

/** Fig. 3's experiment: for each relation, its prompt sets with nothing, its own top-k, and k random neurons ablated. */
export function intraJobs(ctx: Context, opts: IntraOptions = {}): IntraPlan {
  const pool = opts.pool ?? 'ffn';
  const k = capK(ctx, opts.k ?? 3000, pool);
  const seeds = opts.randomSeeds ?? 10;
  const sets = opts.sets ?? ['eva', 'det'];
  const how = opts.ablate ?? ctx.ablate;
  const poolIdx = ctx.space.poolIndices(pool);
  const random = Array.from({ length: seeds }, (_, s) => ablation(randomNeurons(poolIdx, k, 1000 + s), how));
  const own: Record<string, Ablation> = {};
  const jobs: Job[] = [];
  for (const name of relationNames(ctx)) {
    own[name] = ablation(topNeurons(ctx.ranking, name, k, pool), how);
    for (const set of sets) {
      const prompts = promptSet(ctx, name, set, opts.detLimit);
      jobs.push({ key: { relation: name, set, condition: 'original' }, prompts, ablation: null });
      jobs.push({ key: { relation: name, set, condition: 'relation' }, prompts, ablation: own[name]! });
      random.forEach((m, s) => jobs.push({ key: { relation: name, set, condition: `random${s}` }, prompts, ablation: m }));
    }
  }
  return { k, pool, randomSeeds: seeds, sets, detLimit: opts.detLimit, ablate: how, own, random, jobs };
}

/** A plan's summary needs the results of exactly its jobs (in their order, as runJobs and evaluate return them). */
function checkResults(summary: string, jobs: readonly { key: Job['key'] }[], results: readonly { key: Job['key'] }[]): void {
  if (results.length !== jobs.length || results.some((r, i) => r.key !== jobs[i]!.key && canonicalJson(r.key) !== canonicalJson(jobs[i]!.key))) {
    throw new Error(`${summary}: the ${results.length} results are not those of this plan's ${jobs.length} jobs; pass what pipeline.evaluate (runJobs) or pipeline.score (runScoreJobs) returned for plan.jobs`);
  }
}

/** The job results of an IntraPlan → accuracies per relation and set, random mean ± sd, and the flipped prompts. */
export function summariseIntra(ctx: Context, plan: IntraPlan, results: readonly JobResult[]): IntraResult {
  checkResults('summariseIntra', plan.jobs, results);
  const get = (relation: string, set: string, condition: string) => results.find((r) => r.key['relation'] === relation && r.key['set'] === set && r.key['condition'] === condition)!;
  return {
    schema: 'rsn-intra/1',
    provenance: resultProvenance(ctx, { k: plan.k, pool: plan.pool, randomSeeds: plan.randomSeeds }, plan.ablate),
    k: plan.k,
    pool: plan.pool,
    randomSeeds: plan.randomSeeds,
    relations: relationNames(ctx).map((name) => ({
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

export async function intraRelation(ctx: Context, opts: IntraOptions = {}): Promise<IntraResult> {
  const plan = intraJobs(ctx, opts);
  return summariseIntra(ctx, plan, await runJobs(ctx, plan.jobs, 'intra-relation'));
}

// ---------------------------------------------------------------- E4 inter-relation (Fig. 4)

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
}

/** Fig. 4's experiment as data: every relation's top-k, and each relation's prompts under each of them. */
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

export function interJobs(ctx: Context, opts: InterOptions = {}): InterPlan {
  const pool = opts.pool ?? 'ffn';
  const k = capK(ctx, opts.k ?? 3000, pool);
  const set = opts.set ?? 'eva';
  const how = opts.ablate ?? ctx.ablate;
  const names = relationNames(ctx);
  const own: Record<string, Ablation> = Object.fromEntries(names.map((n) => [n, ablation(topNeurons(ctx.ranking, n, k, pool), how)]));
  const jobs: Job[] = [];
  for (const evaluated of names) {
    const prompts = promptSet(ctx, evaluated, set);
    jobs.push({ key: { evaluated, zeroed: '' }, prompts, ablation: null });
    for (const zeroed of names) jobs.push({ key: { evaluated, zeroed }, prompts, ablation: own[zeroed]! });
  }
  return { k, pool, set, ablate: how, relations: names, own, jobs };
}

/** The job results of an InterPlan → the accuracy and acc_drop matrices. */
export function summariseInter(ctx: Context, plan: InterPlan, results: readonly JobResult[]): InterResult {
  checkResults('summariseInter', plan.jobs, results);
  const names = plan.relations;
  const acc = (e: string, z: string) => results.find((r) => r.key['evaluated'] === e && r.key['zeroed'] === z)!.accuracy;
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

export async function interRelation(ctx: Context, opts: InterOptions = {}): Promise<InterResult> {
  const plan = interJobs(ctx, opts);
  return summariseInter(ctx, plan, await runJobs(ctx, plan.jobs, `inter-relation (${plan.pool})`));
}

// ---------------------------------------------------------------- E5 k-sweep (Fig. 5, 22)

export const PAPER_KS = [0, 10, 50, 200, 500, 1000, 3000, 10000, 20000, 50000];

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
}

/** Fig. 5's experiment as data: for each relation r and k, every relation's P^eva with r's top-k ablated. */
export interface SweepPlan {
  /** The ks, capped at the pool size and deduplicated (a large k on a small model = the whole pool). */
  ks: number[];
  pool: PoolName;
  poolSize: number;
  relations: string[];
  ablate: AblationOp;
  jobs: Job[];
}

export function sweepJobs(ctx: Context, opts: SweepOptions = {}): SweepPlan {
  const pool = opts.pool ?? 'ffn';
  const poolSize = ctx.space.poolIndices(pool).length;
  const ks = [...new Set((opts.ks ?? PAPER_KS).map((k) => Math.min(k, poolSize)))].sort((a, b) => a - b);
  const how = opts.ablate ?? ctx.ablate;
  const names = relationNames(ctx);
  const jobs: Job[] = [];
  for (const r of names) {
    ks.forEach((k, ki) => {
      const own = k === 0 ? null : ablation(topNeurons(ctx.ranking, r, k, pool), how);
      for (const j of names) jobs.push({ key: { r, ki, j }, prompts: promptSet(ctx, j, 'eva'), ablation: own });
    });
  }
  return { ks, pool, poolSize, relations: names, ablate: how, jobs };
}

/** The job results of a SweepPlan → accuracy[r][k][j] and the own relation's per-prompt correctness. */
export function summariseSweep(ctx: Context, plan: SweepPlan, results: readonly JobResult[]): SweepResult {
  checkResults('summariseSweep', plan.jobs, results);
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

export async function kSweep(ctx: Context, opts: SweepOptions = {}): Promise<SweepResult> {
  const plan = sweepJobs(ctx, opts);
  return summariseSweep(ctx, plan, await runJobs(ctx, plan.jobs, 'k-sweep'));
}

// ---------------------------------------------------------------- E6 cumulativity (Fig. 6, Table 3)

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

/**
 * Fig. 6's experiment as data: for each relation and consecutive ks (k_a, k_b] of the sweep, the
 * prompts T that are right with the top-k_a zeroed and wrong with the top-k_b zeroed, run with
 * only the neurons ranked k_a+1 … k_b zeroed.
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

/** Uses consecutive ks of the sweep as the ranges (paper: 10–50, 50–200, …, 20000–50000). */
export function cumulativityJobs(ctx: Context, sweep: SweepResult, opts: { pool?: PoolName; ablate?: AblationOp } = {}): CumulativityPlan {
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
    const prompts = promptSet(ctx, r, 'eva');
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

/** The job results of a CumulativityPlan → #affected per relation and range, and the macro / micro shares. */
export function summariseCumulativity(ctx: Context, plan: CumulativityPlan, results: readonly JobResult[]): CumulativityResult {
  checkResults('summariseCumulativity', plan.jobs, results);
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

export async function cumulativity(ctx: Context, sweep: SweepResult, pool: PoolName = 'ffn'): Promise<CumulativityResult> {
  const plan = cumulativityJobs(ctx, sweep, { pool });
  return summariseCumulativity(ctx, plan, await runJobs(ctx, plan.jobs, 'cumulativity'));
}

// ---------------------------------------------------------------- E1/E2 layers and overlap (Figs. 1, 2)

export function overlapMatrix(ranking: Ranking, k: number, pool: PoolName = 'ffn'): { relations: string[]; k: number; counts: number[][] } {
  const names = ranking.relations.map((r) => r.name);
  const sets = names.map((n) => new Set(topNeurons(ranking, n, k, pool)));
  return { relations: names, k, counts: sets.map((a) => sets.map((b) => [...a].filter((x) => b.has(x)).length)) };
}

export function layerDistribution(ranking: Ranking, k: number, pool: PoolName = 'ffn'): { relations: string[]; k: number; counts: number[][] } {
  const names = ranking.relations.map((r) => r.name);
  return { relations: names, k, counts: names.map((n) => ranking.space.layerHistogram(topNeurons(ranking, n, k, pool))) };
}

// ---------------------------------------------------------------- E10 perplexity (Table 2)

export interface PerplexityResult {
  schema: 'rsn-perplexity/1';
  provenance: Provenance;
  k: number;
  relations: { name: string; sentences: number; before: number; after: number }[];
}

/** Sentences scored under one ablation: their log-likelihood, not a generation. */
export interface ScoreJob {
  /** Caller's labels (relation, condition, …). */
  key: Record<string, string | number>;
  sentences: readonly string[];
  ablation: Ablation | null;
}

export interface ScoreResult {
  key: Record<string, string | number>;
  /** exp(−mean log p) of each sentence, every token after the first scored. */
  perplexity: number[];
}

/** Scores every job's sentences under its ablation, all jobs batched together. */
export async function runScoreJobs(ctx: Context, jobs: readonly ScoreJob[], label = 'score'): Promise<ScoreResult[]> {
  const rows = jobs.flatMap((j) => j.sentences.map((s) => ({ ids: ids(ctx, s), ablation: j.ablation })));
  const scores = await scoreRows(ctx.model, ctx.space, rows, { label, ...ctx.run });
  let at = 0;
  return jobs.map((j) => {
    const mine = scores.slice(at, at + j.sentences.length);
    at += j.sentences.length;
    return { key: j.key, perplexity: mine.map((s) => Math.exp(-s.logProb / s.count)) };
  });
}

/** Table 2's experiment as data: each relation's top-k, ablated, and its sentences scored with and without. */
export interface PerplexityPlan {
  k: number;
  pool: PoolName;
  ablate: AblationOp;
  /** Relations that have sentences, in the dataset's order. */
  relations: string[];
  own: Record<string, Ablation>;
  jobs: ScoreJob[];
}

export function perplexityJobs(ctx: Context, sentences: Record<string, readonly string[]>, opts: { k?: number; pool?: PoolName; ablate?: AblationOp } = {}): PerplexityPlan {
  const pool = opts.pool ?? 'ffn';
  const k = capK(ctx, opts.k ?? 3000, pool);
  const how = opts.ablate ?? ctx.ablate;
  const relations = relationNames(ctx).filter((n) => sentences[n]?.length);
  const own: Record<string, Ablation> = Object.fromEntries(relations.map((n) => [n, ablation(topNeurons(ctx.ranking, n, k, pool), how)]));
  const jobs = relations.flatMap((n): ScoreJob[] => [
    { key: { relation: n, condition: 'original' }, sentences: sentences[n]!, ablation: null },
    { key: { relation: n, condition: 'relation' }, sentences: sentences[n]!, ablation: own[n]! },
  ]);
  return { k, pool, ablate: how, relations, own, jobs };
}

/** The score results of a PerplexityPlan → mean per-sentence perplexity of each relation before and after. */
export function summarisePerplexity(ctx: Context, plan: PerplexityPlan, results: readonly ScoreResult[]): PerplexityResult {
  checkResults('summarisePerplexity', plan.jobs, results);
  const get = (relation: string, condition: string) => results.find((r) => r.key['relation'] === relation && r.key['condition'] === condition)!;
  const relations = plan.relations.map((name) => {
    const before = get(name, 'original').perplexity;
    return { name, sentences: before.length, before: mean(before), after: mean(get(name, 'relation').perplexity) };
  });
  return { schema: 'rsn-perplexity/1', provenance: resultProvenance(ctx, { k: plan.k, pool: plan.pool }, plan.ablate), k: plan.k, relations };
}

/** Mean per-sentence perplexity of each relation's neutral sentences before and after zeroing its top-k. */
export async function perplexity(ctx: Context, sentences: Record<string, readonly string[]>, opts: { k?: number; pool?: PoolName; ablate?: AblationOp } = {}): Promise<PerplexityResult> {
  const plan = perplexityJobs(ctx, sentences, opts);
  return summarisePerplexity(ctx, plan, await runScoreJobs(ctx, plan.jobs, 'perplexity'));
}

// ---------------------------------------------------------------- E14 error categories (Table 4)

export type ErrorCategory = 'repeat' | 'the' | 'a.' | 'other';

/**
 * Category of a wrong output: a repeat of the prompt (the output is the start of the prompt or
 * of the subject), an answer starting with "The", one starting with "A.", or other.
 */
export function errorCategory(output: string, prompt: string, subject: string): ErrorCategory {
  const o = output.trim();
  if (o.length === 0) return 'other';
  const lo = o.toLowerCase();
  if (prompt.toLowerCase().startsWith(lo) || subject.toLowerCase().startsWith(lo) || lo.startsWith(subject.toLowerCase())) return 'repeat';
  if (/^the\b/i.test(o)) return 'the';
  if (/^a\.(\s|$)/i.test(o) || o === 'A') return 'a.';
  return 'other';
}

export function errorCategories(intra: IntraResult, set = 'eva'): { relation: string; flips: number; shares: Record<ErrorCategory, number> }[] {
  return intra.relations.map((r) => {
    const flips = r.sets[set]?.flips ?? [];
    const counts: Record<ErrorCategory, number> = { repeat: 0, the: 0, 'a.': 0, other: 0 };
    for (const f of flips) {
      const subject = f.prompt.split(/'s |\s(?:is|was|works|plays)\b/)[0] ?? '';
      counts[errorCategory(f.after, f.prompt, subject)]++;
    }
    const shares = Object.fromEntries(Object.entries(counts).map(([c, n]) => [c, flips.length ? n / flips.length : NaN])) as Record<ErrorCategory, number>;
    return { relation: r.name, flips: flips.length, shares };
  });
}
