/**
 * Interactive plotly.js figures. In a notebook a figure is an HTML output (a div and a script
 * calling Plotly.newPlot) that works in Jupyter Notebook and JupyterLab; plotly.js itself is
 * inlined once per notebook, in the output of the first cell (`plotlyLoader()`, emitted by
 * loadRsn), so a saved notebook opened later still draws every figure (once trusted), offline.
 * Every figure is also written as standalone HTML to results/<model>/figures/<name>.html, next to
 * a shared copy of the same bundle (plotly.min.js), together with its spec as <name>.json.
 *
 * The bundle is plotly.js's cartesian partial bundle (PLOTLY_TRACE_TYPES): a third of the full
 * one, and gzipped inside the loader, so an executed notebook stays well under a megabyte.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { writeFileAtomic } from '../data/io.ts';
import { applyRelationColors } from './colors.ts';
import { display, escapeHtml, scriptJson } from './display.ts';
import type { PlotlySpec } from './plotly-spec.ts';
import { notebookName, notebookOutputDir } from './state.ts';

export type { PlotlySpec } from './plotly-spec.ts';

export interface FigureOptions {
  /** File name (no extension) under results/<model>/figures/; default <notebook>-fig<N>. */
  saveAs?: string;
  /** Height in pixels of the notebook output (default: the layout's height, else 450). */
  height?: number;
  /** Inline plotly.js (gzipped, ≈0.7 MB) into the standalone file instead of referencing the shared copy. */
  inlinePlotly?: boolean;
}

export interface FigureResult {
  /** Standalone HTML file. */
  html: string;
  /** The spec as JSON. */
  json: string;
}

const require = createRequire(import.meta.url);

/** The npm package whose bundle every figure uses. */
export const PLOTLY_PACKAGE = 'plotly.js-cartesian-dist-min';

/**
 * The trace types the cartesian bundle registers (its README; test/figures.test.ts checks this
 * list against Plotly.PlotSchema in Chromium). Any other type would draw nothing.
 */
export const PLOTLY_TRACE_TYPES: readonly string[] = ['bar', 'box', 'contour', 'heatmap', 'histogram', 'histogram2d', 'histogram2dcontour', 'image', 'pie', 'scatter', 'scatterternary', 'violin'];

/** The name of the shared bundle next to the standalone figures. */
export const SHARED_PLOTLY_FILE = 'plotly.min.js';

export function plotlyBundlePath(): string {
  return require.resolve(`${PLOTLY_PACKAGE}/plotly-cartesian.min.js`);
}

/** The version of the bundle the figures draw with. */
export function plotlyVersion(): string {
  const pkg = JSON.parse(readFileSync(require.resolve(`${PLOTLY_PACKAGE}/package.json`), 'utf8')) as { version: string };
  return pkg.version;
}

let bundleGzipBase64: string | null = null;
/** The bundle gzipped and base64-encoded: base64 needs no escaping inside a <script>. */
export function plotlyBundleGzipBase64(): string {
  bundleGzipBase64 ??= gzipSync(readFileSync(plotlyBundlePath()), { level: 9 }).toString('base64');
  return bundleGzipBase64;
}

/**
 * HTML that defines window.Plotly unless the page has it: the gzipped bundle is inflated with the
 * browser's DecompressionStream and run as an inline script (the same permission the output's own
 * script needs, where eval would need another). An AMD `define` (Jupyter Notebook ships
 * require.js) is hidden while the bundle runs so it always sets the global. The inflation is
 * asynchronous; figure scripts wait for window.Plotly, and window.rsnPlotlyError tells them why
 * it will not come.
 */
export function plotlyLoaderHtml(): string {
  const what = `plotly.js ${plotlyVersion()} (cartesian bundle)`;
  return [
    `<div class="rsn-plotly-loader" style="display:none">${what}</div>`,
    '<script type="text/javascript">',
    '(function () {',
    '  if (window.Plotly || window.rsnPlotlyLoading) return;',
    '  function fail(why) {',
    '    window.rsnPlotlyError = why;',
    `    if (window.console) console.error(${JSON.stringify(`${what} could not be loaded: `)} + why);`,
    '  }',
    "  if (typeof DecompressionStream !== 'function' || typeof Response !== 'function' || typeof Blob !== 'function') {",
    "    fail('this browser has no DecompressionStream (Chrome/Edge 80, Firefox 113, Safari 16.4 or later have it)');",
    '    return;',
    '  }',
    `  var packed = atob("${plotlyBundleGzipBase64()}");`,
    '  var bytes = new Uint8Array(packed.length);',
    '  for (var i = 0; i < packed.length; i++) bytes[i] = packed.charCodeAt(i);',
    "  window.rsnPlotlyLoading = new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'))).text().then(function (source) {",
    '    if (window.Plotly) return;',
    '    var amdDefine = window.define; window.define = undefined;',
    '    try {',
    "      var s = document.createElement('script');",
    '      s.text = source;',
    '      (document.head || document.documentElement).appendChild(s);',
    '    } finally { window.define = amdDefine; }',
    "    if (!window.Plotly) fail('the bundle ran but did not define window.Plotly (see the error above)');",
    '  }, function (e) { fail(String((e && e.message) || e)); });',
    '})();',
    '</script>',
  ].join('\n');
}

/** The first cell's output: plotly.js for every figure of the notebook. */
export function plotlyLoader(): void {
  display({ 'text/html': plotlyLoaderHtml(), 'text/plain': `(plotly.js ${plotlyVersion()}, cartesian bundle, loaded for this notebook's figures)` });
}

let figureCounter = 0;

/** Figure numbering restarts with each notebook. */
export function resetFigures(): void {
  figureCounter = 0;
}

function figureHeight(spec: PlotlySpec, height: number | undefined): number {
  const h = spec.layout?.['height'];
  return height ?? (typeof h === 'number' ? h : 450);
}

/**
 * The script that draws `spec` into the element `divId` once window.Plotly exists. It marks the
 * element with data-rsn-figure = drawn | failed | no-plotly, which is how the headless renderer
 * (scripts/render-figures.ts) knows the outcome; a failure is also shown in place of the figure.
 */
function drawScript(divId: string, spec: PlotlySpec, fallbackHtml: string): string {
  const config = { responsive: true, displaylogo: false, ...(spec.config ?? {}) };
  return [
    '<script type="text/javascript">',
    '(function () {',
    `  var spec = ${scriptJson({ data: spec.data, layout: spec.layout ?? {}, config })};`,
    '  var t0 = Date.now();',
    '  function failed(el, e) {',
    "    el.setAttribute('data-rsn-figure', 'failed');",
    "    el.textContent = 'This figure could not be drawn: ' + ((e && e.message) || e);",
    "    if (window.console) console.error('figure " + divId + " could not be drawn:', e);",
    '  }',
    '  function draw() {',
    `    var el = document.getElementById(${JSON.stringify(divId)});`,
    '    if (el && window.Plotly) {',
    '      var hint = el.querySelector(".rsn-figure-hint"); if (hint) el.removeChild(hint);',
    '      try {',
    '        window.Plotly.newPlot(el, spec.data, spec.layout, spec.config).then(',
    "          function () { el.setAttribute('data-rsn-figure', 'drawn'); },",
    '          function (e) { failed(el, e); });',
    '      } catch (e) { failed(el, e); }',
    '      return;',
    '    }',
    '    if (!window.rsnPlotlyError && Date.now() - t0 < 15000) { setTimeout(draw, 100); return; }',
    '    if (!el) return;',
    `    el.innerHTML = ${JSON.stringify(fallbackHtml)};`,
    "    if (window.rsnPlotlyError) { var why = document.createElement('div'); why.textContent = 'Reason: ' + window.rsnPlotlyError; el.appendChild(why); }",
    "    el.setAttribute('data-rsn-figure', 'no-plotly');",
    '  }',
    '  draw();',
    '})();',
    '</script>',
  ].join('\n');
}

/** The id of the figure's element in a standalone file. */
export const STANDALONE_FIGURE_ID = 'rsn-figure';

export function standaloneFigureHtml(spec: PlotlySpec, title: string, plotlyScript: string): string {
  const id = STANDALONE_FIGURE_ID;
  return [
    '<!DOCTYPE html>',
    '<html><head><meta charset="utf-8">',
    `<title>${escapeHtml(title)}</title>`,
    plotlyScript,
    '</head><body style="margin:0">',
    `<div id="${id}" class="rsn-figure" style="width:100vw;height:100vh"></div>`,
    drawScript(id, { ...spec, layout: { ...(spec.layout ?? {}), height: undefined } }, `plotly.js did not load: ${SHARED_PLOTLY_FILE} belongs next to this file`),
    '</body></html>',
    '',
  ].join('\n');
}

/** A standalone file's <script> for the shared bundle; a missing file is reported at once instead of after the wait. */
const sharedPlotlyScript = `<script type="text/javascript" src="${SHARED_PLOTLY_FILE}" onerror="window.rsnPlotlyError = '${SHARED_PLOTLY_FILE} is missing next to this file'"></script>`;

export interface NotebookFigureOptions {
  /** The element id; unique within the notebook page. */
  id: string;
  /** Output height in pixels (default: the layout's height, else 450). */
  height?: number;
  /** The standalone copy, named in the hint and the fallback message. */
  standalone?: string;
}

/**
 * A figure's text/html output in a notebook: a div, with a hint that shows where scripts do not
 * run (an untrusted notebook) and that the script removes, and the draw script. It needs the
 * loader (plotlyLoaderHtml) somewhere on the page.
 */
export function notebookFigureHtml(spec: PlotlySpec, opts: NotebookFigureOptions): string {
  const title = titleOf(spec, 'figure');
  const copy = opts.standalone ? `; standalone copy: ${escapeHtml(opts.standalone)}` : '';
  const fallback = `plotly.js is not loaded on this page: run the notebook's first cell (it loads plotly.js)${opts.standalone ? `, or open ${escapeHtml(opts.standalone)}` : ''}`;
  return `<div id="${escapeHtml(opts.id)}" class="rsn-figure" style="width:100%;height:${figureHeight(spec, opts.height)}px"><div class="rsn-figure-hint" style="color:#888;font-size:0.85em;padding:8px">Figure “${escapeHtml(title)}” — if it does not appear, trust the notebook (File ▸ Trust Notebook) or re-run it${copy}</div></div>\n${drawScript(opts.id, spec, fallback)}`;
}

function titleOf(spec: PlotlySpec, fallback: string): string {
  const t = spec.layout?.['title'];
  if (typeof t === 'string') return t;
  if (t && typeof t === 'object' && typeof (t as { text?: unknown }).text === 'string') return (t as { text: string }).text;
  return fallback;
}

/** Trace types the bundle lacks, which would draw nothing: named here rather than found blank later. */
function checkTraceTypes(spec: PlotlySpec, name: string): void {
  if (!Array.isArray(spec.data)) throw new Error(`figure ${name}: data must be an array of traces`);
  const missing = [...new Set(spec.data.map((t) => t?.['type']).filter((t): t is string => typeof t === 'string' && !PLOTLY_TRACE_TYPES.includes(t)))];
  if (missing.length) throw new Error(`figure ${name}: trace type ${missing.map((t) => JSON.stringify(t)).join(', ')} is not in ${PLOTLY_PACKAGE} (it has ${PLOTLY_TRACE_TYPES.join(', ')})`);
}

/** Write the shared bundle next to the figures unless an identical copy is there. */
function ensureSharedBundle(dir: string): void {
  const shared = join(dir, SHARED_PLOTLY_FILE);
  const src = plotlyBundlePath();
  if (existsSync(shared) && statSync(shared).size === statSync(src).size && readFileSync(shared).equals(readFileSync(src))) return;
  writeFileAtomic(shared, readFileSync(src));
}

/** Show an interactive figure and save it under results/<model>/figures/. */
export function showFigure(spec: PlotlySpec, opts: FigureOptions = {}): void {
  saveFigure(spec, opts, true);
}

/**
 * Long category labels (relation names, set at an angle) are cut off at the plot's edge unless
 * the axis may grow the margin: every axis of the layout may, unless the spec says otherwise.
 */
export function withAutomargin(spec: PlotlySpec): PlotlySpec {
  const layout: Record<string, unknown> = { ...(spec.layout ?? {}) };
  const axes = Object.keys(layout).filter((k) => /^[xy]axis\d*$/.test(k));
  for (const name of axes.length ? axes : ['xaxis', 'yaxis']) {
    const axis = layout[name];
    if (axis === undefined || (typeof axis === 'object' && axis !== null && !('automargin' in axis))) layout[name] = { ...(axis as object | undefined), automargin: true };
  }
  return { ...spec, layout };
}

/**
 * Save a figure in the run folder's figures/ (and show it when `show`); returns the files.
 * Traces named after a relation get its colour (lib/notebook/colors.ts) unless they chose one.
 */
export function saveFigure(spec: PlotlySpec, opts: FigureOptions = {}, show = false): FigureResult {
  const n = ++figureCounter;
  const name = opts.saveAs ?? `${notebookName()}-fig${n}`;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new Error(`figure name ${JSON.stringify(name)}: use letters, digits, ".", "_" and "-"`);
  checkTraceTypes(spec, name);
  const coloured = withAutomargin(applyRelationColors(spec));
  const dir = notebookOutputDir('figures');
  const title = titleOf(coloured, name);
  let plotlyScript: string;
  if (opts.inlinePlotly) {
    plotlyScript = plotlyLoaderHtml();
  } else {
    ensureSharedBundle(dir);
    plotlyScript = sharedPlotlyScript;
  }
  const html = join(dir, `${name}.html`);
  const json = join(dir, `${name}.json`);
  writeFileAtomic(html, standaloneFigureHtml(coloured, title, plotlyScript));
  writeFileAtomic(json, JSON.stringify({ notebook: notebookName(), name, ...coloured }, null, 1));
  if (show) display({
    'text/html': notebookFigureHtml(coloured, { id: `rsn-fig-${process.pid}-${Date.now().toString(36)}-${n}`, height: opts.height, standalone: html }),
    'text/plain': `[figure "${title}": ${coloured.data.length} trace(s); saved ${html}]`,
  });
  return { html, json };
}
