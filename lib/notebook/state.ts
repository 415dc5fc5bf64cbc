/**
 * Which notebook is running and where its outputs go. `loadRsn(name)` (the first cell) sets the
 * name; rsn.setup() sets the run folder of the current setting (lib/notebook/run.ts), and every
 * figure, table and verdict goes there: results/<model>/runs/<id>/{figures,tables,verdicts}/.
 * Outputs made before setup(), or after params() changed the setting and before setup() ran
 * again, go to results/<model>/scratch/, never into a run folder they do not belong to.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { currentParams } from './params.ts';
import { currentRunDir } from './run-dir.ts';
import { readEnv } from '../env.ts';
import { DEFAULT_MODEL_DIR, resultsDir } from './paths.ts';

export { currentRunDir, setRunDir } from './run-dir.ts';

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

/** <run folder>/<kind>/ (or results/<model>/scratch/<kind>/ outside a run), created. */
export function notebookOutputDir(kind: 'figures' | 'tables' | 'verdicts'): string {
  const dir = join(currentRunDir() ?? join(resultsDir(outputModel()), 'scratch'), kind);
  mkdirSync(dir, { recursive: true });
  return dir;
}
