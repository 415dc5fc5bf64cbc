/**
 * Where notebook inputs and outputs live. Notebooks run with the notebook's folder as the
 * working directory (Jupyter's rule), so every path a notebook parameter names is taken
 * relative to the project root instead, and every output goes under `results/<model>/`.
 */
import { basename, isAbsolute, join, resolve } from 'node:path';
import { envVarName, readEnv } from '../env.ts';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is lib/notebook/paths.ts). */
export const projectRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** The model every notebook uses unless told otherwise: the bundled organism (Hugging Face layout). */
export const DEFAULT_MODEL_DIR = 'data/organism';

/** Overrides the results root (default `<root>/results`); the test suite points it at a temp dir. */
export const RESULTS_ENV = envVarName('results');

/** A parameter path → an absolute path (relative paths are relative to the project root). */
export function fromRoot(p: string): string {
  return isAbsolute(p) ? p : resolve(projectRoot, p);
}

/** The name results are filed under: the model directory's last component (`data/organism` → `organism`). */
export function modelTag(modelDir: string): string {
  const tag = basename(resolve(fromRoot(modelDir))).replace(/[^A-Za-z0-9._-]+/g, '_');
  return tag || 'model';
}

export function resultsRoot(env: NodeJS.ProcessEnv = process.env): string {
  const r = readEnv('results', env);
  return r ? fromRoot(r) : join(projectRoot, 'results');
}

/** `results/<model>/` (or under RSN_RESULTS). */
export function resultsDir(modelDir: string, env: NodeJS.ProcessEnv = process.env): string {
  return join(resultsRoot(env), modelTag(modelDir));
}

/** Project-local Jupyter state: kernel spec prefix, runtime files, generated notebook types. */
export const jupyterDir = join(projectRoot, '.cache', 'jupyter');
