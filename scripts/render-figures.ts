/**
 * Render every saved figure in headless Chromium and check that it really drew: each
 * figures/<name>.html of a results directory is opened from a file:// URL, as a reader would
 * open it, and screenshotted to PNG. A figure fails on an uncaught error or console error in
 * the page, when plotly.js did not draw it (did not load, or newPlot threw), when a trace's type
 * is not in the bundle (plotly.js silently draws such a trace as a scatter), or when nothing was
 * drawn at all (no trace on the plot).
 *
 *   npx tsx scripts/render-figures.ts DIR [--out PNGDIR]
 *
 * DIR is results/<model> (its figures/ folder is used) or a figures folder itself; PNGs go to
 * PNGDIR (default DIR/figures-png). Chromium is found or installed by lib/notebook/chromium.ts.
 * Exit status 1 lists every figure that failed.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseScriptCommandLine } from '../lib/cli-args.ts';
import { writeFileAtomic } from '../lib/data/io.ts';
import { ChromiumBrowser, ensureChromium, type ChromiumPage, type Viewport } from '../lib/notebook/chromium.ts';

export interface FigureRender {
  name: string;
  html: string;
  /** The screenshot, when one was taken. */
  png?: string;
  ok: boolean;
  /** Why the figure failed (empty when ok). */
  problems: string[];
  /** Traces plotly.js drew. */
  tracesDrawn: number;
  /** Traces of the spec that plotly.js hid for lack of valid data (not a failure: an empty series can be legitimate). */
  hiddenTraces: number;
}

/** What a figure looks like from inside the page once its script has finished. */
interface PageOutcome {
  state: string | null;
  message: string;
  specTypes: (string | null)[];
  fullTypes: string[];
  hidden: number;
  drawn: number;
}

/** The page waits for the draw script's verdict (data-rsn-figure), at most `ms`, then reports. */
const outcomeScript = (ms: number) => `new Promise(function (resolve) {
  var t0 = Date.now();
  (function poll() {
    var el = document.querySelector('.rsn-figure') || document.getElementById('rsn-figure');
    var state = el && el.getAttribute('data-rsn-figure');
    // A file written before the draw script marked its outcome (no rsn-figure class): plotly's own state tells.
    if (!state && el && !el.classList.contains('rsn-figure') && el._fullLayout && el.querySelector('.main-svg')) state = 'drawn';
    if (!state && Date.now() - t0 < ${ms}) { setTimeout(poll, 50); return; }
    var full = (el && el._fullData) || [];
    var given = (el && el.data) || [];
    requestAnimationFrame(function () { requestAnimationFrame(function () {
      resolve({
        state: state,
        message: el ? (el.textContent || '').slice(0, 300) : 'no figure element (.rsn-figure) on the page',
        specTypes: given.map(function (t) { return t && typeof t.type === 'string' ? t.type : null; }),
        fullTypes: full.map(function (t) { return t.type; }),
        hidden: full.filter(function (t, i) { return t.visible === false && !(given[i] && given[i].visible === false); }).length,
        drawn: el ? el.querySelectorAll('.main-svg g.trace, .main-svg g.hm, .main-svg g.contour').length : 0
      });
    }); });
  })();
})`;

/** Page size for a figure: its layout's width/height when it fixes them, else a wide default. */
function viewportFor(jsonFile: string): Viewport {
  const vp = { width: 1100, height: 600 };
  if (!existsSync(jsonFile)) return vp;
  const layout = (JSON.parse(readFileSync(jsonFile, 'utf8')) as { layout?: { width?: unknown; height?: unknown } }).layout ?? {};
  if (typeof layout.width === 'number' && layout.width > 0) vp.width = Math.ceil(layout.width);
  if (typeof layout.height === 'number' && layout.height > 0) vp.height = Math.ceil(layout.height);
  return vp;
}

/** Render one standalone figure file into `png` and judge it. */
export async function renderFigure(browser: ChromiumBrowser, html: string, png: string | null): Promise<FigureRender> {
  const name = basename(html, '.html');
  const problems: string[] = [];
  const page: ChromiumPage = await browser.newPage(viewportFor(html.replace(/\.html$/, '.json')));
  let out: PageOutcome | null = null;
  let shot: string | undefined;
  try {
    await page.goto(pathToFileURL(html).href);
    // The draw script gives up on plotly.js after 15 s; wait a little longer than that.
    out = await page.evaluate<PageOutcome>(outcomeScript(20_000));
    if (png) {
      writeFileAtomic(png, await page.screenshot());
      shot = png;
    }
  } catch (e) {
    problems.push((e as Error).message);
  } finally {
    await page.close();
  }
  if (out) {
    if (out.state === null) problems.push('the figure script never finished (no data-rsn-figure mark after 20 s)');
    else if (out.state !== 'drawn') problems.push(`plotly.js did not draw it (${out.state}): ${out.message.trim()}`);
    out.specTypes.forEach((t, i) => {
      if (t !== null && out!.fullTypes[i] !== undefined && out!.fullTypes[i] !== t) problems.push(`trace ${i}: type "${t}" is not in this plotly.js bundle (drawn as "${out!.fullTypes[i]}")`);
    });
    if (out.state === 'drawn' && out.drawn === 0) problems.push(`empty plot: no trace drawn (${out.specTypes.length} trace(s) in the spec${out.hidden ? `, ${out.hidden} hidden by plotly.js for invalid or empty data` : ''})`);
  }
  problems.push(...page.errors);
  return { name, html, png: shot, ok: problems.length === 0, problems, tracesDrawn: out?.drawn ?? 0, hiddenTraces: out?.hidden ?? 0 };
}

/** The figures folder of DIR: DIR/figures when it exists, else DIR itself. */
export function figuresFolder(dir: string): string {
  const sub = join(dir, 'figures');
  return existsSync(sub) && statSync(sub).isDirectory() ? sub : dir;
}

export interface RenderOptions {
  /** Where the PNGs go (default <DIR>/figures-png); null = no screenshots. */
  outDir?: string | null;
  /** The Chromium executable (default: ensureChromium()). */
  executable?: string;
  log?: (line: string) => void;
}

/** Render every figures/*.html under `dir`; one browser, one fresh tab per figure. */
export async function renderFigures(dir: string, opts: RenderOptions = {}): Promise<FigureRender[]> {
  const folder = figuresFolder(resolve(dir));
  if (!existsSync(folder)) throw new Error(`${folder} does not exist: no figures to render`);
  const files = readdirSync(folder).filter((f) => f.endsWith('.html')).sort();
  if (!files.length) throw new Error(`${folder} holds no figure (.html) files`);
  const outDir = opts.outDir === undefined ? join(resolve(dir), 'figures-png') : opts.outDir;
  const log = opts.log ?? (() => {});
  const browser = await ChromiumBrowser.launch(opts.executable ?? ensureChromium({ log }));
  const results: FigureRender[] = [];
  try {
    for (const f of files) {
      const r = await renderFigure(browser, join(folder, f), outDir ? join(outDir, f.replace(/\.html$/, '.png')) : null);
      log(`${r.ok ? 'ok    ' : 'FAILED'} ${r.name}${r.ok ? ` (${r.tracesDrawn} trace(s)${r.hiddenTraces ? `, ${r.hiddenTraces} hidden for empty or invalid data` : ''})` : `: ${r.problems.join('; ')}`}`);
      results.push(r);
    }
  } finally {
    await browser.close();
  }
  return results;
}

const USAGE = 'usage: npx tsx scripts/render-figures.ts DIR [--out PNGDIR]   (DIR: results/<model> or its figures/ folder)';

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values, positionals } = parseScriptCommandLine(process.argv.slice(2), { out: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, true, USAGE);
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  if (positionals.length !== 1) {
    console.error(`error: expected one results folder, found ${positionals.length} arguments\n${USAGE}`);
    process.exit(2);
  }
  try {
    const results = await renderFigures(positionals[0]!, { outDir: values.out ? resolve(values.out) : undefined, log: (l) => console.log(l) });
    const failed = results.filter((r) => !r.ok);
    const pngDir = results.find((r) => r.png)?.png;
    console.log(`${results.length - failed.length} of ${results.length} figures drew${pngDir ? `; PNGs in ${resolve(pngDir, '..')}` : ''}`);
    if (failed.length) {
      console.error(`${failed.length} figure(s) failed:\n${failed.map((r) => `  ${r.name}: ${r.problems.join('\n    ')}`).join('\n')}`);
      process.exit(1);
    }
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    process.exit(1);
  }
}
