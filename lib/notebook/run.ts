/**
 * One folder per setting: results/<model>/runs/<id>/, where <id> is a short hash of the
 * parameters that decide the numbers, with k as used (after capping), not as asked. Every
 * notebook run with the same setting files its figures, tables, verdicts and executed copy
 * there, so an interactive run with another k, or a failed run, never touches another
 * setting's files, and the report is rebuilt from one chosen folder.
 *
 * The notebooks compute the id in rsn.setup(); the headless runner computes the same id from
 * the environment before any notebook starts (plannedRun), so it knows where they will write.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { canonicalJson, sha256Hex } from '../data/io.ts';
import { NeuronSpace } from '../method/neurons.ts';
import { readLlamaConfig } from '../model/config.ts';
import { resolveK, type ResolvedK } from './k.ts';
import { params, type ParamValue } from './params.ts';
import { fromRoot, projectRoot, resultsDir } from './paths.ts';

/** Parameters that do not change the numbers (padded batches reproduce unpadded rows; backends agree to float rounding). */
/** Where the jobs run: it changes neither their results nor what a run records. */
export const PLACEMENT_PARAMS: ReadonlySet<string> = new Set(['executor', 'executorWork', 'executorShards', 'executorPartition', 'executorGpus', 'executorSbatchArgs']);
const NOT_IN_SETTING = new Set(['batchSize', 'backend', ...PLACEMENT_PARAMS]);
/** Replaced by the k they resolve to. */
const K_PARAMS = new Set(['k', 'kPercent', 'kMaxPercent']);

export const RUN_SETTING_SCHEMA = 'rsn-run/1';

/** The parameters that decide a run's numbers, with k resolved. */
export function runSetting(values: Readonly<Record<string, ParamValue>>, k: ResolvedK): Record<string, ParamValue> {
  const setting: Record<string, ParamValue> = {};
  for (const [name, value] of Object.entries(values)) {
    if (NOT_IN_SETTING.has(name) || K_PARAMS.has(name)) continue;
    // Computing the ranking here is the usual case; a sharded run's ranking files its results apart.
    if (name === 'clusterRun' && value === '') continue;
    // A model path names the same model whether written relative to the project or absolute.
    setting[name] = name === 'model' && typeof value === 'string' ? relative(projectRoot, fromRoot(value)) || '.' : value;
  }
  setting['k'] = k.k;
  return setting;
}

/** The folder name of a setting: 8 hex digits of its canonical JSON's sha256. */
export function runId(setting: Readonly<Record<string, ParamValue>>): string {
  return sha256Hex(canonicalJson(setting)).slice(0, 8);
}

/** results/<model>/runs/<id>/ */
export function runDir(model: string, id: string, env: NodeJS.ProcessEnv = process.env): string {
  return join(resultsDir(model, env), 'runs', id);
}

/** The FFN pool of a model directory (gate, up and down units of every layer), from its config.json. */
export function ffnPoolSize(modelDir: string): number {
  return NeuronSpace.forModel(readLlamaConfig(join(fromRoot(modelDir), 'config.json')), 'ffn').size;
}

export interface PlannedRun {
  id: string;
  dir: string;
  model: string;
  setting: Record<string, ParamValue>;
  k: ResolvedK;
}

/**
 * The run the notebooks will file into when started with `env` and their default parameters
 * (as the headless runner starts them): the same id rsn.setup() computes inside each notebook.
 */
export function plannedRun(env: NodeJS.ProcessEnv): PlannedRun {
  const P = params({}, { env, quiet: true });
  const k = resolveK(P, ffnPoolSize(P.model), { quiet: true, poolName: 'the FFN pool' });
  const setting = runSetting(P, k);
  const id = runId(setting);
  return { id, dir: runDir(P.model, id, env), model: P.model, setting, k };
}

export interface RunInfo {
  id: string;
  dir: string;
  /** When the folder was last written (its setting.json). */
  updated: Date;
  setting: Record<string, ParamValue>;
}

/** The run folders of a model, newest first. */
export function listRuns(model: string, env: NodeJS.ProcessEnv = process.env): RunInfo[] {
  const root = join(resultsDir(model, env), 'runs');
  if (!existsSync(root)) return [];
  const runs: RunInfo[] = [];
  for (const id of readdirSync(root)) {
    const file = join(root, id, 'setting.json');
    if (!existsSync(file)) continue;
    try {
      const s = JSON.parse(readFileSync(file, 'utf8')) as { setting: Record<string, ParamValue> };
      runs.push({ id, dir: join(root, id), updated: statSync(file).mtime, setting: s.setting });
    } catch {
      // A folder whose setting.json cannot be read is not offered as a run.
    }
  }
  return runs.sort((a, b) => b.updated.getTime() - a.updated.getTime());
}
