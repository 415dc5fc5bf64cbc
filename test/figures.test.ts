/**
 * Figures as a reader sees them. Plain Node: the notebook loader stays under a megabyte and holds
 * exactly the plotly.js bundle, relation colours are fixed, distinct and applied by saveFigure.
 * In real headless Chromium: figures saved by saveFigure draw and render to non-trivial PNGs in
 * their relation colours, broken figures are reported by scripts/render-figures.ts, and a
 * notebook-style page (the loader output plus a figure output, opened from a file:// URL) draws,
 * also with an AMD loader on the page as in Jupyter Notebook.
 *
 * Chromium is installed by lib/notebook/chromium.ts when it can be (root + apt-get); the browser
 * part is skipped, saying why, only where it cannot be.
 *
 * Run: node --import tsx --test test/figures.test.ts
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { gunzipSync, inflateSync } from 'node:zlib';
import { canInstallChromium, ChromiumBrowser, ChromiumUnavailableError, ensureChromium, findChromium } from '../lib/notebook/chromium.ts';
import { hasRelationColor, RELATION_COLORS, relationColor } from '../lib/notebook/colors.ts';
import {
  notebookFigureHtml,
  PLOTLY_TRACE_TYPES,
  plotlyBundlePath,
  plotlyLoaderHtml,
  plotlyVersion,
  saveFigure,
  SHARED_PLOTLY_FILE,
  standaloneFigureHtml,
  type PlotlySpec,
} from '../lib/notebook/figure.ts';
import { projectRoot } from '../lib/notebook/paths.ts';
import { setNotebook } from '../lib/notebook/state.ts';
import { PAPER_RELATIONS } from '../lib/data/lre.ts';
import { RELATION_NAMES } from '../lib/organism/world.ts';
import { renderFigures } from '../scripts/render-figures.ts';

const work = mkdtempSync(join(tmpdir(), 'rsn-figures-test-'));
const results = join(work, 'results');
const savedResultsEnv = process.env['RSN_RESULTS'];
before(() => {
  process.env['RSN_RESULTS'] = results;
  setNotebook('figtest');
});
after(() => {
  if (savedResultsEnv === undefined) delete process.env['RSN_RESULTS'];
  else process.env['RSN_RESULTS'] = savedResultsEnv;
  rmSync(work, { recursive: true, force: true });
});

const rgb = (hex: string): [number, number, number] => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)) as [number, number, number];
const rgbDistance = (a: string, b: string) => Math.hypot(...rgb(a).map((v, i) => v - rgb(b)[i]!));

/** The relations of the figures below, one bar trace each. */
function relationBars(): PlotlySpec {
  const names = Object.keys(RELATION_COLORS);
  return {
    data: names.map((r, i) => ({ type: 'bar', name: r, x: [r], y: [10 + i] })),
    layout: { title: { text: 'Accuracy by relation' }, width: 900, height: 500, barmode: 'group' },
  };
}

describe('the notebook loader (plain Node)', () => {
  test('is under 1 MB and inflates to exactly the cartesian bundle of the reported version', (t) => {
    const html = plotlyLoaderHtml();
    const bytes = Buffer.byteLength(html);
    t.diagnostic(`loader: ${bytes} bytes (bundle ${statSync(plotlyBundlePath()).size} bytes)`);
    assert.ok(bytes < 1_000_000, `loader is ${bytes} bytes`);
    const b64 = /atob\("([A-Za-z0-9+/=]+)"\)/.exec(html)?.[1];
    assert.ok(b64, 'the loader carries the bundle base64-encoded');
    assert.ok(gunzipSync(Buffer.from(b64, 'base64')).equals(readFileSync(plotlyBundlePath())), 'the payload is the bundle, gzipped');
    const pkg = JSON.parse(readFileSync(createRequire(import.meta.url).resolve('plotly.js-cartesian-dist-min/package.json'), 'utf8')) as { version: string };
    assert.equal(plotlyVersion(), pkg.version);
    assert.ok(html.includes(`plotly.js ${pkg.version} (cartesian bundle)`));
    assert.equal(html.match(/<\/script/gi)?.length, 1, 'only the closing tag of the loader script');
  });

  test('the bundle has every trace type the notebooks use', () => {
    const used = new Set<string>();
    const notebooks = readdirSync(join(projectRoot, 'notebooks')).filter((f) => f.endsWith('.ipynb'));
    assert.ok(notebooks.length >= 14, `${notebooks.length} notebooks`);
    for (const f of notebooks) {
      const text = readFileSync(join(projectRoot, 'notebooks', f), 'utf8');
      // Trace types in the cells' source: `type: "bar"` (axis types such as "log" are excluded below).
      for (const m of text.matchAll(/type: \\"([a-z0-9]+)\\"/g)) used.add(m[1]!);
    }
    const axisTypes = new Set(['linear', 'log', 'date', 'category', 'multicategory', 'line', 'data']);
    const traces = [...used].filter((t) => !axisTypes.has(t));
    assert.ok(traces.includes('bar') && traces.includes('heatmap'), `found ${traces.join(', ')}`);
    for (const t of traces) assert.ok(PLOTLY_TRACE_TYPES.includes(t), `notebooks use trace type ${t}, which the bundle lacks`);
  });
});

describe('relation colours (plain Node)', () => {
  test('every relation of the paper and the organism has its own, clearly distinct colour', () => {
    const names = [...new Set([...RELATION_NAMES, ...PAPER_RELATIONS.map((r) => r.name)])];
    assert.equal(names.length, 12);
    for (const n of names) assert.ok(hasRelationColor(n), `${n} has no fixed colour`);
    const colors = names.map(relationColor);
    assert.equal(new Set(colors).size, 12);
    for (const c of colors) assert.match(c, /^#[0-9A-F]{6}$/);
    for (let i = 0; i < colors.length; i++) {
      for (let j = i + 1; j < colors.length; j++) assert.ok(rgbDistance(colors[i]!, colors[j]!) >= 60, `${names[i]} ${colors[i]} and ${names[j]} ${colors[j]} are too close`);
    }
    assert.equal(relationColor('company_ceo'), '#0072B2', 'the first relation (sorted) takes the first colour');
  });

  test('an unknown name gets a stable colour apart from the fixed ones', () => {
    const names = ['city_mayor', 'person_sibling', 'x', 'company_ceo ', 'band_genre'];
    const colors = names.map(relationColor);
    assert.deepEqual(names.map(relationColor), colors, 'the same on every call');
    assert.equal(new Set(colors).size, names.length);
    for (const c of colors) {
      assert.match(c, /^#[0-9A-F]{6}$/);
      assert.ok(Object.values(RELATION_COLORS).every((f) => rgbDistance(c, f) >= 30), `${c} is too close to a fixed colour`);
    }
  });

  test('saveFigure colours traces that stand for a relation (name or legend group), and only those without a colour', () => {
    const spec: PlotlySpec = {
      data: [
        { type: 'bar', name: 'company_hq', x: ['a'], y: [1] },
        { type: 'scatter', name: 'person_father', x: [1, 2], y: [1, 2], mode: 'lines' },
        { name: 'person_mother', x: [1, 2], y: [2, 1] },
        { type: 'bar', name: 'star_constellation', x: ['a'], y: [2], marker: { color: '#123456' } },
        { type: 'scatter', name: 'landmark_country', x: [1], y: [1], line: { color: 'black', dash: 'dot' } },
        { type: 'bar', name: 'ours', x: ['a'], y: [3] },
        { type: 'heatmap', name: 'company_ceo', z: [[1]] },
        { type: 'scatter', name: 'person_pro_sport (others)', legendgroup: 'person_pro_sport', x: [1], y: [1], line: { dash: 'dot' } },
        { type: 'scatter', name: 'person_pro_sport (own)', legendgroup: 'own', x: [1], y: [1] },
      ],
    };
    const before = JSON.stringify(spec);
    const fig = saveFigure(spec, { saveAs: 'colours' });
    assert.equal(JSON.stringify(spec), before, 'the caller\'s spec is not modified');
    const saved = JSON.parse(readFileSync(fig.json, 'utf8')) as PlotlySpec & { notebook: string };
    assert.equal(saved.notebook, 'figtest');
    const d = saved.data as { marker?: { color?: string }; line?: { color?: string; dash?: string } }[];
    assert.equal(d[0]!.marker?.color, RELATION_COLORS['company_hq']);
    assert.deepEqual([d[1]!.line?.color, d[1]!.marker?.color], [RELATION_COLORS['person_father'], RELATION_COLORS['person_father']]);
    assert.equal(d[2]!.line?.color, RELATION_COLORS['person_mother'], 'a trace without type is a scatter');
    assert.equal(d[3]!.marker?.color, '#123456');
    assert.deepEqual([d[4]!.line?.color, d[4]!.marker], ['black', undefined]);
    assert.equal(d[5]!.marker, undefined);
    assert.equal(d[6]!.marker, undefined, 'a heatmap has no single colour to set');
    assert.deepEqual(d[7]!.line, { dash: 'dot', color: RELATION_COLORS['person_pro_sport'] }, 'the legend group names the relation; the dash stays');
    assert.equal(d[8]!.line, undefined, 'a name that merely starts with a relation is not one');
    const html = readFileSync(fig.html, 'utf8');
    assert.ok(html.includes(RELATION_COLORS['company_hq']!) && html.includes(`src="${SHARED_PLOTLY_FILE}"`));
    assert.ok(readFileSync(join(fig.html, '..', SHARED_PLOTLY_FILE)).equals(readFileSync(plotlyBundlePath())), 'the shared copy is the same bundle the notebooks inline');

    const way = saveFigure({ data: [{ type: 'bar', name: 'company_hq', x: ['a'], y: [1] }], layout: { colorway: ['#000000'] } }, { saveAs: 'colorway' });
    assert.equal((JSON.parse(readFileSync(way.json, 'utf8')) as PlotlySpec).data[0]!['marker'], undefined, 'a layout colorway is the caller\'s choice');
  });

  test('saveFigure names a trace type the bundle lacks instead of saving a blank figure', () => {
    assert.throws(() => saveFigure({ data: [{ type: 'scatter3d', x: [1], y: [1], z: [1] }] }, { saveAs: 'three-d' }), /figure three-d: trace type "scatter3d" is not in plotly\.js-cartesian-dist-min/);
  });
});

describe('finding Chromium (plain Node)', () => {
  test('RSN_CHROMIUM wins, else PATH is searched in order; a bad override or a missing browser is named', () => {
    const bin = join(work, 'bin');
    mkdirSync(bin, { recursive: true });
    for (const name of ['google-chrome', 'chromium-browser']) {
      writeFileSync(join(bin, name), '#!/bin/sh\n');
      chmodSync(join(bin, name), 0o755);
    }
    writeFileSync(join(bin, 'chromium'), 'not executable');
    assert.equal(findChromium({ PATH: `/nonexistent:${bin}` }), join(bin, 'chromium-browser'), 'chromium (not executable) is skipped; chromium-browser comes before google-chrome');
    assert.equal(findChromium({ PATH: bin, RSN_CHROMIUM: join(bin, 'google-chrome') }), join(bin, 'google-chrome'));
    assert.throws(() => findChromium({ PATH: bin, RSN_CHROMIUM: join(bin, 'chromium') }), /RSN_CHROMIUM=.*\/chromium: not an executable file/);
    assert.equal(findChromium({ PATH: '' }), null);
    assert.throws(
      () => ensureChromium({ install: false, env: { PATH: '' } }),
      (e: Error) => e instanceof ChromiumUnavailableError && e.message.includes('apt-get install -y --no-install-recommends chromium') && e.message.includes('RSN_CHROMIUM'),
    );
  });
});

// ---- in Chromium ----

/** A decoded 8-bit, non-interlaced PNG (what Chromium's screenshots are). */
function decodePng(buf: Buffer): { width: number; height: number; channels: number; pixels: Uint8Array } {
  assert.ok(buf.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), 'PNG signature');
  let width = 0, height = 0, channels = 0;
  const idat: Buffer[] = [];
  for (let off = 8; off < buf.length; ) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString('latin1', off + 4, off + 8);
    const body = buf.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      assert.equal(body[8], 8, 'bit depth 8');
      assert.equal(body[12], 0, 'not interlaced');
      channels = ({ 0: 1, 2: 3, 4: 2, 6: 4 } as Record<number, number>)[body[9]!]!;
    } else if (type === 'IDAT') idat.push(body);
    off += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const pixels = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    for (let x = 0; x < stride; x++) {
      const v = raw[y * (stride + 1) + 1 + x]!;
      const a = x >= channels ? pixels[y * stride + x - channels]! : 0;
      const b = y > 0 ? pixels[(y - 1) * stride + x]! : 0;
      const c = x >= channels && y > 0 ? pixels[(y - 1) * stride + x - channels]! : 0;
      const p = a + b - c;
      const paeth = Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c) ? a : Math.abs(p - b) <= Math.abs(p - c) ? b : c;
      const pred = [0, a, b, (a + b) >> 1, paeth][filter]!;
      pixels[y * stride + x] = (v + pred) & 0xff;
    }
  }
  return { width, height, channels, pixels };
}

/** Distinct colours and the colours present, of an RGB(A) image. */
function colourStats(img: ReturnType<typeof decodePng>): { distinct: number; has: (hex: string) => number; grayStd: number } {
  const counts = new Map<string, number>();
  let sum = 0, sum2 = 0;
  const n = img.width * img.height;
  for (let i = 0; i < n; i++) {
    const o = i * img.channels;
    const [r, g, b] = [img.pixels[o]!, img.pixels[o + 1]!, img.pixels[o + 2]!];
    const key = '#' + [r, g, b].map((v) => v.toString(16).padStart(2, '0')).join('').toUpperCase();
    counts.set(key, (counts.get(key) ?? 0) + 1);
    const gray = (r + g + b) / 3;
    sum += gray;
    sum2 += gray * gray;
  }
  return { distinct: counts.size, has: (hex) => counts.get(hex.toUpperCase()) ?? 0, grayStd: Math.sqrt(sum2 / n - (sum / n) ** 2) };
}

/** Chromium, or why the browser tests cannot run here; as root a failed install is an error, not a skip. */
function browserSetup(): { chromium: string } | { skip: string } | { error: string } {
  try {
    return { chromium: ensureChromium({ log: (l) => console.log(`# ${l}`) }) };
  } catch (e) {
    if (e instanceof ChromiumUnavailableError && !canInstallChromium()) return { skip: `Chromium is not available and cannot be installed by this user: ${e.message}` };
    return { error: (e as Error).message };
  }
}
const setup = browserSetup();
const skip = 'skip' in setup ? setup.skip : false;
const chromium = 'chromium' in setup ? setup.chromium : '';

describe('figures in headless Chromium', { skip }, () => {
  test('Chromium is found or installed', () => {
    assert.ok(!('error' in setup), 'error' in setup ? setup.error : '');
  });

  test('saved figures draw and render to PNGs in their relation colours', async () => {
    setNotebook('figtest');
    const figures = dirname(saveFigure(relationBars(), { saveAs: 'relations' }).html);
    saveFigure(
      {
        data: [
          { type: 'scatter', mode: 'lines+markers', name: 'person_father', x: [0, 10, 50, 100], y: [0.9, 0.7, 0.4, 0.2] },
          { type: 'scatter', mode: 'lines', name: 'random', x: [0, 100], y: [0.9, 0.88], line: { dash: 'dot', color: '#777777' } },
        ],
        layout: { title: { text: 'k sweep' }, width: 700, height: 420 },
      },
      { saveAs: 'sweep' },
    );
    saveFigure({ data: [{ type: 'heatmap', z: [[1, 0.2, -0.5], [0.1, 1, 0.3], [-0.4, 0.3, 1]], colorscale: 'RdBu' }], layout: { title: { text: 'overlap' }, width: 600, height: 500 } }, { saveAs: 'overlap' });
    const rendered = await renderFigures(figures, { outDir: join(work, 'png'), executable: chromium });
    const byName = new Map(rendered.map((r) => [r.name, r]));
    for (const name of ['relations', 'sweep', 'overlap']) {
      const r = byName.get(name);
      assert.ok(r, `${name} was rendered`);
      assert.deepEqual(r.problems, [], `${name} drew without problems`);
      assert.ok(r.ok && r.png);
      assert.ok(statSync(r.png).size > 10_000, `${name}.png is ${statSync(r.png).size} bytes`);
    }
    assert.equal(byName.get('relations')!.tracesDrawn, 12);
    const bars = decodePng(readFileSync(byName.get('relations')!.png!));
    assert.deepEqual([bars.width, bars.height], [900, 500], 'the page takes the layout\'s size');
    const s = colourStats(bars);
    assert.ok(s.distinct > 50 && s.grayStd > 10, `a drawn plot, not a blank page (${s.distinct} colours, σ ${s.grayStd.toFixed(1)})`);
    for (const [rel, c] of Object.entries(RELATION_COLORS)) assert.ok(s.has(c) > 100, `${rel}'s bar is drawn in ${c} (${s.has(c)} pixels)`);
    const heat = colourStats(decodePng(readFileSync(byName.get('overlap')!.png!)));
    assert.ok(heat.distinct > 50 && heat.grayStd > 10, `heatmap drawn (${heat.distinct} colours)`);
  });

  test('render-figures exits non-zero and names every figure that did not draw', () => {
    const dir = join(work, 'broken', 'figures');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, SHARED_PLOTLY_FILE), readFileSync(plotlyBundlePath()));
    const script = `<script type="text/javascript" src="${SHARED_PLOTLY_FILE}"></script>`;
    const write = (name: string, spec: PlotlySpec, plotly = script) => writeFileSync(join(dir, `${name}.html`), standaloneFigureHtml(spec, name, plotly));
    write('good', { data: [{ type: 'bar', x: ['a', 'b'], y: [1, 2] }] });
    write('bad-type', { data: [{ type: 'scatter3d', x: [1], y: [1], z: [1] }] });
    write('bad-data', { data: [null as unknown as Record<string, unknown>] });
    write('empty', { data: [{ type: 'bar', x: [], y: [] }] });
    write('no-plotly', { data: [{ type: 'bar', x: ['a'], y: [1] }] }, `<script type="text/javascript" src="missing.js" onerror="window.rsnPlotlyError = 'missing.js is missing'"></script>`);
    const png = join(work, 'broken-png');
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(projectRoot, 'scripts', 'render-figures.ts'), join(work, 'broken'), '--out', png], {
      encoding: 'utf8',
      env: { ...process.env, RSN_CHROMIUM: chromium },
      timeout: 180_000,
    });
    assert.equal(r.status, 1, `exit status 1\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /^ok +good \(1 trace/m);
    assert.match(r.stdout, /1 of 5 figures drew/);
    const failures = r.stderr.slice(r.stderr.indexOf('4 figure(s) failed:'));
    assert.ok(failures.length > 0, r.stderr);
    assert.match(failures, /bad-type: trace 0: type "scatter3d" is not in this plotly\.js bundle \(drawn as "scatter"\)/);
    assert.match(failures, /bad-data: plotly\.js did not draw it \(failed\): This figure could not be drawn: Cannot read properties of null/);
    assert.match(failures, /empty: empty plot: no trace drawn \(1 trace\(s\) in the spec, 1 hidden/);
    assert.match(failures, /no-plotly: plotly\.js did not draw it \(no-plotly\): plotly\.js did not load.*Reason: missing\.js is missing/);
    assert.match(failures, /no-plotly:[^]*missing\.js/);
    assert.ok(statSync(join(png, 'good.png')).size > 5_000);
  });

  test('a notebook-style page (loader output + figure output) draws from a file:// URL, also beside require.js', async () => {
    const spec = relationBars();
    const first = notebookFigureHtml(spec, { id: 'fig-a', standalone: '/results/organism/figures/relations.html' });
    const second = notebookFigureHtml({ data: [{ type: 'heatmap', z: [[1, 2], [3, 4]] }] }, { id: 'fig-b', height: 300 });
    assert.match(first, /height:500px/);
    assert.match(second, /height:300px/);
    // Jupyter Notebook's require.js defines an AMD `define`; the bundle must still set window.Plotly.
    const amd = '<script>window.define = function () { window.amdCalls = (window.amdCalls || 0) + 1; }; window.define.amd = {};</script>';
    const page = (head: string) => `<!DOCTYPE html><html><head><meta charset="utf-8">${head}</head><body>\n${plotlyLoaderHtml()}\n${first}\n${second}\n</body></html>`;
    writeFileSync(join(work, 'notebook.html'), page(amd));
    writeFileSync(join(work, 'old-browser.html'), page('<script>window.DecompressionStream = undefined;</script>'));
    const browser = await ChromiumBrowser.launch(chromium);
    try {
      const tab = await browser.newPage({ width: 1000, height: 900 });
      await tab.goto(pathToFileURL(join(work, 'notebook.html')).href);
      const got = await tab.evaluate<{ a: string; b: string; version: string; amd: number; defineKept: boolean; traces: string[]; hint: boolean }>(`new Promise(function (resolve) {
        (function poll() {
          var a = document.getElementById('fig-a').getAttribute('data-rsn-figure'), b = document.getElementById('fig-b').getAttribute('data-rsn-figure');
          if (!a || !b) { setTimeout(poll, 50); return; }
          resolve({ a: a, b: b, version: window.Plotly.version, amd: window.amdCalls || 0, defineKept: typeof window.define === 'function' && !!window.define.amd,
            traces: Object.keys(window.Plotly.PlotSchema.get().traces).sort(), hint: !!document.querySelector('.rsn-figure-hint') });
        })();
      })`);
      assert.deepEqual(tab.errors, []);
      assert.deepEqual({ a: got.a, b: got.b }, { a: 'drawn', b: 'drawn' });
      assert.equal(got.version, plotlyVersion());
      assert.equal(got.amd, 0, 'the bundle did not register itself with the AMD loader');
      assert.ok(got.defineKept, 'the page\'s define is restored');
      assert.equal(got.hint, false, 'the "trust the notebook" hints are gone once drawn');
      assert.deepEqual(got.traces, [...PLOTLY_TRACE_TYPES].sort(), 'PLOTLY_TRACE_TYPES is what the bundle registers');
      const png = colourStats(decodePng(await tab.screenshot()));
      assert.ok(png.has(RELATION_COLORS['company_ceo']!) > 100 || png.distinct > 50, 'the figure is on screen');
      await tab.close();

      const old = await browser.newPage();
      const t0 = Date.now();
      await old.goto(pathToFileURL(join(work, 'old-browser.html')).href);
      const text = await old.evaluate<string>(`new Promise(function (resolve) {
        (function poll() { var el = document.getElementById('fig-a'); if (el.getAttribute('data-rsn-figure')) resolve(el.textContent); else setTimeout(poll, 50); })();
      })`);
      assert.ok(Date.now() - t0 < 10_000, 'the fallback comes at once, not after the 15 s wait');
      assert.match(text, /plotly\.js is not loaded on this page: run the notebook's first cell .* or open \/results\/organism\/figures\/relations\.html/);
      assert.match(text, /Reason: this browser has no DecompressionStream/);
      assert.ok(old.errors.some((e) => /could not be loaded: this browser has no DecompressionStream/.test(e)), old.errors.join('\n'));
      await old.close();
    } finally {
      await browser.close();
    }
  });
});
