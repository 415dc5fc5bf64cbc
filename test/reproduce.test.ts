/**
 * The one-command reproduction (scripts/reproduce.ts) and its report (scripts/report.ts), plus the
 * Wilcoxon signed-rank test the frequency notebook uses (lib/stats/wilcoxon.ts).
 *
 * - Plain Node: the Wilcoxon test against scipy.stats.wilcoxon values; the report built from a
 *   synthetic results folder (every notebook listed, figure links that exist, a failure by cell).
 * - The real thing: `npm run reproduce -- --quick --relations …` through Jupyter + tslab on the
 *   bundled organism (data/organism; RSN_TEST_ORGANISM points elsewhere): the report lists every
 *   notebook with its verdicts and links to figures that exist; RSN_K reaches the notebook and
 *   changes the number of masked neurons. Skipped, saying why, only where Jupyter cannot be installed.
 *
 * Run: node --import tsx --test test/reproduce.test.ts
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { midRanks, wilcoxonSignedRank } from '../lib/stats/wilcoxon.ts';
import { projectRoot } from '../lib/notebook/paths.ts';
import type { VerdictFile } from '../lib/notebook/verdict.ts';
import { plannedRun } from '../lib/notebook/run.ts';
import { writeReport } from '../scripts/report.ts';
import { setup } from '../scripts/jupyter-setup.ts';

const work = mkdtempSync(join(tmpdir(), 'rsn-reproduce-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

/**
 * The verdict of every claim of the committed organism reproduction, transcribed once by hand
 * from results/organism/REPORT.md (see test/fixtures/README.md); never written by the code under test.
 */
interface ExpectedVerdicts {
  counts: Record<'reproduced' | 'differs' | 'not applicable', number>;
  notebooks: Record<string, { claim: string; status: string; anyRun?: string }[]>;
}
const expected = JSON.parse(readFileSync(join(projectRoot, 'test', 'fixtures', 'expected-verdicts.json'), 'utf8')) as ExpectedVerdicts;

/** The claims whose status the notebooks fix for any run on a model of the organism's size. */
function assertAnyRunVerdicts(dir: string, only?: readonly string[]): number {
  let n = 0;
  for (const [notebook, claims] of Object.entries(expected.notebooks)) {
    if (only && !only.includes(notebook)) continue;
    const v = JSON.parse(readFileSync(join(dir, 'verdicts', `${notebook}.json`), 'utf8')) as VerdictFile;
    for (const c of claims.filter((x) => x.anyRun)) {
      const got = v.verdicts.find((x) => x.claim === c.claim);
      assert.ok(got, `${notebook}: no verdict for "${c.claim}"`);
      assert.equal(got.status, c.status, `${notebook}: "${c.claim}" (${c.anyRun})`);
      n++;
    }
  }
  return n;
}

const notebookNames = readdirSync(join(projectRoot, 'notebooks')).filter((f) => f.endsWith('.ipynb')).sort().map((f) => f.replace(/\.ipynb$/, ''));
/** Notebooks whose head says they go beyond the paper (no claim, no verdict). */
const beyondPaper = notebookNames.filter((n) => {
  const nb = JSON.parse(readFileSync(join(projectRoot, 'notebooks', `${n}.ipynb`), 'utf8')) as { cells: { source: string[] }[] };
  return /beyond the paper/i.test(nb.cells[0]!.source.join(''));
});

describe('Wilcoxon signed-rank test (lib/stats/wilcoxon.ts)', () => {
  const x = [1.83, 0.5, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.3];
  const y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29];
  test('exact p-values equal scipy.stats.wilcoxon (no ties)', () => {
    const two = wilcoxonSignedRank(x, y);
    assert.deepEqual([two.n, two.wPlus, two.wMinus, two.statistic, two.method], [9, 40, 5, 5, 'exact']);
    assert.equal(two.p, 0.0390625);
    assert.equal(wilcoxonSignedRank(x, y, { alternative: 'greater' }).p, 0.01953125);
    assert.equal(wilcoxonSignedRank(x, y, { alternative: 'less' }).p, 0.986328125);
    assert.equal(wilcoxonSignedRank([0.3, -0.1, 0.5, 0.8, -0.4, 0.2, 0.9, 0.6, 0.7, -0.05, 1.1, 0.45]).p, 0.01220703125);
  });
  test('ties use mid-ranks and the exact sign-flip distribution; zeros are dropped', () => {
    assert.deepEqual(midRanks([3, 1, 3, 2]), [3.5, 1, 3.5, 2]);
    const r = wilcoxonSignedRank([1, 1, 2, -2, 3, 3, 3, -1, 4, 0]);
    assert.deepEqual([r.n, r.zeros, r.wPlus, r.wMinus], [9, 1, 38.5, 6.5]);
    assert.equal(r.p, 0.0625); // brute force over the 2^9 sign patterns of the mid-ranks
    assert.equal(wilcoxonSignedRank([0, 0]).p, 1);
  });
  test('n > 50: normal approximation as scipy (tie-corrected, no continuity correction)', () => {
    const d = [0.646, 1.122, 0.63, -1.003, 1.205, 0.746, -0.237, 0.881, 0.665, 0.594, 0.328, 0.847, -0.436, 0.137, -0.182, 0.899, 0.34, 0.008, -0.482, 0.043, 0.308, 0.024, 1.594, 1.307, -2.411, -1.589, 0.125, -0.122, 0.514, 0.517, 2.418, -0.812, -0.078, 2.343, 0.947, 0.963, -0.214, -1.348, 0.467, 0.409, -0.927, -0.383, 0.228, -0.645, 0.202, 0.395, 0.336, -0.206, 0.894, 1.191, 0.621, -0.518, 1.032, -0.201, 1.179, -0.772, 1.214, 0.28, -0.949, -0.014];
    const r = wilcoxonSignedRank(d);
    assert.equal(r.method, 'normal');
    assert.equal(r.statistic, 585);
    assert.ok(Math.abs(r.p - 0.015126799117971637) < 1e-6, String(r.p));
    assert.throws(() => wilcoxonSignedRank([1, 2], [1]), /x has 2 values, y has 1/);
  });
});

describe('the report (scripts/report.ts) from a results folder', () => {
  test('lists every notebook with its verdicts, links only figures that exist, names a failing cell', () => {
    const dir = join(work, 'synthetic', 'organism');
    for (const d of ['verdicts', 'figures', 'notebooks']) mkdirSync(join(dir, d), { recursive: true });
    const [first, second, third] = notebookNames as [string, string, string];
    const vf = (notebook: string, verdicts: VerdictFile['verdicts']): VerdictFile => ({ schema: 'rsn-verdicts/1', notebook, model: 'data/organism', modelTag: 'organism', updated: '2026-01-01T00:00:00.000Z', params: { k: 53, relations: [] }, verdicts });
    writeFileSync(join(dir, 'verdicts', `${first}.json`), JSON.stringify(vf(first, [{ claim: 'a | b', paper: 12, ours: 12, status: 'reproduced', detail: 'exact' }])));
    writeFileSync(join(dir, 'verdicts', `${second}.json`), JSON.stringify(vf(second, [{ claim: 'c', paper: 'x', ours: null, status: 'not applicable', detail: 'why' }])));
    writeFileSync(join(dir, 'figures', 'f1.json'), JSON.stringify({ notebook: first, name: 'f1', data: [], layout: { title: { text: 'Figure one' } } }));
    writeFileSync(join(dir, 'figures', 'f1.html'), '<html></html>');
    writeFileSync(join(dir, 'figures', 'orphan.json'), JSON.stringify({ notebook: first, name: 'orphan', data: [] })); // no .html: not linked
    writeFileSync(join(dir, 'notebooks', `${first}.ipynb`), '{}');
    const runs = [
      { notebook: first, name: first, output: '', log: '', ok: true, seconds: 3 },
      { notebook: third, name: third, output: '', log: '', ok: false, seconds: 1, cell: 4, source: 'const x = boom();', error: 'ReferenceError: boom is not defined\n    at …' },
    ];
    const { md, html, report } = writeReport({ dir, runs, model: 'data/organism', totalSeconds: 4 });
    const text = readFileSync(md, 'utf8');
    for (const n of notebookNames) assert.match(text, new RegExp(`\\| \\[${n}\\]\\(#${n}\\) \\|`), `${n} in the summary table`);
    assert.match(text, /\| a \\\| b \| 12 \| 12 \| \*\*reproduced\*\* \| exact \|/);
    assert.match(text, /\[f1\]\(figures\/f1\.html\)/);
    assert.ok(!text.includes('orphan'));
    assert.match(text, /\*\*FAILED\*\* at cell 4 \(`const x = boom\(\);`\): ReferenceError: boom is not defined/);
    assert.match(text, /from an earlier run/);
    assert.deepEqual(report.notebooks.map((n) => n.state).slice(0, 3), ['ok', 'earlier', 'failed']);
    const page = readFileSync(html, 'utf8');
    assert.match(page, /<iframe loading="lazy" src="figures\/f1.html"/);
    assert.match(page, /FAILED at cell 4/);
  });
});

describe('the committed organism reproduction (results/organism) against the hand-written expectation', () => {
  test('the expectation holds the README\'s totals: 47 claims, 22 reproduced, 18 differ, 7 not applicable', () => {
    const all = Object.values(expected.notebooks).flat();
    assert.equal(all.length, 47);
    assert.deepEqual(expected.counts, { reproduced: 22, differs: 18, 'not applicable': 7 });
    for (const st of ['reproduced', 'differs', 'not applicable'] as const) assert.equal(all.filter((c) => c.status === st).length, expected.counts[st], st);
    const readme = readFileSync(join(projectRoot, 'README.md'), 'utf8');
    assert.match(readme, /22 of 47 checked claims reproduce, 18 differ, 7 are not applicable/);
  });

  test('every committed verdict file gives, claim by claim, the expected status', () => {
    // `npm run reproduce` (README command 1) files the default setting's run here.
    const dir = join(plannedRun({}).dir, 'verdicts');
    assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => f.replace(/\.json$/, '')).sort(), Object.keys(expected.notebooks).sort());
    for (const [notebook, claims] of Object.entries(expected.notebooks)) {
      const v = JSON.parse(readFileSync(join(dir, `${notebook}.json`), 'utf8')) as VerdictFile;
      assert.equal(v.notebook, notebook);
      assert.deepEqual(v.verdicts.map((x) => [x.claim, x.status]), claims.map((c) => [c.claim, c.status]), notebook);
    }
  });

  test('the report built from the committed verdicts counts them per notebook and in total as expected', () => {
    const dir = join(work, 'committed', 'organism');
    mkdirSync(dir, { recursive: true });
    cpSync(join(plannedRun({}).dir, 'verdicts'), join(dir, 'verdicts'), { recursive: true });
    const { md } = writeReport({ dir, runs: [], model: 'data/organism' });
    const text = readFileSync(md, 'utf8');
    assert.match(text, /- Verdicts: \*\*47\*\* — 22 reproduced, 18 differ, 7 not applicable/);
    for (const [notebook, claims] of Object.entries(expected.notebooks)) {
      const c = (st: string) => claims.filter((x) => x.status === st).length;
      assert.match(text, new RegExp(`\\| \\[${notebook}\\]\\(#${notebook}\\) \\| [^|]+ \\| [^|]+ \\| ${c('reproduced')} \\| ${c('differs')} \\| ${c('not applicable')} \\|`), notebook);
    }
  });
});

describe('npm run reproduce through Jupyter + tslab (quick, on the organism)', () => {
  const organism = process.env['RSN_TEST_ORGANISM'] || join(projectRoot, 'data', 'organism');
  const tag = organism.replace(/\/+$/, '').replace(/^.*\//, '');
  // The same small configuration as test/notebooks.test.ts, so the two share the stage cache.
  const relations = 'company_ceo,company_hq,person_father,person_mother';
  let skipReason = '';
  const reproduce = (args: string[], env: Record<string, string> = {}) => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(projectRoot, 'scripts', 'reproduce.ts'), ...args], {
      cwd: projectRoot,
      encoding: 'utf8',
      env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RSN_'))), ...env },
      timeout: 900_000,
    });
    return { code: r.status, out: `${r.stdout}${r.stderr}` };
  };

  before(async () => {
    assert.ok(existsSync(join(organism, 'config.json')), `no model organism at ${organism}`);
    if (!(await setup({ log: () => {} }))) skipReason = 'Jupyter is not installed and cannot be installed here';
  });

  test('the report lists every notebook with its verdicts and links to figures that exist', (t) => {
    if (skipReason) return t.skip(skipReason);
    const results = join(work, 'results');
    const args = ['--model', organism, '--quick', '--relations', relations, '--results', results];
    const t0 = performance.now();
    const r = reproduce(args);
    const firstSeconds = (performance.now() - t0) / 1000;
    assert.equal(r.code, 0, r.out);
    for (const [i, n] of notebookNames.entries()) assert.match(r.out, new RegExp(`\\[${i + 1}/${notebookNames.length}\\] ${n}\\s+ok`), r.out);
    const out = join(results, tag);
    const dir = plannedRun({ RSN_MODEL: organism, RSN_QUICK: '1', RSN_RELATIONS: relations, RSN_RESULTS: results }).dir;
    const md = readFileSync(join(out, 'REPORT.md'), 'utf8');
    assert.ok(existsSync(join(out, 'REPORT.html')) && !existsSync(join(out, 'REPORT-incomplete.md')));
    // One run folder holds everything this run wrote: every executed notebook and the setting.
    assert.deepEqual(readdirSync(join(out, 'runs')), [dir.replace(/^.*\//, '')]);
    assert.deepEqual(readdirSync(join(dir, 'notebooks')).filter((f) => f.endsWith('.ipynb')).sort(), notebookNames.map((n) => `${n}.ipynb`));
    // plotly.js is inlined once per notebook, compressed: every executed notebook stays under 1 MB.
    for (const n of notebookNames) assert.ok(statSync(join(dir, 'notebooks', `${n}.ipynb`)).size < 1_000_000, `${n}.ipynb is ${statSync(join(dir, 'notebooks', `${n}.ipynb`)).size} bytes`);
    assert.match(md, new RegExp(`- Run: \`${dir.replace(/^.*\//, '')}\``));
    for (const n of notebookNames) {
      assert.match(md, new RegExp(`\\| \\[${n}\\]\\(#${n}\\) \\| ran \\|`), `${n} listed as run`);
      // A notebook beyond the paper tests no claim: it ran, and wrote no verdicts.
      if (beyondPaper.includes(n)) {
        assert.ok(!existsSync(join(dir, 'verdicts', `${n}.json`)), `${n} records no verdicts`);
        continue;
      }
      const v = JSON.parse(readFileSync(join(dir, 'verdicts', `${n}.json`), 'utf8')) as VerdictFile;
      assert.ok(v.verdicts.length >= 1, `${n} has verdicts`);
      const section = md.slice(md.indexOf(`<a id="${n}"></a>`));
      for (const x of v.verdicts) assert.ok(section.includes(`**${x.status}**`), `${n}: verdict "${x.claim}" in the report`);
    }
    const links = [...md.matchAll(/\]\((runs\/[0-9a-f]{8}\/figures\/[^)]+\.html)\)/g)].map((m) => m[1]!);
    assert.ok(links.length >= notebookNames.length, `figure links: ${links.length}`);
    for (const l of links) assert.ok(existsSync(join(out, l)), `${l} exists`);
    assert.ok(existsSync(join(dir, 'figures', 'plotly.min.js')), 'the figures load the shared plotly.js');
    // The claims whose status does not depend on the relations, k or --quick give the committed
    // reproduction's verdicts (test/fixtures/expected-verdicts.json) in this quick run too.
    assert.equal(assertAnyRunVerdicts(dir), 10);

    // Nothing changed: every notebook is reused, in a fraction of the time, and the report and
    // run folder are the same bytes apart from the report's date and run time.
    const files = (root: string) => readdirSync(root, { recursive: true, withFileTypes: true }).filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name)).sort();
    // reproduce-timing.json is the timing of each run (when, how long, under what load): it differs by nature.
    const snapshot = () => new Map(files(out).filter((f) => !f.endsWith('/reproduce-timing.json')).map((f) => [f, readFileSync(f, 'utf8').replace(/^(- Generated: |<li>Generated: ).*$/gm, '$1…')]));
    const first = snapshot();
    const t1 = performance.now();
    const again = reproduce(args);
    const secondSeconds = (performance.now() - t1) / 1000;
    assert.equal(again.code, 0, again.out);
    for (const [i, n] of notebookNames.entries()) assert.match(again.out, new RegExp(`\\[${i + 1}/${notebookNames.length}\\] ${n}\\s+reused`), again.out);
    assert.ok(secondSeconds < 0.15 * firstSeconds, `unchanged re-run: ${secondSeconds.toFixed(1)} s, first run ${firstSeconds.toFixed(1)} s`);
    assert.deepEqual(snapshot(), first);
    // The second run's timing file says what it did: every notebook reused, no stage computed.
    const timing = JSON.parse(readFileSync(join(out, 'reproduce-timing.json'), 'utf8')) as { notebooks: { state: string }[]; computedStages: number };
    assert.deepEqual([...new Set(timing.notebooks.map((n) => n.state))], ['reused']);
    assert.equal(timing.computedStages, 0);

    // A file a notebook wrote is gone: that notebook runs again, writes it again, the others are reused.
    const figure = join(dir, 'figures', '03-overlap.json');
    const bytes = readFileSync(figure, 'utf8');
    rmSync(figure);
    const repaired = reproduce(args);
    assert.equal(repaired.code, 0, repaired.out);
    assert.match(repaired.out, /\] 03-overlap\s+…\s+\(figures\/03-overlap\.json is missing\)/, repaired.out);
    assert.equal(repaired.out.match(/\s+reused\s+\(/g)?.length, notebookNames.length - 1, repaired.out);
    assert.equal(readFileSync(figure, 'utf8'), bytes);
  });

  test('a bad parameter or an unknown relation stops the reproduction in seconds, before Jupyter starts, naming it; nothing is written', () => {
    const results = join(work, 'results-refused');
    const cases: [string[], RegExp][] = [
      [['--relations', 'company_ceo,nope_relation'], /unknown relation\(s\) nope_relation; this dataset has company_ceo, /],
      [['--k=-5'], /parameter k = -5 \(from RSN_K\): expected an integer ≥ 1/],
      [['--set', 'randomSeeds=abc'], /RSN_RANDOM_SEEDS = "abc": expected a decimal number/],
    ];
    for (const [args, message] of cases) {
      const t0 = performance.now();
      const r = reproduce([...args, '--model', organism, '--results', results]);
      assert.notEqual(r.code, 0, r.out);
      assert.match(r.out, message);
      assert.ok(performance.now() - t0 < 30_000, `${args.join(' ')}: refused in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      assert.doesNotMatch(r.out, /notebook\(s\) through Jupyter/);
    }
    assert.ok(!existsSync(results), 'nothing was written');
  });

  test('RSN_K reaches the notebooks: it changes the number of masked neurons', (t) => {
    if (skipReason) return t.skip(skipReason);
    const results = join(work, 'results-k');
    const r = reproduce(['02', '04', '--model', organism, '--quick', '--relations', relations, '--results', results], { RSN_K: '20' });
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /with .*RSN_K=20/);
    // Two notebooks are not the whole reproduction: their report does not pass for a complete one.
    assert.ok(existsSync(join(results, tag, 'REPORT-incomplete.md')) && !existsSync(join(results, tag, 'REPORT.md')), r.out);
    assert.match(r.out, /some notebooks only: the last complete report, REPORT\.md, was kept/);
    const dir = plannedRun({ RSN_MODEL: organism, RSN_QUICK: '1', RSN_RELATIONS: relations, RSN_RESULTS: results, RSN_K: '20' }).dir;
    // 02: each relation's top-k per layer adds up to k.
    const rows = readFileSync(join(dir, 'tables', '02-layers.csv'), 'utf8').trim().split('\n').slice(1);
    assert.equal(rows.length, relations.split(',').length);
    for (const row of rows) assert.equal(row.split(',').slice(1).reduce((a, c) => a + Number(c), 0), 20, row);
    // 04: the notebook says so and zeroes 20 neurons (its figures and verdicts are for k = 20).
    const nb = readFileSync(join(dir, 'notebooks', '04-intra-relation.ipynb'), 'utf8');
    assert.match(nb, /k = 20 \(as set\)/);
    assert.match(nb, /zeroing 20 neurons/);
    const v = JSON.parse(readFileSync(join(dir, 'verdicts', '04-intra-relation.json'), 'utf8')) as VerdictFile;
    assert.equal(v.params['k'], 20);
    // Without the override the organism's k is the paper's 3000 capped at 3 % of its FFN pool.
    const pool = JSON.parse(readFileSync(join(organism, 'config.json'), 'utf8')) as { num_hidden_layers: number; hidden_size: number; intermediate_size: number };
    const ffn = pool.num_hidden_layers * (2 * pool.intermediate_size + pool.hidden_size);
    const def = readFileSync(join(plannedRun({ RSN_MODEL: organism, RSN_QUICK: '1', RSN_RELATIONS: relations, RSN_RESULTS: join(work, 'results') }).dir, 'notebooks', '04-intra-relation.ipynb'), 'utf8');
    assert.match(def, new RegExp(`k = ${Math.min(3000, Math.floor(0.03 * ffn))} \\(`));
  });
});
