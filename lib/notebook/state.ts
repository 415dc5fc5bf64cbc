/**
 * Which notebook is running and where its outputs go. `loadRsn(name)` (the first cell) sets the
 * name; the model whose results these are is the `model` parameter of params() (or RSN_MODEL,
 * or the default organism), so figures, tables and verdicts of a Llama-2 run never mix with the
 * organism's: results/<model>/{figures,tables,verdicts}/.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { currentParams } from './params.ts';
import { readEnv } from '../env.ts';
import { DEFAULT_MODEL_DIR, resultsDir } from './paths.ts';

let name: string | null = null;

export function setNotebook(notebook: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(notebook)) throw new Error(`notebook name ${JSON.stringify(notebook)}: use letters, digits, ".", "_" and "-" (the .ipynb file name without extension)`);
  name = notebook;
}

/** The running notebook's name (as set by loadRsn, else RSN_NOTEBOOK, else "scratch"). */
export function notebookName(): string {
  return name ?? readEnv('notebook') ?? 'scratch';
}

/** The model directory the outputs belong to. */
export function outputModel(): string {
  const p = currentParams().find((s) => s.name === 'model');
  if (p && typeof p.value === 'string' && p.value) return p.value;
  return readEnv('model') ?? DEFAULT_MODEL_DIR;
}

/** results/<model>/<kind>/, created. */
export function notebookOutputDir(kind: 'figures' | 'tables' | 'verdicts'): string {
  const dir = join(resultsDir(outputModel()), kind);
  mkdirSync(dir, { recursive: true });
  return dir;
}
