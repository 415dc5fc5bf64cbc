/**
 * Tables in notebook output: an HTML table for Jupyter, aligned plain text elsewhere (and as
 * the text/plain part of the notebook output), optionally saved as CSV under
 * results/<model>/tables/. Accepts plain row objects, or anything shaped like a danfojs
 * DataFrame (`columns` + `values`), so danfojs frames display the same way.
 */
import { join } from 'node:path';
import { writeFileAtomic } from '../data/io.ts';
import { display, escapeHtml } from './display.ts';
import { notebookOutputDir } from './state.ts';

export type Cell = string | number | boolean | null | undefined;
export type Row = Record<string, Cell>;

/** The part of a danfojs DataFrame that a table needs. */
export interface FrameLike {
  columns: string[];
  values: unknown[][] | unknown[];
}

export interface TableOptions {
  /** Column order and subset (default: every key, in order of first appearance). */
  columns?: string[];
  caption?: string;
  /** Significant digits for non-integer numbers (default 4). */
  digits?: number;
  /** Per-column formatters. */
  format?: Record<string, (v: Cell) => string>;
  /** Also write results/<model>/tables/<saveAs>.csv. */
  saveAs?: string;
  /** Rows shown (default 200); the CSV always has all. */
  maxRows?: number;
}

function isFrame(x: unknown): x is FrameLike {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && Array.isArray((x as FrameLike).columns) && Array.isArray((x as FrameLike).values);
}

/** danfojs DataFrame (or rows) → rows. */
export function toRows(data: readonly Row[] | FrameLike): Row[] {
  if (!isFrame(data)) return [...data];
  const { columns, values } = data;
  return values.map((v) => {
    const row: Row = {};
    const cells = Array.isArray(v) ? v : [v];
    columns.forEach((c, i) => {
      const x = cells[i];
      row[c] = x === null || x === undefined || typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean' ? x : String(x);
    });
    return row;
  });
}

export function formatCell(v: Cell, digits = 4): string {
  if (v === null || v === undefined) return '–';
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return '–';
    if (!Number.isFinite(v)) return v > 0 ? '∞' : '−∞';
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(digits - 1);
    return String(Number(v.toPrecision(digits)));
  }
  return String(v);
}

function columnsOf(rows: readonly Row[], opts: TableOptions): string[] {
  if (opts.columns) return opts.columns;
  const seen = new Set<string>();
  for (const r of rows) for (const k of Object.keys(r)) seen.add(k);
  return [...seen];
}

function csvCell(v: Cell): string {
  if (v === null || v === undefined || (typeof v === 'number' && Number.isNaN(v))) return '';
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function tableToCsv(rows: readonly Row[], columns: readonly string[]): string {
  return [columns.map((c) => csvCell(c)).join(','), ...rows.map((r) => columns.map((c) => csvCell(r[c])).join(','))].join('\n') + '\n';
}

/** Aligned plain text (numbers right-aligned). */
export function tableToText(rows: readonly Row[], opts: TableOptions = {}): string {
  const cols = columnsOf(rows, opts);
  const fmt = (c: string, v: Cell) => (opts.format?.[c] ? opts.format[c]!(v) : formatCell(v, opts.digits));
  const cells = rows.map((r) => cols.map((c) => fmt(c, r[c])));
  const numeric = cols.map((c) => rows.length > 0 && rows.every((r) => r[c] === null || r[c] === undefined || typeof r[c] === 'number'));
  const width = cols.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
  const line = (vals: string[]) => vals.map((v, i) => (numeric[i] ? v.padStart(width[i]!) : v.padEnd(width[i]!))).join('  ').trimEnd();
  const out = [line(cols), width.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)];
  if (opts.caption) out.unshift(opts.caption);
  return out.join('\n');
}

export function tableToHtml(rows: readonly Row[], opts: TableOptions = {}): string {
  const cols = columnsOf(rows, opts);
  const fmt = (c: string, v: Cell) => (opts.format?.[c] ? opts.format[c]!(v) : formatCell(v, opts.digits));
  const numeric = cols.map((c) => rows.length > 0 && rows.every((r) => r[c] === null || r[c] === undefined || typeof r[c] === 'number'));
  const th = 'style="padding:2px 8px;border-bottom:1px solid #999;text-align:left"';
  const td = (i: number) => `style="padding:2px 8px;text-align:${numeric[i] ? 'right' : 'left'};font-variant-numeric:tabular-nums"`;
  const head = `<tr>${cols.map((c) => `<th ${th}>${escapeHtml(c)}</th>`).join('')}</tr>`;
  const body = rows.map((r) => `<tr>${cols.map((c, i) => `<td ${td(i)}>${escapeHtml(fmt(c, r[c]))}</td>`).join('')}</tr>`).join('\n');
  const caption = opts.caption ? `<caption style="caption-side:top;text-align:left;font-weight:bold;padding:2px 0">${escapeHtml(opts.caption)}</caption>` : '';
  return `<table class="rsn-table" style="border-collapse:collapse;font-size:0.9em">${caption}<thead>${head}</thead><tbody>\n${body}\n</tbody></table>`;
}

/** Show rows (or a danfojs DataFrame) as a table (returns nothing, so the cell shows no echo). */
export function showTable(data: readonly Row[] | FrameLike, opts: TableOptions = {}): void {
  const rows = toRows(data);
  const max = opts.maxRows ?? 200;
  const shown = rows.length > max ? rows.slice(0, max) : rows;
  const more = rows.length > max ? `\n… ${rows.length - max} more rows` : '';
  let saved = '';
  if (opts.saveAs) {
    const file = join(notebookOutputDir('tables'), `${opts.saveAs}.csv`);
    writeFileAtomic(file, tableToCsv(rows, columnsOf(rows, opts)));
    saved = file;
  }
  const note = (saved ? `saved: ${saved}` : '') + more;
  display({
    'text/html': tableToHtml(shown, opts) + (note ? `<div style="font-size:0.8em;color:#666">${escapeHtml(note)}</div>` : ''),
    'text/plain': tableToText(shown, opts) + (note ? `\n${note}` : ''),
  });
}
