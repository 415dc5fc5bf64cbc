/**
 * What a notebook gets from `await loadRsn("<notebook>")` (notebooks/rsn.ts): the notebook
 * helpers (parameters, tables, figures, verdicts, model/pipeline set-up) and the project's lib
 * — data, method, model — as one module. This is ordinary ESM TypeScript, loaded into the tslab
 * kernel through tsx, so notebooks run exactly the code the tests run; its declarations are
 * generated into .cache/jupyter/types for tslab's type checker (lib/notebook/types.ts).
 */
import { plotlyLoader, resetFigures } from './figure.ts';
import { inNotebook } from './display.ts';
import { readEnv } from '../env.ts';
import { setNotebook } from './state.ts';
import { resetVerdicts } from './verdict.ts';

export * from './params.ts';
export * from './k.ts';
export * from './display.ts';
export * from './table.ts';
export * from './figure.ts';
export * from './experiment-figures.ts';
export * from './colors.ts';
export * from './verdict.ts';
export * from './model.ts';
export * from './setup.ts';
export * from './own-data.ts';
export { runSetting, runId, runDir, listRuns, ffnPoolSize } from './run.ts';
export { notebookName, outputModel, notebookOutputDir, currentRunDir } from './state.ts';
export { projectRoot, fromRoot, modelTag, resultsDir, resultsRoot, DEFAULT_MODEL_DIR } from './paths.ts';

// The lib, flat: every name a notebook may need is one import away.
export * from '../runs/pipeline.ts';
export * from '../method/dataset.ts';
export * from '../method/known.ts';
export * from '../method/ranking.ts';
export * from '../method/neurons.ts';
export * from '../method/experiments.ts';
export * from '../method/paper-numbers.ts';
export * from '../method/generation.ts';
export * from '../method/identity.ts';
export * from '../stats/wilcoxon.ts';
export * from '../stats/summary.ts';
/** simple-statistics, whole, for statistics in cells: `rsn.ss.quantile(xs, 0.9)`. */
export * as ss from 'simple-statistics';
export * from '../data/relation.ts';
export * from '../data/prompts.ts';
export * from '../data/split.ts';
export * from '../model/llama.ts';
export * from '../model/config.ts';
export * from '../backend.ts';
export * from '../errors.ts';
export * from '../method/explorer.ts';
export * from '../data/own-relation.ts';
export { LlamaTokenizer } from '../tokenizer.ts';

/**
 * Start of a notebook (called by loadRsn): name the notebook, clear its earlier verdicts, and in
 * Jupyter output plotly.js once so every later figure of the notebook can draw.
 */
export function notebookInit(notebook: string): void {
  // The headless runner names the notebook by its file; a renamed copy then files its own results.
  const file = readEnv('notebook');
  if (file && file !== notebook) console.log(`(this is ${file}.ipynb; loadRsn("${notebook}") names another notebook: results are filed under ${file})`);
  const name = file || notebook;
  setNotebook(name);
  resetVerdicts();
  resetFigures();
  if (inNotebook()) plotlyLoader();
}

/**
 * danfojs (the library's platform-neutral build; danfojs-node's tfjs-node dependency collides
 * with the optional native backends, see README), loaded on first use (it takes seconds):
 * `const dfd = await rsn.danfo();`.
 */
export async function danfo(): Promise<typeof import('danfojs')> {
  return import('danfojs');
}

/** Rows → a danfojs DataFrame, a cell's tabular result; `rsn.showTable(frame)` shows it, `frame.column(name).mean()` etc. work on it. */
export async function frame(rows: readonly Record<string, string | number | boolean | null>[]): Promise<InstanceType<Awaited<ReturnType<typeof danfo>>['DataFrame']>> {
  const dfd = await danfo();
  return new dfd.DataFrame(rows.map((r) => ({ ...r })));
}
