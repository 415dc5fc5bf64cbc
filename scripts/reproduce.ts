/**
 * The main job: rebuild every paper result by executing all notebooks (notebooks/NN-*.ipynb)
 * headless through real Jupyter and the tslab kernel, on the bundled organism by default, then
 * collect their verdicts and figures into results/<model>/REPORT.md and REPORT.html. The
 * notebooks file everything into the setting's run folder, results/<model>/runs/<id>/
 * (lib/notebook/run.ts); the report is built from that folder (`npm run report` rebuilds it).
 *
 *   npm run reproduce [-- [NOTEBOOK…] --model DIR --data DIR --k N --k-percent P --relations a,b
 *                        --quick --seed N --batch-size N --set NAME=VALUE… --results DIR --cell-timeout S
 *                        --executor slurm --work DIR --shards N --partition NAME --rerun --timing-out FILE]
 *
 * NOTEBOOK: a prefix of a notebook file name ("04") or a path; default all. The options become the
 * notebooks' first-cell parameters through the environment (--k → RSN_K, --k-percent →
 * RSN_K_PERCENT, --set kMaxPercent=100 → RSN_K_MAX_PERCENT=100); RSN_* variables already set pass
 * through. One progress line per notebook; a failing notebook is reported with its cell and error,
 * the others still run, and the exit code is 1. A notebook whose inputs (its text, the lab's code,
 * parameters, model, data, engine) and written files are unchanged since it last ran to the end in
 * this run folder is not executed again (lib/notebook/reuse.ts); --rerun executes every one.
 * Every run writes results/<model>/reproduce-timing.json (what ran, what was reused, how long,
 * on what machine and load); --timing-out FILE writes a copy there too.
 *
 * With --executor slurm, every notebook's filter, ranking and experiment jobs run as job arrays
 * of --shards tasks on the cluster that SLURM_CONF (or the node's configuration) names, with
 * --work as the shared work folder; the run folder and report are those of a local run.
 */
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { dataDirFor, prepareModel } from '../lib/notebook/model.ts';
import { params } from '../lib/notebook/params.ts';
import { loadDataset } from '../lib/method/dataset.ts';
import { DEFAULT_MODEL_DIR, fromRoot, RESULTS_ENV, projectRoot, resultsDir } from '../lib/notebook/paths.ts';
import { plannedRun } from '../lib/notebook/run.ts';
import { setup } from './jupyter-setup.ts';
import { parseRunArgs, RUN_USAGE, runAll, selectNotebooks } from './jupyter-run.ts';
import { writeReport } from './report.ts';
import { expectedRunSeconds, readCostLedger, type LedgerEntry } from '../lib/notebook/cost-ledger.ts';
import { addCosts, formatCost, formatFlops, NO_COST } from '../lib/method/cost.ts';
import { formatDuration } from '../lib/progress.ts';
import { writeFileAtomic } from '../lib/data/io.ts';
import { MEASUREMENT_SCHEMA, startMeasurement } from '../lib/measurement.ts';

const log = (l: string) => console.log(l);

/**
 * What this setting cost when it last ran (its run folder's ledger) and how long it should take
 * on one process and on the executor chosen, from the stages timed there before.
 */
function printCostPlan(ledger: readonly LedgerEntry[], where: string, shards: number): void {
  if (!ledger.length) {
    log('cost plan: none yet (the first run of this setting counts each stage as it goes; the report shows them)');
    return;
  }
  const total = ledger.reduce((a, e) => addCosts(a, e), NO_COST);
  log(`cost plan (this setting's last run, ${ledger.length} stages): ${formatCost(total)}`);
  const one = expectedRunSeconds(ledger, 'local');
  const here = where === 'local' ? one : expectedRunSeconds(ledger, where);
  // Stage time only: starting the kernels and the notebooks' own code come on top.
  log(`  expected stage time if nothing is cached: ${one ? `≈ ${formatDuration(one.seconds)} in one process (from ${one.timings} timed stages)` : 'no stage timed in one process yet'}`);
  if (where !== 'local') {
    const guess = one ? `≈ ${formatDuration(one.seconds / shards)} + scheduling per stage (one process ÷ ${shards}; no stage timed on ${where} yet)` : `no stage timed on ${where} yet`;
    log(`  on ${where}: ${here ? `≈ ${formatDuration(here.seconds)} (from ${here.timings} timed stages)` : guess}`);
  }
}

async function main(): Promise<number> {
  // --timing-out FILE is this command's own: a copy of the run's timing file (e.g. into docs/data/).
  const argv = process.argv.slice(2);
  const at = argv.findIndex((a) => a === '--timing-out' || a.startsWith('--timing-out='));
  const timingOut = at < 0 ? undefined : argv[at]!.includes('=') ? argv[at]!.slice(argv[at]!.indexOf('=') + 1) : argv[at + 1];
  if (at >= 0 && !timingOut) throw new Error('--timing-out: expected a file name');
  if (at >= 0) argv.splice(at, argv[at]!.includes('=') ? 1 : 2);
  const { positionals, env, cellTimeout, rerun, help } = parseRunArgs(argv);
  if (help) {
    console.log(`usage: npm run reproduce -- ${RUN_USAGE} [--timing-out FILE]`);
    return 0;
  }
  const model = env['RSN_MODEL'] || DEFAULT_MODEL_DIR;
  if (!env['RSN_MODEL'] && !existsSync(join(projectRoot, DEFAULT_MODEL_DIR, 'config.json'))) {
    console.error(`no bundled organism at ${DEFAULT_MODEL_DIR} (rebuild it with npm run organism:train, or pass --model DIR)`);
    return 2;
  }
  const notebooks = selectNotebooks(positionals);
  const fullEnv = { ...process.env, ...env };
  // Every parameter and the relation names are checked before Jupyter and the kernels start: a
  // typo fails in seconds, naming the parameter, not after the first notebook's setup.
  const P = params({}, { env: fullEnv, quiet: true });
  loadDataset(dataDirFor(P.data, P.model), { seed: P.seed, relations: P.relations });
  const run = plannedRun(fullEnv);
  if (!(await setup())) return 1;
  // The conversion as a step of its own, with its progress on this terminal (the notebooks then reuse it).
  const prepared = await prepareModel(model, { log: (l) => log(`  ${l}`) });
  log(`model: ${model}${prepared.dir !== fromRoot(model) ? ` (converted: ${relative(projectRoot, prepared.dir)})` : ''}`);
  const overrides = Object.entries(env).filter(([k]) => k !== RESULTS_ENV).map(([k, v]) => `${k}=${v}`);
  log(`reproducing on ${model}: ${notebooks.length} notebook(s) through Jupyter + tslab${overrides.length ? ` with ${overrides.join(' ')}` : ''}`);
  const where = P.executor === 'local' ? 'local' : `${P.executor} ×${P.executorShards}`;
  printCostPlan(readCostLedger(run.dir), where, P.executorShards);
  const measurement = startMeasurement();
  const t0 = performance.now();
  const { runs } = await runAll({ notebooks, env, cellTimeout, log, run, rerun });
  const seconds = (performance.now() - t0) / 1000;
  const computed = readCostLedger(run.dir).filter((e) => e.last !== null && Date.parse(e.last.computedAt) >= Date.now() - seconds * 1000);
  if (computed.length) log(`computed now: ${computed.length} stage(s), ${formatFlops(computed.reduce((a, e) => a + e.flops, 0))} in ${formatDuration(computed.reduce((a, e) => a + (e.last?.seconds ?? 0), 0))} of stage time on ${where}`);
  const complete = runs.every((r) => r.ok) && notebooks.length === selectNotebooks([]).length;
  const timing = {
    schema: MEASUREMENT_SCHEMA,
    measured: 'npm run reproduce',
    context: measurement.finish(),
    run: run.id,
    options: [...overrides, ...(rerun ? ['--rerun'] : [])],
    seconds: Number(seconds.toFixed(1)),
    notebooks: runs.map((r) => ({ name: r.name, state: r.reused ? 'reused' : r.ok ? 'ran' : 'failed', seconds: r.reused ? 0 : Number(r.seconds.toFixed(1)) })),
    computedStages: computed.length,
    stageSeconds: Number(computed.reduce((a, e) => a + (e.last?.seconds ?? 0), 0).toFixed(1)),
  };
  // How long this run took and what it did: docs/benchmarks.md's reproduction table is rendered from such files.
  const timingFile = join(resultsDir(model, fullEnv), 'reproduce-timing.json');
  writeFileAtomic(timingFile, `${JSON.stringify(timing, null, 1)}\n`);
  if (timingOut) writeFileAtomic(timingOut, `${JSON.stringify(timing, null, 1)}\n`);
  const { md, html, report } = writeReport({ dir: run.dir, outDir: resultsDir(model, fullEnv), runs, model, totalSeconds: seconds, overrides, complete });
  const all = report.notebooks.flatMap((n) => n.verdicts);
  const count = (s: string) => all.filter((v) => v.status === s).length;
  log(`verdicts: ${count('reproduced')} reproduced, ${count('differs')} differ, ${count('not applicable')} not applicable · ${(seconds / 60).toFixed(1)} min`);
  log(`report: ${md}\n        ${html}\ntiming: ${timingFile}`);
  if (!complete) log(`        (${runs.every((r) => r.ok) ? 'some notebooks only' : 'a notebook failed'}: the last complete report, REPORT.md, was kept)`);
  return runs.every((r) => r.ok) ? 0 : 1;
}

try {
  process.exit(await main());
} catch (e) {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(2);
}
