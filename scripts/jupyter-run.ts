/**
 * Executes notebooks headless through real Jupyter (nbclient) and the tslab kernel, showing each
 * cell and the kernel's progress lines live. Executed copies go to the setting's run folder,
 * results/<model>/runs/<id>/notebooks/ (with the kernel's stderr as <name>.log); a failing notebook is reported with its cell and error and the
 * others still run; the exit code is 1 if any failed.
 *
 *   npx tsx scripts/jupyter-run.ts [NOTEBOOK…] [--model DIR] [--k N] [--relations a,b] [--quick]
 *        [--set NAME=VALUE]… [--results DIR] [--cell-timeout S]
 *
 * NOTEBOOK is a path or a prefix of a file name in notebooks/ ("00", "03-overlap"); default: all.
 * Options become environment overrides of the notebooks' first-cell parameters (--k → RSN_K,
 * --set batchSize=8 → RSN_BATCH_SIZE=8); RSN_* variables already in the environment pass through.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseCommandLine } from '../lib/cli-args.ts';
import { envVarName } from '../lib/env.ts';
import { runNotebook, type NotebookEvent, type NotebookRun } from '../lib/notebook/jupyter.ts';
import { plannedRun, type PlannedRun } from '../lib/notebook/run.ts';
import { envName } from '../lib/notebook/params.ts';
import { RESULTS_ENV, projectRoot } from '../lib/notebook/paths.ts';
import { forgetNotebook, notebookInputs, recordNotebook, reusableNotebook, runFolderState, runInputs, type RunInputs } from '../lib/notebook/reuse.ts';
import { setup } from './jupyter-setup.ts';
import { figuresOf } from './report.ts';

export const notebooksDir = join(projectRoot, 'notebooks');

/** Notebook files for the given selectors: paths, or prefixes of names in notebooks/ (all when none). */
export function selectNotebooks(selectors: readonly string[]): string[] {
  const all = readdirSync(notebooksDir).filter((f) => f.endsWith('.ipynb')).sort();
  if (!selectors.length) return all.map((f) => join(notebooksDir, f));
  const picked: string[] = [];
  for (const s of selectors) {
    if (s.endsWith('.ipynb') && existsSync(resolve(s))) {
      picked.push(resolve(s));
      continue;
    }
    const exact = all.filter((f) => f === s || f === `${s}.ipynb`);
    const hits = exact.length ? exact : all.filter((f) => f.startsWith(s));
    if (!hits.length) throw new Error(`"${s}" matches no notebook in ${notebooksDir} (have: ${all.join(', ')})`);
    picked.push(...hits.map((f) => join(notebooksDir, f)));
  }
  return [...new Set(picked)];
}

/** The error of a failed run, shortened for one terminal paragraph (the full text is in the executed notebook). */
export function shortError(error: string): string {
  const lines = error.split('\n').map((l) => l.trimEnd()).filter((l) => l.trim());
  const at = lines.findIndex((l) => /^[A-Za-z]*(Error|Exception)\b.*:/.test(l.trim()));
  const head = at >= 0 ? lines.slice(at, at + 3) : lines.slice(0, 4);
  return head.join('\n');
}

/** Where a failed notebook stopped and its shortened error, indented under its line. */
function failure(r: NotebookRun): string {
  const where = r.cell === undefined ? 'before any cell' : `cell ${r.cell}${r.source ? ` (${r.source.slice(0, 60)})` : ''}`;
  return `${where}\n${shortError(r.error ?? '').replace(/^/gm, '      ')}`;
}

/**
 * What every notebook of this run reads besides its own bytes; null (so everything runs) when the
 * numeric engine cannot be found out, which the kernels will then report themselves.
 */
function sharedInputs(env: Record<string, string | undefined>, log: (line: string) => void): RunInputs | null {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(projectRoot, 'scripts', 'engine-key.ts')], { env, encoding: 'utf8' });
  if (r.status !== 0) {
    log(`every notebook runs: the numeric engine could not be determined (${(r.stderr || r.error?.message || '').trim().split('\n').at(-1)})`);
    return null;
  }
  return runInputs(env, JSON.parse(r.stdout) as string);
}

function shortPath(p: string): string {
  const r = relative(process.cwd(), p);
  return r && !r.startsWith('..') ? r : p;
}

export interface RunAllOptions {
  notebooks: string[];
  env: Record<string, string>;
  cellTimeout?: number;
  log?: (line: string) => void;
  /** Print each cell start and the kernel's progress lines as they happen (default true). */
  live?: boolean;
  /** The run folder, when the caller computed it already (plannedRun of the same environment). */
  run?: PlannedRun;
  /** Execute every notebook, even one whose recorded inputs and outputs are unchanged (default false). */
  rerun?: boolean;
}

export interface RunAllResult {
  runs: NotebookRun[];
  /** The run folder every notebook filed into. */
  run: PlannedRun;
}

/** Kernel stdout lines worth a terminal line: the lib's stage log, the run folder, k, conversion. */
const LIVE_STDOUT = /^(\[rsn\]|run [0-9a-f]{8}:|k = \d|converting |convert)/;

export async function runAll(opts: RunAllOptions): Promise<RunAllResult> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const baseEnv = { ...process.env, ...opts.env };
  // Where the notebooks will file their results: computed here as rsn.setup() computes it in each notebook, which checks it (RSN_RUN).
  const run = opts.run ?? plannedRun(baseEnv);
  const env = { ...opts.env, [envVarName('run')]: run.id };
  const outDir = join(run.dir, 'notebooks');
  log(`run ${run.id} (k = ${run.k.k}, ${run.k.how}): ${shortPath(run.dir)}`);
  const runs: NotebookRun[] = [];
  const width = Math.max(...opts.notebooks.map((n) => n.replace(/^.*\//, '').replace(/\.ipynb$/, '').length));
  const live = opts.live ?? true;
  const shared = sharedInputs(baseEnv, log);
  for (const [i, nb] of opts.notebooks.entries()) {
    const name = nb.replace(/^.*\//, '').replace(/\.ipynb$/, '');
    const tag = `[${i + 1}/${opts.notebooks.length}] ${name.padEnd(width)}`;
    const inputs = shared ? notebookInputs(shared, nb) : null;
    const reuse = inputs && !opts.rerun ? reusableNotebook(run.dir, name, inputs) : { reusable: false as const, why: opts.rerun ? 'asked to re-run' : 'engine unknown' };
    if (reuse.reusable) {
      runs.push({ notebook: nb, name, output: join(outDir, `${name}.ipynb`), log: join(outDir, `${name}.log`), ok: true, seconds: reuse.seconds, reused: true });
      log(`${tag}  reused  (inputs unchanged, its ${reuse.outputs} files as written in ${reuse.seconds.toFixed(1)} s)`);
      continue;
    }
    if (live) log(`${tag}  …  (${reuse.why})`);
    // Until it ends well this notebook has no results to reuse, and its old figures are dropped so none outlives it.
    forgetNotebook(run.dir, name);
    for (const f of figuresOf(run.dir, name)) rmSync(f, { force: true });
    const before = runFolderState(run.dir);
    const onEvent = (e: NotebookEvent) => {
      if (e.kind === 'cell') log(`      cell ${e.n}/${e.of}  ${e.source.slice(0, 70)}`);
      else if (e.stream === 'stderr' || LIVE_STDOUT.test(e.text)) log(`        ${e.text.slice(0, 160)}`);
    };
    const r = await runNotebook(nb, { outDir, env, cellTimeout: opts.cellTimeout, onEvent: live ? onEvent : undefined });
    runs.push(r);
    if (r.ok && inputs) recordNotebook(run.dir, name, inputs, before, r.seconds);
    if (r.ok) log(`${tag}  ok      ${r.seconds.toFixed(1).padStart(6)} s`);
    else log(`${tag}  FAILED  ${r.seconds.toFixed(1).padStart(6)} s  at ${failure(r)}`);
  }
  const failed = runs.filter((r) => !r.ok);
  log(`${runs.length - failed.length}/${runs.length} notebooks ok${failed.length ? `; failed: ${failed.map((r) => r.name).join(', ')}` : ''} · executed copies in ${shortPath(outDir)}`);
  // Repeated at the end, where a long run's tail (a CI log, a terminal's last screen) still shows it.
  for (const r of failed) log(`  ${r.name} failed at ${failure(r)}\n      log: ${shortPath(r.log)}`);
  return { runs, run };
}

export const RUN_USAGE = '[NOTEBOOK…] [--model DIR] [--data DIR] [--k N] [--k-percent P] [--relations a,b] [--seed N] [--batch-size N] [--quick] [--executor local|slurm] [--work DIR] [--shards N] [--partition NAME] [--set NAME=VALUE]… [--results DIR] [--cell-timeout S] [--rerun]';

export interface RunArgs {
  positionals: string[];
  /** RSN_* overrides for the notebooks (from the environment, then the flags). */
  env: Record<string, string>;
  cellTimeout: number | undefined;
  /** Execute notebooks whose inputs are unchanged too. */
  rerun: boolean;
  help: boolean;
}

/** The command line shared by `jupyter-run` and `reproduce`: notebook selectors and parameter overrides. */
export function parseRunArgs(args: string[]): RunArgs {
  const { values, positionals } = parseCommandLine(
    args,
    {
      model: { type: 'string' },
      data: { type: 'string' },
      k: { type: 'string' },
      'k-percent': { type: 'string' },
      relations: { type: 'string' },
      seed: { type: 'string' },
      'batch-size': { type: 'string' },
      quick: { type: 'boolean' },
      executor: { type: 'string' },
      work: { type: 'string' },
      shards: { type: 'string' },
      partition: { type: 'string' },
      set: { type: 'string', multiple: true },
      results: { type: 'string' },
      'cell-timeout': { type: 'string' },
      rerun: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    true,
  );
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (k.startsWith('RSN_') && v !== undefined) env[k] = v;
  const named: [string, string | boolean | undefined][] = [
    ['model', values.model], ['data', values.data], ['k', values.k], ['kPercent', values['k-percent']], ['relations', values.relations],
    ['seed', values.seed], ['batchSize', values['batch-size']], ['quick', values.quick],
    ['executor', values.executor], ['executorWork', values.work === undefined ? undefined : resolve(values.work)],
    ['executorShards', values.shards], ['executorPartition', values.partition],
  ];
  for (const [name, v] of named) if (v !== undefined) env[envName(name)] = typeof v === 'boolean' ? (v ? '1' : '0') : v;
  for (const s of values.set ?? []) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new Error(`--set ${s}: expected NAME=VALUE (e.g. --set kMaxPercent=100)`);
    env[envName(s.slice(0, eq))] = s.slice(eq + 1);
  }
  if (values.results) env[RESULTS_ENV] = resolve(values.results);
  return { positionals, env, cellTimeout: values['cell-timeout'] ? Number(values['cell-timeout']) : undefined, rerun: values.rerun ?? false, help: values.help ?? false };
}

async function main(): Promise<number> {
  const { positionals, env, cellTimeout, rerun, help } = parseRunArgs(process.argv.slice(2));
  if (help) {
    console.log(`usage: npx tsx scripts/jupyter-run.ts ${RUN_USAGE}`);
    return 0;
  }
  const notebooks = selectNotebooks(positionals);
  if (!notebooks.length) {
    console.error(`no notebooks in ${notebooksDir}`);
    return 1;
  }
  if (!(await setup())) return 1;
  const overrides = Object.entries(env).filter(([k]) => k !== RESULTS_ENV).map(([k, v]) => `${k}=${v}`);
  console.log(`running ${notebooks.length} notebook(s) through Jupyter + tslab${overrides.length ? ` with ${overrides.join(' ')}` : ''}`);
  const { runs } = await runAll({ notebooks, env, cellTimeout, rerun });
  return runs.every((r) => r.ok) ? 0 : 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    process.exit(await main());
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    process.exit(2);
  }
}
