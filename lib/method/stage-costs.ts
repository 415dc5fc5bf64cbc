/**
 * What each kind of pipeline stage costs for a model (lib/method/cost.ts counts one row): the
 * known-facts filter, the collection of the identification set, an experiment's generation jobs
 * and its scoring jobs. The pipeline reports these before a stage runs; the cost estimate of a
 * model not at hand (scripts/cost-estimate.ts) counts the same plans with the same functions.
 */
import type { LlamaConfig } from '../model/config.ts';
import { rowsCost, type Cost } from './cost.ts';
import type { Dataset } from './dataset.ts';
import { identification } from './experiments/identification.ts';
import { knownFilter } from './experiments/known-filter.ts';
import type { Job, ScoreJob } from './jobs.ts';
import type { KnownFacts } from './known.ts';

/** Tokens of a text as the model's tokenizer gives them (its BOS included). */
export type TokenCount = (text: string) => number;

/** Greedy answers of `newTokens` tokens to `texts` (newTokens > 0), or the texts scored (0). */
export function textsCost(c: LlamaConfig, tokens: TokenCount, texts: Iterable<string>, newTokens: number): Cost {
  const lengths = (function* () {
    for (const t of texts) yield tokens(t);
  })();
  return rowsCost(c, lengths, newTokens);
}

/** The known-facts filter: every detection prompt answered. */
export function filterCost(c: LlamaConfig, tokens: TokenCount, dataset: Dataset, maxNewTokens = 2): Cost {
  const plan = knownFilter.plan(dataset, { maxNewTokens });
  return textsCost(c, tokens, plan.jobs.flatMap((j) => j.prompts.map((p) => p.text)), maxNewTokens);
}

/** The collection: every prompt of the identification set forwarded once. */
export function collectionCost(c: LlamaConfig, tokens: TokenCount, dataset: Dataset, known: KnownFacts, seed = 0): Cost {
  return textsCost(c, tokens, identification.plan(dataset, known, seed).prompts.map((p) => p.text), 0);
}

/** An experiment's generation jobs: every prompt of every job answered. */
export function generateJobsCost(c: LlamaConfig, tokens: TokenCount, jobs: readonly Job[], maxNewTokens = 2): Cost {
  return textsCost(c, tokens, jobs.flatMap((j) => j.prompts.map((p) => p.text)), maxNewTokens);
}

/** An experiment's scoring jobs: every sentence of every job scored. */
export function scoreJobsCost(c: LlamaConfig, tokens: TokenCount, jobs: readonly ScoreJob[]): Cost {
  return textsCost(c, tokens, jobs.flatMap((j) => j.sentences), 0);
}
