/**
 * Rich output for notebook cells. Under the tslab kernel a cell's output is a Jupyter
 * `display_data` message with several representations (text/html for Notebook and JupyterLab,
 * text/plain for consoles and diffs); anywhere else (a plain Node script, a test) the text form
 * is printed. Nothing here needs a browser: figures are plotly.js specs drawn by the page.
 */
import { createRequire } from 'node:module';

/** A Jupyter MIME bundle: `text/plain` is always present so every front end has something. */
export type MimeBundle = { 'text/plain': string } & Record<string, string>;

/** What the tslab kernel keeps on globalThis while it runs a cell (tslab ≥ 1.0: executor.js). */
interface TslabGlobal {
  require: (id: string) => unknown;
}

type WriteDisplayData = (msg: { data: Record<string, string>; metadata: Record<string, unknown>; transient: Record<string, unknown> }, update: boolean) => void;

interface TslabDisplay {
  html(s: string): void;
  text(s: string): void;
}

function tslabGlobal(): TslabGlobal | null {
  const g = (globalThis as { __tslab__?: TslabGlobal }).__tslab__;
  return g && typeof g.require === 'function' ? g : null;
}

/** True inside a tslab kernel (Jupyter), false in plain Node. */
export function inNotebook(): boolean {
  return tslabGlobal() !== null;
}

/**
 * The kernel's own display writer. tslab's public `display` API sends one MIME type per
 * message; a figure or table wants html + plain text together, so this finds the writer of the
 * tslab instance that runs the kernel (its jupyter.js module, already loaded) in require's cache.
 */
function kernelWriter(): WriteDisplayData | null {
  const cache = createRequire(import.meta.url).cache;
  for (const [file, mod] of Object.entries(cache)) {
    if (!/[\\/]tslab[\\/]dist[\\/]jupyter\.js$/.test(file)) continue;
    const w = (mod?.exports as { lastWriteDisplayData?: WriteDisplayData | null } | undefined)?.lastWriteDisplayData;
    if (typeof w === 'function') return w;
  }
  return null;
}

let displayCounter = 0;

/** Show a MIME bundle in the notebook, or print its text form outside one. */
export function display(bundle: MimeBundle): void {
  const g = tslabGlobal();
  if (!g) {
    console.log(bundle['text/plain']);
    return;
  }
  const write = kernelWriter();
  if (write) {
    write({ data: { ...bundle }, metadata: {}, transient: { display_id: `rsn-${process.pid}-${++displayCounter}` } }, false);
    return;
  }
  // Fallback: tslab's public API, one representation only.
  const d = (g.require('tslab') as { display: TslabDisplay }).display;
  if (bundle['text/html'] !== undefined) d.html(bundle['text/html']);
  else d.text(bundle['text/plain']);
}

export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** JSON that can sit inside an inline <script> (no "</script>", no HTML comment openers). */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}
