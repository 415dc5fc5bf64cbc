/**
 * The lab as a researcher uses it: `npm run lab` (the real Jupyter Notebook server with the
 * tslab kernel) opened in headless Chromium, notebook 04 run with "Run All" from the page, then
 * k changed in the parameter cell and the cells re-run from there, as one does by hand. Checks
 * what a reader sees: no error output, both figures drawn, the selection and accuracy captions
 * saying the k that was used; the k = 72 run folder untouched by the k = 36 re-run; the notebook
 * file on disk unchanged (autosave off, nothing saved).
 *
 * Quick setting on the organism (4 relations). Chromium and Jupyter are installed when they can be
 * (root + apt-get); the test is skipped, saying why, only where they cannot be.
 * RSN_SCREENSHOT_DIR=DIR keeps PNGs of the page after each run.
 *
 * Run: node --import tsx --test test/lab-browser.test.ts
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { canInstallChromium, ChromiumBrowser, type ChromiumPage, ensureChromium, findChromium } from '../lib/notebook/chromium.ts';
import { projectRoot } from '../lib/notebook/paths.ts';
import { plannedRun } from '../lib/notebook/run.ts';
import type { VerdictFile } from '../lib/notebook/verdict.ts';
import { setup } from '../scripts/jupyter-setup.ts';
import { freePort } from './helpers/free-port.ts';

const NOTEBOOK = '04-intra-relation';
const notebookFile = join(projectRoot, 'notebooks', `${NOTEBOOK}.ipynb`);
const work = mkdtempSync(join(tmpdir(), 'rsn-lab-browser-test-'));
const results = join(work, 'results');
const env = { RSN_MODEL: join(projectRoot, 'data', 'organism'), RSN_QUICK: '1', RSN_RELATIONS: 'company_ceo,company_hq,person_father,person_mother', RSN_RESULTS: results };
const token = randomBytes(16).toString('hex');
const shots = process.env['RSN_SCREENSHOT_DIR'];

let skipReason = '';
let server: ChildProcess | null = null;
let serverLog = '';
let browser: ChromiumBrowser | null = null;
let port = 0;


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs: number): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await probe().catch(() => null);
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) assert.fail(`${what}: not within ${timeoutMs / 1000} s\n--- Jupyter's log (tail):\n${serverLog.slice(-3000)}`);
    await sleep(500);
  }
}

before(async () => {
  if (!findChromium() && !canInstallChromium()) {
    skipReason = 'no Chromium, and it cannot be installed here (needs root and apt-get)';
    return;
  }
  if (!(await setup({ log: () => {} }))) {
    skipReason = 'Jupyter is not installed and cannot be installed here';
    return;
  }
  const chromium = ensureChromium({ log: () => {} });
  port = await freePort();
  server = spawn(process.execPath, ['--import', 'tsx', join(projectRoot, 'scripts', 'jupyter-lab.ts'), '--no-browser', `--port=${port}`, '--ip=127.0.0.1', `--NotebookApp.token=${token}`], {
    cwd: projectRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const keep = (chunk: Buffer) => {
    serverLog = (serverLog + chunk.toString('utf8')).slice(-20_000);
  };
  server.stdout?.on('data', keep);
  server.stderr?.on('data', keep);
  await waitFor('Jupyter answers on its port', async () => (await fetch(`http://127.0.0.1:${port}/api/status?token=${token}`)).ok, 120_000);
  browser = await ChromiumBrowser.launch(chromium, { timeoutMs: 60_000 });
});

after(async () => {
  await browser?.close();
  if (server?.pid) {
    try {
      process.kill(-server.pid, 'SIGTERM');
    } catch {
      // already gone
    }
    await sleep(1000);
    try {
      process.kill(-server.pid, 'SIGKILL');
    } catch {
      // gone after SIGTERM
    }
  }
  rmSync(work, { recursive: true, force: true });
});

/** What the page shows of each code cell: its source, prompt, printed text and the outputs' kinds. */
interface CellView {
  source: string;
  prompt: string | number | null;
  text: string;
  errors: string[];
  plots: number;
}

const VIEW = `Jupyter.notebook.get_cells().filter((c) => c.cell_type === "code").map((c) => ({
  source: c.get_text(),
  prompt: c.input_prompt_number ?? null,
  text: c.output_area.element[0].innerText,
  errors: c.output_area.outputs.filter((o) => o.output_type === "error").map((o) => o.ename + ": " + o.evalue),
  plots: Array.from(c.output_area.element[0].querySelectorAll("div.js-plotly-plot")).filter((d) => d.querySelector("svg.main-svg .barlayer .point")).length,
}))`;

const cells = (page: ChromiumPage) => page.evaluate<CellView[]>(VIEW);

/** Wait until no code cell is queued or running, then give the figures a moment to draw. */
async function settled(page: ChromiumPage, label: string): Promise<CellView[]> {
  await waitFor(`${label}: every queued cell ran`, async () => {
    const v = await cells(page);
    return v.every((c) => c.prompt !== '*') && v.some((c) => c.prompt !== null);
  }, 10 * 60_000);
  return cells(page);
}

async function screenshot(page: ChromiumPage, name: string, cellIndex: number): Promise<void> {
  if (!shots) return;
  mkdirSync(shots, { recursive: true });
  await page.evaluate(`Jupyter.notebook.get_cells().filter((c) => c.cell_type === "code")[${cellIndex}].element[0].scrollIntoView()`);
  writeFileSync(join(shots, name), await page.screenshot());
}

function noErrors(view: CellView[], label: string): void {
  const bad = view.flatMap((c, i) => c.errors.map((e) => `code cell ${i}: ${e}`));
  assert.deepEqual(bad, [], `${label}: cells showed errors`);
  const unrun = view.map((c, i) => (typeof c.prompt === 'number' ? -1 : i)).filter((i) => i >= 0);
  assert.deepEqual(unrun, [], `${label}: code cells without an execution count`);
}

test('npm run lab in Chromium: Run All on notebook 04, change k in the parameter cell, re-run: the page shows the new k and its figures', async (t) => {
  if (skipReason) return t.skip(skipReason);
  const fileBefore = readFileSync(notebookFile);
  const page = await browser!.newPage({ width: 1200, height: 900 });
  await page.goto(`http://127.0.0.1:${port}/notebooks/notebooks/${NOTEBOOK}.ipynb?token=${token}`);
  await waitFor('the notebook loaded and its kernel connected', () => page.evaluate<boolean>('typeof Jupyter !== "undefined" && !!Jupyter.notebook && Jupyter.notebook._fully_loaded === true && !!Jupyter.notebook.kernel && Jupyter.notebook.kernel.is_connected()'), 120_000);
  // A test must not write the user's notebook: no autosave (nothing calls save either).
  await page.evaluate('Jupyter.notebook.set_autosave_interval(0), true');

  await page.evaluate('Jupyter.notebook.execute_all_cells(), true');
  let view = await settled(page, 'Run All');
  noErrors(view, 'Run All');
  const figureCell = view.findIndex((c) => c.source.includes('rsn.showFigure('));
  assert.ok(figureCell > 0, 'notebook 04 has a figure cell');
  view = await waitFor('both Fig. 3 panels drew', async () => {
    const v = await cells(page);
    return v[figureCell]!.plots === 2 ? v : null;
  }, 30_000);
  const all = view.map((c) => c.text).join('\n');
  assert.match(all, /Selection: top-72 of 2432 FFN neurons/);
  assert.match(all, /Accuracy % \(k = 72;/);
  await screenshot(page, 'lab-04-run-all.png', figureCell);
  const run72 = plannedRun(env).dir;
  const verdicts72 = join(run72, 'verdicts', `${NOTEBOOK}.json`);
  const verdictBytes72 = readFileSync(verdicts72, 'utf8');

  // Change k where the notebook says to, and re-run from the parameter cell on (Run All Below).
  const paramCell = view.findIndex((c) => c.source.includes('rsn.params('));
  const edited = view[paramCell]!.source.replace(/rsn\.params\(\{ ([^}]*) \}\)/, 'rsn.params({ $1, k: 36 })');
  assert.notEqual(edited, view[paramCell]!.source, 'the parameter cell has a params({ … }) call to add k to');
  await page.evaluate(`(() => {
    const cell = Jupyter.notebook.get_cells().filter((c) => c.cell_type === "code")[${paramCell}];
    cell.set_text(${JSON.stringify(edited)});
    const at = Jupyter.notebook.find_cell_index(cell);
    Jupyter.notebook.execute_cell_range(at, Jupyter.notebook.ncells());
    return true;
  })()`);
  view = await settled(page, 'the re-run with k = 36');
  noErrors(view, 'the re-run with k = 36');
  view = await waitFor('both panels redrew for k = 36', async () => {
    const v = await cells(page);
    return v[figureCell]!.plots === 2 && v[figureCell]!.text.includes('relation-36') ? v : null;
  }, 30_000);
  const rerun = view.map((c) => c.text).join('\n');
  assert.match(rerun, /Selection: top-36 of 2432 FFN neurons/);
  assert.match(rerun, /Accuracy % \(k = 36;/);
  assert.doesNotMatch(rerun, /k = 72/, 'no output of the k = 72 run is left on the page');
  await screenshot(page, 'lab-04-k36.png', figureCell);

  const run36 = plannedRun({ ...env, RSN_K: '36' }).dir;
  assert.notEqual(run36, run72);
  assert.equal((JSON.parse(readFileSync(join(run36, 'verdicts', `${NOTEBOOK}.json`), 'utf8')) as VerdictFile).effective?.['k']?.value, 36);
  assert.equal(readFileSync(verdicts72, 'utf8'), verdictBytes72, 'the k = 72 run folder is untouched by the k = 36 re-run');
  // Notebook 6 always tries its hard-coded ipywidgets fallback, which 404s without ipywidgets (the lab uses no widgets).
  const widgetsFallback = '/nbextensions/widgets/notebook/js/extension.js';
  assert.deepEqual(page.errors.filter((e) => !e.includes(widgetsFallback)), [], 'the page logged no errors');
  await page.close();
  assert.ok(readFileSync(notebookFile).equals(fileBefore), 'the notebook file on disk is unchanged');
});
