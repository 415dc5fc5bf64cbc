/**
 * §2.5, the filter, as plan → jobs → summary: one job per relation holds every detection prompt
 * (no ablation); greedy 2-token answers are graded against the object, and the prompts answered
 * correctly are P^det. The filter runs before there are known facts or a ranking, so its jobs
 * run on the model alone (jobRunner), not on a Context. A shard of the filter is the same plan
 * restricted to whole batches of the single run's order, so its answers are the same bits.
 */
import type { ModelRunner } from '../../model/runner.ts';
import type { ShardSpec } from '../../shard-spec.ts';
import type { GradedAnswer } from '../accuracy.ts';
import type { Dataset } from '../dataset.ts';
import type { RunOptions } from '../generation.ts';
import { provenance, type Provenance } from '../identity.ts';
import { checkResults, jobRunner, runJobs, shardJobRows, tokenIds, type Job, type JobResult, type JobRunner } from '../jobs.ts';
import { assembleKnownFacts, relationSizes, type KnownFacts } from '../known.ts';
import type { VerdictInput } from '../verdicts.ts';

/** Rows per greedy batch when the caller gives none (greedyRows' default). */
export const KNOWN_BATCH_SIZE = 64;

export interface FilterParams {
  /** Greedy tokens per answer (the paper: 2). */
  maxNewTokens?: number;
}

export interface FilterPlan {
  /** Each relation's name and number of detection prompts, in the order rows are numbered. */
  relations: { name: string; total: number }[];
  maxNewTokens: number;
  /** One job per relation: all its detection prompts, no ablation. */
  jobs: Job[];
  /** The global row (into every relation's detection prompts, concatenated) of each job's prompts; all rows for the whole plan. */
  rows: number[][];
}

function plan(dataset: Dataset, params: FilterParams = {}): FilterPlan {
  let at = 0;
  const rows = dataset.relations.map((r) => r.det.map(() => at++));
  return {
    relations: relationSizes(dataset),
    maxNewTokens: params.maxNewTokens ?? 2,
    jobs: dataset.relations.map((r) => ({ key: { relation: r.relation.name }, prompts: r.det, ablation: null })),
    rows,
  };
}

/** The part of a plan one shard runs: whole batches of the single run's order (shardJobRows). */
function shardPlan(full: FilterPlan, shard: ShardSpec, tokenLength: (text: string) => number, batchSize: number): FilterPlan {
  if (shard.count === 1) return full;
  const rows = shardJobRows(full.jobs.map((j) => j.prompts.map((p) => tokenLength(p.text))), 'length', shard, batchSize);
  return {
    ...full,
    jobs: full.jobs.map((j, ji) => ({ ...j, prompts: rows[ji]!.map((r) => j.prompts[r]!) })),
    rows: full.rows.map((global, ji) => rows[ji]!.map((r) => global[r]!)),
  };
}

/** Every row's graded answer, by global row, from the results of a plan's jobs. */
function answersByRow(p: FilterPlan, results: readonly JobResult[]): Map<number, GradedAnswer> {
  checkResults('knownFilter.summarise', p.jobs, results);
  const answers = new Map<number, GradedAnswer>();
  results.forEach((r, ji) => r.outputs.forEach((output, i) => answers.set(p.rows[ji]![i]!, { output, correct: r.correct[i]! })));
  return answers;
}

/** P^det from the results of the whole plan's jobs. */
function summarise(p: FilterPlan, results: readonly JobResult[], prov: Provenance): KnownFacts {
  return assembleKnownFacts(p.relations, answersByRow(p, results), prov, p.maxNewTokens);
}

/** The filter's claim: P^det is model-specific, so the paper prints no sizes to compare with (only Figs. 10–11's diagonals). */
function verdicts(known: readonly { total: number; known: number }[] | null, modelTag: string, skipped = ''): VerdictInput[] {
  const totals = known ? known.reduce((a, r) => ({ det: a.det + r.total, known: a.known + r.known }), { det: 0, known: 0 }) : null;
  return [
    {
      claim: 'P^det: the detection prompts the model answers correctly (2-token prefix check)',
      paper: 'sizes not printed (only as diagonals of Figs. 10–11)',
      ours: totals ? `${totals.known} of ${totals.det} (${((100 * totals.known) / Math.max(1, totals.det)).toFixed(1)}%)` : null,
      status: 'not applicable',
      detail: totals ? `model-specific; ${modelTag} differs from LLaMA-2 by design` : `not computed: ${skipped}`,
    },
  ];
}

export const knownFilter = {
  name: 'filter P^det',
  paper: '§2.5',
  jobKind: 'generate',
  plan,
  shardPlan,
  summarise,
  verdicts,
} as const;

/** The graded answers of one shard of the filter: global rows and their answers, in ascending row order. */
export interface KnownShardRows {
  shard: ShardSpec;
  /** The detection prompts of all relations, concatenated in relation order. */
  totalRows: number;
  rows: number[];
  answers: GradedAnswer[];
}

/** The filter's jobs run on the model alone, in batches of KNOWN_BATCH_SIZE unless the run says otherwise. */
function filterRunner(model: ModelRunner, run: RunOptions, p: FilterPlan): JobRunner {
  return jobRunner(model, { ...run, batchSize: run.batchSize ?? KNOWN_BATCH_SIZE, maxNewTokens: p.maxNewTokens });
}

/** Run one shard of the filter's plan on a model. */
export async function runFilterShard(model: ModelRunner, dataset: Dataset, shard: ShardSpec, run: RunOptions = {}): Promise<KnownShardRows> {
  const full = plan(dataset, { maxNewTokens: run.maxNewTokens });
  const runner = filterRunner(model, run, full);
  // Lengths through the runner's cache: runJobs below tokenizes each prompt from it, not again.
  const mine = shardPlan(full, shard, (t) => tokenIds(runner, t).length, runner.run.batchSize!);
  const label = `${knownFilter.name} (shard ${shard.index}/${shard.count})`;
  const byRow = [...answersByRow(mine, await runJobs(runner, mine.jobs, label))].sort((a, b) => a[0] - b[0]);
  const totalRows = full.relations.reduce((a, r) => a + r.total, 0);
  return { shard, totalRows, rows: byRow.map(([row]) => row), answers: byRow.map(([, a]) => a) };
}

/** P^det of a model in one call: the filter's plan, its jobs run, summarised. */
export async function findKnownFacts(model: ModelRunner, dataset: Dataset, run: RunOptions = {}): Promise<KnownFacts> {
  const p = plan(dataset, { maxNewTokens: run.maxNewTokens });
  const results = await runJobs(filterRunner(model, run, p), p.jobs, knownFilter.name);
  return summarise(p, results, provenance(model, dataset.hash, dataset.seed));
}
