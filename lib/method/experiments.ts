/**
 * The paper's experiments (§2–§5, App. C/E/G/J), each one object with its plan, summary and
 * verdicts (lib/method/experiments/; the views that run no model — of a ranking, or of an
 * intra-relation result — as Analysis objects), and the jobs they are made of (jobs.ts).
 */

export * from './jobs.ts';
export * from './experiment.ts';
export * from './verdicts.ts';
export * from './experiments/intra-relation.ts';
export * from './experiments/inter-relation.ts';
export * from './experiments/k-sweep.ts';
export * from './experiments/cumulativity.ts';
export * from './experiments/perplexity.ts';
export * from './experiments/known-filter.ts';
export * from './experiments/data-and-filtering.ts';
export * from './experiments/identification.ts';
export * from './experiments/layers.ts';
export * from './experiments/overlap.ts';
export * from './experiments/other-pools.ts';
export * from './experiments/eva2-templates.ts';
export * from './experiments/error-categories.ts';
export * from './experiments/fact-frequency.ts';
export * from './experiments/multilingual.ts';
export * from './experiments/gemma.ts';
