/**
 * One experiment of the paper, defined once as data plus three functions:
 *   plan      parameters → the selected neurons and the jobs (quick mode's reduction is here);
 *   summarise the jobs' results → the experiment's result;
 *   verdicts  the result → the paper's claims, each reproduced or not, by a stated criterion
 *             against the paper's numbers (data/paper/numbers.json).
 * A notebook shows each step (plan → jobs → evaluate → summary → verdicts); `pipeline.run(exp,
 * params)` does them in one cached call. Nothing here decides where the jobs run.
 */
import type { Context, Job, JobResult, ScoreJob, ScoreResult } from './jobs.ts';
import type { VerdictInput } from './verdicts.ts';

/** The results a plan's jobs give: accuracies for generation jobs, perplexities for score jobs. */
export type ResultsOf<J> = J extends ScoreJob ? ScoreResult : JobResult;

export interface Experiment<Params, Plan extends { jobs: readonly J[] }, Result, J extends Job | ScoreJob = Job, VerdictOptions = Record<string, never>> {
  /** Short name; also the progress label of its jobs. */
  readonly name: string;
  /** Where in the paper (section, figure, table). */
  readonly paper: string;
  /** 'generate': greedy answers graded against the gold object; 'score': sentence log-likelihoods. */
  readonly jobKind: J extends ScoreJob ? 'score' : 'generate';
  plan(ctx: Context, params: Params): Plan;
  summarise(ctx: Context, plan: Plan, results: readonly ResultsOf<J>[]): Result;
  /** The paper's claims on this result; experiments that need more (e.g. the k the other notebooks use) take it as `opts`. */
  verdicts(result: Result, ctx: Context, ...opts: VerdictOptions extends Record<string, never> ? [] : [VerdictOptions]): VerdictInput[];
}

/** Fewer random seeds, prompts, ks or sentences in quick mode: `Math.min(quickValue, value)`. */
export function quickCap(quick: boolean | undefined, value: number, quickValue: number): number {
  return quick ? Math.min(quickValue, value) : value;
}

/**
 * A view of a ranked run that runs no model (identification, layers, overlap): its summary of
 * `input` (e.g. the ranking) and its verdicts, the paper's numbers read as for an Experiment.
 */
export interface Analysis<Input, Params, Result> {
  readonly name: string;
  readonly paper: string;
  summarise(input: Input, params: Params): Result;
  verdicts(result: Result): VerdictInput[];
}
