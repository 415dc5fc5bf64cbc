/**
 * What every experiment is made of: a context (model, data, known facts, ranking), jobs (prompts
 * or sentences under one ablation each) and the functions that run them, all jobs batched
 * together. The paper zeroes neurons; a context made with another AblationOp (scale, set, mean)
 * runs every experiment with it.
 */
import type { Prompt } from '../data/prompts.ts';
import { ConfigError } from '../errors.ts';
import { createHash } from 'node:crypto';
import { canonicalJson, sha256Hex } from '../data/io.ts';
import { shardBatchRange, type ShardSpec } from '../shard-spec.ts';
import type { ModelRunner } from '../model/runner.ts';
import type { LlamaTokenizer } from '../tokenizer.ts';
import type { Dataset } from './dataset.ts';
import { accuracyOf, gradeAnswers } from './accuracy.ts';
import { scoreRows, type RunOptions } from './generation.ts';
import { provenance, type Provenance } from './identity.ts';
import { knownPrompts, requireTokenizer, type KnownFacts } from './known.ts';
import { type Ablation, type AblationOp, describeAblation, NeuronSpace, type PoolName, ZERO } from './neurons.ts';
import type { Ranking } from './ranking.ts';

/** Everything an experiment needs; build it once with makeContext. */
export interface Context {
  model: ModelRunner;
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

export function makeContext(model: ModelRunner, dataset: Dataset, known: KnownFacts, ranking: Ranking, run: RunOptions = {}, ablate: AblationOp = ZERO): Context {
  return { model, tok: requireTokenizer(model), dataset, known, ranking, space: ranking.space, run, ablate, cache: new Map() };
}

/** Provenance of an experiment result: the run's identity, its settings and the ablation. */
export function resultProvenance(ctx: Context, settings: Record<string, unknown>, how: AblationOp = ctx.ablate): Provenance {
  return provenance(ctx.model, ctx.dataset.hash, ctx.dataset.seed, { ...settings, ablation: describeAblation(how) });
}

/** A text's token ids, tokenized once per runner (its cache). */
export function tokenIds(ctx: Pick<Context, 'tok' | 'cache'>, text: string): number[] {
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

/** What running jobs needs: a Context has it; so has a model alone (jobRunner), for the filter, which runs before there are known facts or a ranking. */
export type JobRunner = Pick<Context, 'model' | 'tok' | 'space' | 'run' | 'cache'>;

/** A runner of jobs on a model alone; ablations index `space` (default: the model's FFN neurons). */
export function jobRunner(model: ModelRunner, run: RunOptions = {}, space: NeuronSpace = NeuronSpace.forModel(model.config, 'ffn')): JobRunner {
  return { model, tok: requireTokenizer(model), space, run, cache: new Map() };
}

/**
 * A job list's content as a short hash: prompts and answers (or scored sentences), each job's ablation (op, its
 * parameters, the neurons), and the caller's labels, which name the results.
 */
export function jobsDigest(jobs: readonly (Job | ScoreJob)[]): string {
  const h = createHash('sha256');
  for (const j of jobs) {
    h.update(canonicalJson(j.key));
    if ('prompts' in j) for (const p of j.prompts) h.update(`\u0000${p.text}\u0001${p.object}`);
    else for (const s of j.sentences) h.update(`\u0004${s}`);
    const a = j.ablation;
    if (!a) h.update('\u0002none');
    else {
      const { neurons, ...op } = a;
      h.update(`\u0002${canonicalJson(op.op === 'mean' ? { op: 'mean', means: sha256Hex(new Uint8Array(op.means.buffer, op.means.byteOffset, op.means.byteLength)) } : op)}`);
      h.update(new Uint8Array(Int32Array.from(neurons).buffer));
    }
    h.update('\u0003');
  }
  return h.digest('hex');
}

/**
 * The rows of a job list one shard runs: all rows ordered as the run batches them ('length':
 * by token length, then row, as greedy generation does; 'input': in order, as scoring does),
 * cut into batches of `batchSize`; shard i takes whole batches, so each is a batch the single
 * run makes and gives the same bits. Per job: the indices of its rows in this shard, ascending,
 * so the shard's own ordering of them gives exactly those batches.
 */
export function shardJobRows(tokenLengths: readonly (readonly number[])[], order: 'length' | 'input', shard: ShardSpec, batchSize: number): number[][] {
  const flat = tokenLengths.flatMap((lengths, job) => lengths.map((len, row) => ({ job, row, len })));
  const sequence = flat.map((_, i) => i);
  if (order === 'length') sequence.sort((a, b) => flat[a]!.len - flat[b]!.len || a - b);
  const [from, to] = shardBatchRange(sequence.length, batchSize, shard, 'rows');
  const mine = new Set(sequence.slice(from, to));
  const rows: number[][] = tokenLengths.map(() => []);
  flat.forEach((x, i) => {
    if (mine.has(i)) rows[x.job]!.push(x.row);
  });
  return rows;
}

/** Runs every job's prompts under its ablation, all jobs batched together. */
export async function runJobs(ctx: JobRunner, jobs: readonly Job[], label = 'evaluate'): Promise<JobResult[]> {
  const rows = jobs.flatMap((j) => j.prompts.map((p) => ({ ids: tokenIds(ctx, p.text), object: p.object, ablation: j.ablation })));
  const answers = await gradeAnswers(ctx.model, ctx.tok, rows, { space: ctx.space, label, ...ctx.run });
  let at = 0;
  return jobs.map((j) => {
    const graded = answers.slice(at, at + j.prompts.length);
    at += j.prompts.length;
    return { key: j.key, outputs: graded.map((a) => a.output), correct: graded.map((a) => a.correct), accuracy: accuracyOf(graded) };
  });
}

export function relationsOf(ctx: Context): string[] {
  return ctx.dataset.relations.map((r) => r.relation.name);
}

export type PromptSetName = 'eva' | 'eva2' | 'det';

/** A relation's prompt set as the experiments use it: P^eva, P^eva-2, or its known P^det (at most detLimit). */
export function relationPrompts(ctx: Context, relation: string, set: PromptSetName, detLimit?: number): Prompt[] {
  const r = ctx.dataset.relations.find((x) => x.relation.name === relation);
  if (!r) throw new ConfigError(`relation "${relation}" is not in the dataset ${ctx.dataset.dir}`, ctx.dataset.dir, 'relation');
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

/** A plan's summary needs the results of exactly its jobs (in their order, as runJobs and evaluate return them). */
export function checkResults(summary: string, jobs: readonly { key: Job['key'] }[], results: readonly { key: Job['key'] }[]): void {
  if (results.length !== jobs.length || results.some((r, i) => r.key !== jobs[i]!.key && canonicalJson(r.key) !== canonicalJson(jobs[i]!.key))) {
    throw new Error(`${summary}: the ${results.length} results are not those of this plan's ${jobs.length} jobs; pass what pipeline.evaluate (runJobs) or pipeline.score (runScoreJobs) returned for plan.jobs`);
  }
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
export async function runScoreJobs(ctx: JobRunner, jobs: readonly ScoreJob[], label = 'score'): Promise<ScoreResult[]> {
  const rows = jobs.flatMap((j) => j.sentences.map((s) => ({ ids: tokenIds(ctx, s), ablation: j.ablation })));
  const scores = await scoreRows(ctx.model, ctx.space, rows, { label, ...ctx.run });
  let at = 0;
  return jobs.map((j) => {
    const mine = scores.slice(at, at + j.sentences.length);
    at += j.sentences.length;
    return { key: j.key, perplexity: mine.map((s) => Math.exp(-s.logProb / s.count)) };
  });
}

