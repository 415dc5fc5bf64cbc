/**
 * The main job: rebuild every paper result by executing all notebooks (notebooks/NN-*.ipynb)
 * headless through real Jupyter and the tslab kernel, on the bundled organism by default, then
 * collect their verdicts and figures into results/<model>/REPORT.md and REPORT.html.
 *
 *   npm run reproduce [-- [NOTEBOOK…] --model DIR --data DIR --k N --k-percent P --relations a,b
 *                        --quick --seed N --batch-size N --set NAME=VALUE… --results DIR --cell-timeout S]
 *
 * NOTEBOOK: a prefix of a notebook file name ("04") or a path; default all. The options become the
 * notebooks' first-cell parameters through the environment (--k → RSN_K, --k-percent →
 * RSN_K_PERCENT, --set kMaxPercent=100 → RSN_K_MAX_PERCENT=100); RSN_* variables already set pass
 * through. One progress line per notebook; a failing notebook is reported with its cell and error,
 * the others still run, and the exit code is 1.
 *
 * Until the organism exists (data/organism, issue 5) and no --model is given, this runs the
 * foundation check instead: the converted fixture against the independent reference.
 */
import { existsSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { convertCheckpoint } from '../weights-converter/convert.ts';
import { LlamaModel } from '../lib/model/llama.ts';
import { DEFAULT_MODEL_DIR, RESULTS_ENV, projectRoot, resultsDir } from '../lib/notebook/paths.ts';
import { loadReference, maxAbsDiff } from '../test/helpers/reference.ts';
import { setup } from './jupyter-setup.ts';
import { parseRunArgs, RUN_USAGE, runAll, selectNotebooks } from './jupyter-run.ts';
import { figuresOf, writeReport } from './report.ts';

const log = (l: string) => console.log(l);

async function foundationCheck(): Promise<void> {
  // Without an organism there is no model that knows facts; check the foundation instead:
  // convert the bundled fixture and compare with the independent reference.
  const out = join(projectRoot, '.cache', 'models', 'tiny-llama-bf16-reproduce');
  if (!existsSync(join(out, 'model.json'))) await convertCheckpoint({ inputDir: join(projectRoot, 'test/fixtures/tiny-llama-bf16'), outputDir: out, dtype: 'float32', force: true });
  const model = await LlamaModel.load(out, { log: (l) => process.stderr.write(l + '\n') });
  const ref = loadReference();
  let worst = 0;
  for (const c of ref.cases) {
    const r = await model.forward([c.input_ids], { logits: 'all' });
    worst = Math.max(worst, maxAbsDiff(c.logits.flat(), r.logits!.data));
  }
  model.dispose();
  log(`[rsn] no bundled organism at ${DEFAULT_MODEL_DIR} yet (issue 5), so there is no model that knows facts; foundation check on the fixture: max |Δlogit| vs llama2.c = ${worst.toExponential(2)}`);
  log('[rsn] with a model: npm run reproduce -- --model DIR');
  if (!(worst < 1e-3)) throw new Error(`forward pass disagrees with the reference by ${worst}`);
}

async function main(): Promise<number> {
  const { positionals, env, cellTimeout, help } = parseRunArgs(process.argv.slice(2));
  if (help) {
    console.log(`usage: npm run reproduce -- ${RUN_USAGE}`);
    return 0;
  }
  const model = env['RSN_MODEL'] || DEFAULT_MODEL_DIR;
  if (!env['RSN_MODEL'] && !existsSync(join(projectRoot, DEFAULT_MODEL_DIR, 'config.json'))) {
    await foundationCheck();
    return 0;
  }
  const notebooks = selectNotebooks(positionals);
  if (!(await setup())) return 1;
  const dir = resultsDir(model, { ...process.env, ...env });
  // Figures of the notebooks about to run are rewritten by them; drop the old ones so the report never shows stale figures.
  for (const nb of notebooks) for (const f of figuresOf(dir, nb.replace(/^.*\//, '').replace(/\.ipynb$/, ''))) rmSync(f, { force: true });
  const overrides = Object.entries(env).filter(([k]) => k !== RESULTS_ENV).map(([k, v]) => `${k}=${v}`);
  log(`reproducing on ${model}: ${notebooks.length} notebook(s) through Jupyter + tslab${overrides.length ? ` with ${overrides.join(' ')}` : ''}`);
  const t0 = performance.now();
  const runs = await runAll({ notebooks, env, cellTimeout, log });
  const seconds = (performance.now() - t0) / 1000;
  const { md, html, report } = writeReport({ dir, runs, model, totalSeconds: seconds, overrides });
  const all = report.notebooks.flatMap((n) => n.verdicts);
  const count = (s: string) => all.filter((v) => v.status === s).length;
  log(`verdicts: ${count('reproduced')} reproduced, ${count('differs')} differ, ${count('not applicable')} not applicable · ${(seconds / 60).toFixed(1)} min`);
  log(`report: ${md}\n        ${html}`);
  return runs.every((r) => r.ok) ? 0 : 1;
}

try {
  process.exit(await main());
} catch (e) {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(2);
}
