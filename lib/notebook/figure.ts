/**
 * Interactive plotly.js figures. In a notebook a figure is an HTML output (a div and a script
 * calling Plotly.newPlot) that works in Jupyter Notebook and JupyterLab; plotly.js itself is
 * inlined once per notebook, in the output of the first cell (`plotlyLoader()`, emitted by
 * loadRsn), so a saved notebook opened later still draws every figure (once trusted). Every
 * figure is also written as standalone HTML to results/<model>/figures/<name>.html, next to a
 * shared copy of plotly.min.js, together with its spec as <name>.json (for static renderers).
 */
import { copyFileSync, existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { writeFileAtomic } from '../data/io.ts';
import { display, escapeHtml, scriptJson } from './display.ts';
import { notebookName, notebookOutputDir } from './state.ts';

/** A plotly.js figure: traces, layout, config (https://plotly.com/javascript/reference/). */
export interface PlotlySpec {
  data: Record<string, unknown>[];
  layout?: Record<string, unknown>;
  config?: Record<string, unknown>;
}

export interface FigureOptions {
  /** File name (no extension) under results/<model>/figures/; default <notebook>-fig<N>. */
  saveAs?: string;
  /** Height in pixels of the notebook output (default: the layout's height, else 450). */
  height?: number;
  /** Inline plotly.js into the standalone file instead of referencing the shared copy (+4.8 MB). */
  inlinePlotly?: boolean;
}

export interface FigureResult {
  /** Standalone HTML file. */
  html: string;
  /** The spec as JSON. */
  json: string;
}

const require = createRequire(import.meta.url);

export function plotlyBundlePath(): string {
  return require.resolve('plotly.js-dist-min/plotly.min.js');
}

let bundleText: string | null = null;
function plotlyBundle(): string {
  // The bundle has no "</script"; escaping keeps it safe inside an inline <script> anyway.
  bundleText ??= readFileSync(plotlyBundlePath(), 'utf8').replace(/<\/script/gi, '<\\/script');
  return bundleText;
}

export function plotlyVersion(): string {
  const pkg = JSON.parse(readFileSync(require.resolve('plotly.js-dist-min/package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

/**
 * HTML that defines window.Plotly unless the page has it. An AMD `define` (Jupyter Notebook
 * ships require.js) is hidden while the bundle runs so it always sets the global.
 */
export function plotlyLoaderHtml(): string {
  return [
    `<div class="rsn-plotly-loader" style="display:none">plotly.js ${plotlyVersion()}</div>`,
    '<script type="text/javascript">',
    '(function () {',
    '  if (window.Plotly) return;',
    '  var amdDefine = window.define; window.define = undefined;',
    '  try {',
    plotlyBundle(),
    '  } finally { window.define = amdDefine; }',
    '}).call(window);',
    '</script>',
  ].join('\n');
}

/** The first cell's output: plotly.js for every figure of the notebook. */
export function plotlyLoader(): void {
  display({ 'text/html': plotlyLoaderHtml(), 'text/plain': `(plotly.js ${plotlyVersion()} loaded for this notebook's figures)` });
}

let figureCounter = 0;

/** Figure numbering restarts with each notebook. */
export function resetFigures(): void {
  figureCounter = 0;
}

function figureHeight(spec: PlotlySpec, opts: FigureOptions): number {
  const h = spec.layout?.['height'];
  return opts.height ?? (typeof h === 'number' ? h : 450);
}

function drawScript(divId: string, spec: PlotlySpec, fallback: string): string {
  const config = { responsive: true, displaylogo: false, ...(spec.config ?? {}) };
  return [
    '<script type="text/javascript">',
    '(function () {',
    `  var spec = ${scriptJson({ data: spec.data, layout: spec.layout ?? {}, config })};`,
    '  var t0 = Date.now();',
    '  function draw() {',
    `    var el = document.getElementById(${JSON.stringify(divId)});`,
    '    if (el && window.Plotly) {',
    '      var hint = el.querySelector(".rsn-figure-hint"); if (hint) el.removeChild(hint);',
    '      window.Plotly.newPlot(el, spec.data, spec.layout, spec.config); return;',
    '    }',
    '    if (Date.now() - t0 < 15000) { setTimeout(draw, 100); return; }',
    `    if (el) el.innerHTML = ${JSON.stringify(fallback)};`,
    '  }',
    '  draw();',
    '})();',
    '</script>',
  ].join('\n');
}

export function standaloneFigureHtml(spec: PlotlySpec, title: string, plotlyScript: string): string {
  const id = 'rsn-figure';
  return [
    '<!DOCTYPE html>',
    '<html><head><meta charset="utf-8">',
    `<title>${escapeHtml(title)}</title>`,
    plotlyScript,
    '</head><body style="margin:0">',
    `<div id="${id}" style="width:100vw;height:100vh"></div>`,
    drawScript(id, { ...spec, layout: { ...(spec.layout ?? {}), height: undefined } }, 'plotly.js did not load'),
    '</body></html>',
    '',
  ].join('\n');
}

function titleOf(spec: PlotlySpec, fallback: string): string {
  const t = spec.layout?.['title'];
  if (typeof t === 'string') return t;
  if (t && typeof t === 'object' && typeof (t as { text?: unknown }).text === 'string') return (t as { text: string }).text;
  return fallback;
}

/** Show an interactive figure and save it under results/<model>/figures/. */
export function showFigure(spec: PlotlySpec, opts: FigureOptions = {}): void {
  saveFigure(spec, opts, true);
}

/** Save a figure under results/<model>/figures/ (and show it when `show`); returns the files. */
export function saveFigure(spec: PlotlySpec, opts: FigureOptions = {}, show = false): FigureResult {
  const n = ++figureCounter;
  const name = opts.saveAs ?? `${notebookName()}-fig${n}`;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new Error(`figure name ${JSON.stringify(name)}: use letters, digits, ".", "_" and "-"`);
  const dir = notebookOutputDir('figures');
  const title = titleOf(spec, name);
  let plotlyScript: string;
  if (opts.inlinePlotly) {
    plotlyScript = `<script type="text/javascript">\n${plotlyBundle()}\n</script>`;
  } else {
    const shared = join(dir, 'plotly.min.js');
    const src = plotlyBundlePath();
    if (!existsSync(shared) || statSync(shared).size !== statSync(src).size) copyFileSync(src, shared);
    plotlyScript = '<script type="text/javascript" src="plotly.min.js"></script>';
  }
  const html = join(dir, `${name}.html`);
  const json = join(dir, `${name}.json`);
  writeFileAtomic(html, standaloneFigureHtml(spec, title, plotlyScript));
  writeFileAtomic(json, JSON.stringify({ notebook: notebookName(), name, ...spec }, null, 1));
  const divId = `rsn-fig-${process.pid}-${Date.now().toString(36)}-${n}`;
  const fallback = `plotly.js is not loaded on this page: run the notebook's first cell (it loads plotly.js), or open ${escapeHtml(html)}`;
  if (show) display({
    // The hint shows where scripts do not run (an untrusted notebook); the script removes it.
    'text/html': `<div id="${divId}" class="rsn-figure" style="width:100%;height:${figureHeight(spec, opts)}px"><div class="rsn-figure-hint" style="color:#888;font-size:0.85em;padding:8px">Figure “${escapeHtml(title)}” — if it does not appear, trust the notebook (File ▸ Trust Notebook) or re-run it; standalone copy: ${escapeHtml(html)}</div></div>\n${drawScript(divId, spec, fallback)}`,
    'text/plain': `[figure "${title}": ${spec.data.length} trace(s); saved ${html}]`,
  });
  return { html, json };
}
