/**
 * The reproduction report: results/<model>/REPORT.md and REPORT.html, collected from one run
 * folder (results/<model>/runs/<id>/, one per setting: lib/notebook/run.ts) — every notebook's verdicts (verdicts/<notebook>.json, schema rsn-verdicts/1),
 * its figures (figures/<name>.html, grouped by the `notebook` field of figures/<name>.json) and
 * its executed copy (notebooks/<notebook>.ipynb). Nothing in the report is typed in: a notebook
 * that did not run or failed is listed as such.
 *
 *   npm run report [-- --model DIR] [--run ID|latest] [--out DIR]
 *
 * scripts/reproduce.ts calls writeReport after running the notebooks; this command rebuilds the
 * report from any earlier run without running anything.
 */
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseScriptCommandLine } from '../lib/cli-args.ts';
import { writeFileAtomic } from '../lib/data/io.ts';
import { escapeHtml } from '../lib/notebook/display.ts';
import type { NotebookRun } from '../lib/notebook/jupyter.ts';
import { DEFAULT_MODEL_DIR, modelTag, projectRoot, resultsDir } from '../lib/notebook/paths.ts';
import { listRuns } from '../lib/notebook/run.ts';
import { costByNotebook, readCostLedger, type NotebookCost } from '../lib/notebook/cost-ledger.ts';
import { formatFlops } from '../lib/method/cost.ts';
import { VERDICT_COLORS, type VerdictFile, type VerdictRecord, type VerdictStatus } from '../lib/notebook/verdict.ts';

export const STATUSES: readonly VerdictStatus[] = ['reproduced', 'differs', 'not applicable'];

export interface ReportFigure {
  name: string;
  title: string;
  /** Relative to the results directory. */
  html: string;
}

export interface ReportNotebook {
  name: string;
  title: string;
  /** ok / failed (this run), earlier (results of an earlier run, not re-run now), missing (no results). */
  state: 'ok' | 'failed' | 'earlier' | 'missing';
  seconds?: number;
  failure?: string;
  executed?: string;
  verdicts: VerdictRecord[];
  params: Record<string, unknown>;
  /** Values used where they differ from the parameters (k after capping, …). */
  effective: Record<string, { value: unknown; how: string }>;
  updated?: string;
  figures: ReportFigure[];
}

export interface Report {
  model: string;
  /** The run folder the results come from. */
  dir: string;
  /** Where REPORT.md / REPORT.html are written; every link is relative to it. */
  out: string;
  /** The run folder's setting (its setting.json), when it has one. */
  run: { id: string; setting: Record<string, unknown>; k?: { value: number; how: string; pool: number } } | null;
  generated: string;
  notebooks: ReportNotebook[];
  totalSeconds?: number;
  overrides: string[];
  modelInfo: string;
  /** What each notebook's stages cost (the run folder's cost.json), with the time of those computed. */
  cost: NotebookCost[];
}

export interface ReportOptions {
  /** The run folder: results/<model>/runs/<id>/ (figures, tables, verdicts, notebooks, setting.json). */
  dir: string;
  /** Where the report files go (default: `dir`); results/<model>/ for the canonical report. */
  outDir?: string;
  /** The notebook files of the project, in order (default: notebooks/*.ipynb). */
  notebooks?: string[];
  /** This run's results, when the report follows a run. */
  runs?: NotebookRun[];
  /** The model directory (for the header). */
  model?: string;
  totalSeconds?: number;
  /** RSN_* overrides of this run, as NAME=VALUE. */
  overrides?: string[];
  /**
   * false for a run that failed or ran only some notebooks: its report is written as
   * REPORT-incomplete.md/.html, and the last complete REPORT.md/.html stays as it was.
   */
  complete?: boolean;
}

function readJson<T>(file: string): T | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch {
    return null;
  }
}

/** The notebook's title: the first markdown heading, without the leading '#'. */
function notebookTitle(file: string, fallback: string): string {
  const nb = readJson<{ cells: { cell_type: string; source: string | string[] }[] }>(file);
  const md = nb?.cells.find((c) => c.cell_type === 'markdown');
  const text = md ? (Array.isArray(md.source) ? md.source.join('') : md.source) : '';
  const h = text.split('\n').find((l) => l.startsWith('#'));
  return h ? h.replace(/^#+\s*/, '').trim() : fallback;
}

function describeModel(model: string | undefined): string {
  if (!model) return '';
  const dir = resolve(projectRoot, model);
  const cfgFile = existsSync(join(dir, 'config.json')) ? join(dir, 'config.json') : null;
  const conv = existsSync(join(dir, 'model.json')) ? readJson<{ config?: Record<string, number> }>(join(dir, 'model.json'))?.config : null;
  const c = (cfgFile ? readJson<Record<string, number>>(cfgFile) : null) ?? conv ?? null;
  if (!c) return `\`${model}\``;
  const L = c['num_hidden_layers'] ?? c['numLayers'];
  const H = c['hidden_size'] ?? c['hiddenSize'];
  const F = c['intermediate_size'] ?? c['intermediateSize'];
  const ffn = L && H && F ? L * (2 * F + H) : null;
  return `\`${model}\` (${L} layers, hidden ${H}, FFN ${F}${ffn ? `; ${ffn.toLocaleString('en-US')} FFN neurons` : ''})`;
}

export function collectReport(opts: ReportOptions): Report {
  const dir = resolve(opts.dir);
  const out = resolve(opts.outDir ?? dir);
  const files = opts.notebooks ?? readdirSync(join(projectRoot, 'notebooks')).filter((f) => f.endsWith('.ipynb')).sort().map((f) => join(projectRoot, 'notebooks', f));
  const figDir = join(dir, 'figures');
  const figures = new Map<string, ReportFigure[]>();
  if (existsSync(figDir)) {
    for (const f of readdirSync(figDir).filter((x) => x.endsWith('.json')).sort()) {
      const spec = readJson<{ notebook?: string; name?: string; layout?: { title?: string | { text?: string } } }>(join(figDir, f));
      const html = join(figDir, f.replace(/\.json$/, '.html'));
      if (!spec?.notebook || !existsSync(html)) continue;
      const t = spec.layout?.title;
      const title = typeof t === 'string' ? t : t?.text ?? basename(html, '.html');
      const list = figures.get(spec.notebook) ?? [];
      list.push({ name: basename(html, '.html'), title, html: relative(out, html) });
      figures.set(spec.notebook, list);
    }
  }
  const runs = new Map((opts.runs ?? []).map((r) => [r.name, r]));
  const notebooks: ReportNotebook[] = files.map((file) => {
    const name = basename(file, '.ipynb');
    const v = readJson<VerdictFile>(join(dir, 'verdicts', `${name}.json`));
    const run = runs.get(name);
    const executed = join(dir, 'notebooks', `${name}.ipynb`);
    let state: ReportNotebook['state'];
    if (run) state = run.ok ? 'ok' : 'failed';
    else state = v ? 'earlier' : 'missing';
    const failure = run && !run.ok ? `${run.cell === undefined ? 'before any cell' : `cell ${run.cell}${run.source ? ` (\`${run.source.slice(0, 60)}\`)` : ''}`}: ${(run.error ?? '').split('\n').find((l) => l.trim()) ?? 'error'}` : undefined;
    return {
      name,
      title: notebookTitle(file, name),
      state,
      seconds: run?.seconds,
      failure,
      executed: existsSync(executed) ? relative(out, executed) : undefined,
      // A failed run's verdicts were cleared when it started; whatever it recorded before failing is shown.
      verdicts: v?.verdicts ?? [],
      params: v?.params ?? {},
      effective: v?.effective ?? {},
      updated: v?.updated,
      figures: figures.get(name) ?? [],
    };
  });
  // The model directory: as given, else as recorded in any verdict file.
  const model = opts.model ?? files.map((f) => readJson<VerdictFile>(join(dir, 'verdicts', `${basename(f, '.ipynb')}.json`))?.model).find(Boolean);
  const setting = readJson<{ id: string; setting: Record<string, unknown>; k?: { value: number; how: string; pool: number } }>(join(dir, 'setting.json'));
  return { model: model ?? basename(dir), dir, out, run: setting ? { id: setting.id, setting: setting.setting, k: setting.k } : null, generated: new Date().toISOString(), notebooks, totalSeconds: opts.totalSeconds, overrides: opts.overrides ?? [], modelInfo: describeModel(model), cost: costByNotebook(readCostLedger(dir)) };
}

/** The cost table's header and rows (prompt runs, token forwards, FLOPs and their share, measured time). */
function costTable(r: Report): string[][] {
  const total = r.cost.reduce((a, c) => a + c.flops, 0);
  const rows = r.cost.map((c) => [c.notebook, String(c.stages), c.promptRuns.toLocaleString('en-US'), c.tokenForwards.toLocaleString('en-US'), formatFlops(c.flops), total > 0 ? `${((100 * c.flops) / total).toFixed(1)} %` : '–', c.seconds > 0 ? minutes(c.seconds) : '(cached)']);
  return [['notebook', 'stages', 'prompt runs', 'token forwards', 'FLOPs', 'share', 'computed in'], ...rows];
}

const COST_NOTE = 'Counted per stage (filter, ranking, each set of jobs) when the notebook ran or read it from the cache; a stage used by several notebooks counts for the first. FLOPs: 2 per weight per forwarded token plus attention (lib/method/cost.ts).';

const show = (v: unknown): string => {
  if (v === null || v === undefined) return '–';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4)));
  return String(v);
};
const mdCell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const minutes = (s: number) => (s >= 60 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(0)} s`);

function counts(vs: readonly VerdictRecord[]): Record<VerdictStatus, number> {
  const c = { reproduced: 0, differs: 0, 'not applicable': 0 } as Record<VerdictStatus, number>;
  for (const v of vs) c[v.status]++;
  return c;
}

const STATE_TEXT: Record<ReportNotebook['state'], string> = { ok: 'ran', failed: 'FAILED', earlier: 'earlier run', missing: 'not run' };

function reportTitle(r: Report): string {
  return r.model ? modelTag(r.model) : basename(r.out);
}

/** The run's setting in one line: k as used, then every other parameter. */
function settingText(r: Report): string {
  if (!r.run) return '';
  const k = r.run.k ? `k = ${r.run.k.value} (${r.run.k.how}; ${((100 * r.run.k.value) / r.run.k.pool).toFixed(2)} % of ${r.run.k.pool} FFN neurons)` : `k = ${show(r.run.setting['k'])}`;
  const rest = Object.entries(r.run.setting)
    .filter(([name]) => name !== 'k')
    .map(([name, v]) => `${name} = ${Array.isArray(v) ? (v.length ? v.join(',') : '(all)') : JSON.stringify(v)}`);
  return [k, ...rest].join(' · ');
}

export function reportMarkdown(r: Report): string {
  const all = r.notebooks.flatMap((n) => n.verdicts);
  const c = counts(all);
  const failed = r.notebooks.filter((n) => n.state === 'failed');
  const L: string[] = [];
  L.push(`# Reproduction report: ${reportTitle(r)}`, '');
  L.push(`Liu et al. (2025), *On Relation-Specific Neurons in Large Language Models*, rebuilt notebook by notebook. Every value below was computed by a notebook and recorded with its verdict; nothing is typed in.`, '');
  if (r.modelInfo) L.push(`- Model: ${r.modelInfo}`);
  if (r.run) L.push(`- Run: \`${r.run.id}\` (${relative(r.out, r.dir) || '.'}): ${mdCell(settingText(r))}`);
  L.push(`- Generated: ${r.generated}${r.totalSeconds !== undefined ? ` · run time ${minutes(r.totalSeconds)}` : ''}`);
  if (r.overrides.length) L.push(`- Parameter overrides: ${r.overrides.map((o) => `\`${o}\``).join(' ')}`);
  L.push(`- Verdicts: **${all.length}** — ${c.reproduced} reproduced, ${c.differs} differ, ${c['not applicable']} not applicable`);
  L.push(`- Notebooks: ${r.notebooks.filter((n) => n.state === 'ok').length} ran now${failed.length ? `, **${failed.length} failed** (${failed.map((n) => n.name).join(', ')})` : ''}${r.notebooks.some((n) => n.state === 'earlier') ? `, ${r.notebooks.filter((n) => n.state === 'earlier').length} from an earlier run` : ''}${r.notebooks.some((n) => n.state === 'missing') ? `, ${r.notebooks.filter((n) => n.state === 'missing').length} without results` : ''}`);
  L.push('', '| notebook | run | time | reproduced | differs | not applicable | figures |', '|---|---|---|---|---|---|---|');
  for (const n of r.notebooks) {
    const k = counts(n.verdicts);
    L.push(`| [${n.name}](#${n.name}) | ${STATE_TEXT[n.state]} | ${n.seconds !== undefined ? minutes(n.seconds) : '–'} | ${k.reproduced} | ${k.differs} | ${k['not applicable']} | ${n.figures.length} |`);
  }
  if (r.cost.length) {
    const [head, ...rows] = costTable(r);
    L.push('', '### What the run costs', '', COST_NOTE, '', `| ${head!.join(' | ')} |`, `|${head!.map(() => '---').join('|')}|`, ...rows.map((c) => `| ${c.join(' | ')} |`));
  }
  for (const n of r.notebooks) {
    L.push('', `<a id="${n.name}"></a>`, '', `## ${n.title}`, '');
    const links = [n.executed ? `executed notebook: [${n.executed}](${n.executed})` : null, n.updated ? `verdicts recorded ${n.updated}` : null].filter(Boolean);
    if (links.length) L.push(links.join(' · '), '');
    if (n.state === 'failed') L.push(`**FAILED** at ${n.failure}`, '');
    if (n.state === 'missing') L.push('No results: this notebook has not run for this model.', '');
    if (n.state === 'earlier') L.push('_Not re-run this time: the results below are from an earlier run._', '');
    const p = Object.entries(n.params).filter(([k]) => ['k', 'kMaxPercent', 'kPercent', 'relations', 'quick', 'randomSeeds', 'ks'].includes(k));
    const shown = (v: unknown) => (Array.isArray(v) ? (v.length ? v.join(',') : '(all)') : show(v as VerdictRecord['ours']));
    const used = (k: string, v: unknown) => {
      const e = n.effective[k];
      return e && shown(e.value) !== shown(v) ? `${k} = **${shown(e.value)}** (requested ${shown(v)}: ${e.how})` : `${k} = ${shown(v)}`;
    };
    if (p.length) L.push(`Parameters: ${p.map(([k, v]) => used(k, v)).join(' · ')}`, '');
    if (n.verdicts.length) {
      L.push('| claim | paper | ours | status | detail |', '|---|---|---|---|---|');
      for (const v of n.verdicts) L.push(`| ${mdCell(v.claim)} | ${mdCell(show(v.paper))} | ${mdCell(show(v.ours))} | **${v.status}** | ${mdCell(v.detail)} |`);
      L.push('');
    }
    if (n.figures.length) L.push(`Figures: ${n.figures.map((f) => `[${f.name}](${f.html})`).join(' · ')}`, '');
  }
  return L.join('\n');
}


export function reportHtml(r: Report): string {
  const all = r.notebooks.flatMap((n) => n.verdicts);
  const c = counts(all);
  const e = escapeHtml;
  const H: string[] = [];
  H.push('<!DOCTYPE html>', '<html><head><meta charset="utf-8">', `<title>Reproduction report: ${e(reportTitle(r))}</title>`);
  H.push('<style>body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}table{border-collapse:collapse;margin:0.5em 0;font-size:0.9em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f4f4f4}.st{font-weight:bold}iframe{width:100%;height:470px;border:1px solid #ddd;margin:4px 0}.fail{color:#b00;font-weight:bold}.note{color:#666}</style>');
  H.push('</head><body>');
  H.push(`<h1>Reproduction report: ${e(reportTitle(r))}</h1>`);
  H.push('<p>Liu et al. (2025), <i>On Relation-Specific Neurons in Large Language Models</i>, rebuilt notebook by notebook. Every value was computed by a notebook and recorded with its verdict.</p><ul>');
  if (r.modelInfo) H.push(`<li>Model: ${e(r.modelInfo.replace(/`/g, ''))}</li>`);
  if (r.run) H.push(`<li>Run: <code>${e(r.run.id)}</code> (${e(relative(r.out, r.dir) || '.')}): ${e(settingText(r))}</li>`);
  H.push(`<li>Generated: ${e(r.generated)}${r.totalSeconds !== undefined ? ` · run time ${minutes(r.totalSeconds)}` : ''}</li>`);
  if (r.overrides.length) H.push(`<li>Parameter overrides: <code>${e(r.overrides.join(' '))}</code></li>`);
  H.push(`<li>Verdicts: <b>${all.length}</b> — <span style="color:${VERDICT_COLORS.reproduced}">${c.reproduced} reproduced</span>, <span style="color:${VERDICT_COLORS.differs}">${c.differs} differ</span>, <span style="color:${VERDICT_COLORS['not applicable']}">${c['not applicable']} not applicable</span></li></ul>`);
  H.push('<table><tr><th>notebook</th><th>run</th><th>time</th><th>reproduced</th><th>differs</th><th>not applicable</th><th>figures</th></tr>');
  for (const n of r.notebooks) {
    const k = counts(n.verdicts);
    H.push(`<tr><td><a href="#${e(n.name)}">${e(n.name)}</a></td><td${n.state === 'failed' ? ' class="fail"' : ''}>${STATE_TEXT[n.state]}</td><td>${n.seconds !== undefined ? minutes(n.seconds) : '–'}</td><td>${k.reproduced}</td><td>${k.differs}</td><td>${k['not applicable']}</td><td>${n.figures.length}</td></tr>`);
  }
  H.push('</table>');
  if (r.cost.length) {
    const [head, ...rows] = costTable(r);
    H.push(`<h3>What the run costs</h3><p class="note">${e(COST_NOTE)}</p><table><tr>${head!.map((h) => `<th>${e(h)}</th>`).join('')}</tr>`);
    for (const c of rows) H.push(`<tr>${c.map((x) => `<td>${e(x)}</td>`).join('')}</tr>`);
    H.push('</table>');
  }
  for (const n of r.notebooks) {
    H.push(`<h2 id="${e(n.name)}">${e(n.title)}</h2>`);
    if (n.executed) H.push(`<p class="note">executed notebook: <a href="${e(n.executed)}">${e(n.executed)}</a>${n.updated ? ` · verdicts recorded ${e(n.updated)}` : ''}</p>`);
    if (n.state === 'failed') H.push(`<p class="fail">FAILED at ${e(n.failure ?? '')}</p>`);
    if (n.state === 'missing') H.push('<p class="note">No results: this notebook has not run for this model.</p>');
    if (n.state === 'earlier') H.push('<p class="note">Not re-run this time: the results below are from an earlier run.</p>');
    if (n.verdicts.length) {
      H.push('<table><tr><th>claim</th><th>paper</th><th>ours</th><th>status</th><th>detail</th></tr>');
      for (const v of n.verdicts) H.push(`<tr><td>${e(v.claim)}</td><td>${e(show(v.paper))}</td><td>${e(show(v.ours))}</td><td class="st" style="color:${VERDICT_COLORS[v.status]}">${e(v.status)}</td><td>${e(v.detail)}</td></tr>`);
      H.push('</table>');
    }
    for (const f of n.figures) H.push(`<p><a href="${e(f.html)}">${e(f.title)}</a></p><iframe loading="lazy" src="${e(f.html)}" title="${e(f.title)}"></iframe>`);
  }
  H.push('</body></html>', '');
  return H.join('\n');
}

/** Write REPORT.md and REPORT.html into the results directory; returns their paths. */
export function writeReport(opts: ReportOptions): { md: string; html: string; report: Report } {
  const report = collectReport(opts);
  const complete = opts.complete ?? true;
  const name = complete ? 'REPORT' : 'REPORT-incomplete';
  const md = join(report.out, `${name}.md`);
  const html = join(report.out, `${name}.html`);
  writeFileAtomic(md, reportMarkdown(report) + '\n');
  writeFileAtomic(html, reportHtml(report));
  // A complete report supersedes an incomplete one.
  if (complete) for (const f of ['REPORT-incomplete.md', 'REPORT-incomplete.html']) rmSync(join(report.out, f), { force: true });
  return { md, html, report };
}

/** Figures a notebook wrote in an earlier run (by the `notebook` field of their JSON spec). */
export function figuresOf(dir: string, notebook: string): string[] {
  const figDir = join(dir, 'figures');
  if (!existsSync(figDir)) return [];
  return readdirSync(figDir)
    .filter((f) => f.endsWith('.json') && statSync(join(figDir, f)).isFile())
    .filter((f) => readJson<{ notebook?: string }>(join(figDir, f))?.notebook === notebook)
    .flatMap((f) => [join(figDir, f), join(figDir, f.replace(/\.json$/, '.html'))]);
}

const REPORT_USAGE = 'usage: npm run report [-- --model DIR] [--run ID|latest] [--out DIR]   (default: the organism, its latest run, results/<model>/)';

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = parseScriptCommandLine(process.argv.slice(2), { model: { type: 'string' }, run: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, false, REPORT_USAGE);
  if (args.values.help) {
    console.log(REPORT_USAGE);
    process.exit(0);
  }
  const model = args.values.model ?? DEFAULT_MODEL_DIR;
  const runs = listRuns(model);
  const wanted = args.values.run ?? 'latest';
  const run = wanted === 'latest' ? runs[0] : runs.find((r) => r.id === wanted);
  if (!run) {
    console.error(
      runs.length
        ? `no run "${wanted}" for ${model}; its runs (newest first): ${runs.map((r) => `${r.id} (${r.updated.toISOString().slice(0, 16)}, k = ${String(r.setting['k'])})`).join(', ')}`
        : `no runs for ${model} in ${join(resultsDir(model), 'runs')}: run the notebooks first (npm run reproduce)`,
    );
    process.exit(1);
  }
  const { md, html } = writeReport({ dir: run.dir, outDir: args.values.out ? resolve(args.values.out) : resultsDir(model), model });
  console.log(`report of run ${run.id}: ${md}\n        ${html}`);
}
