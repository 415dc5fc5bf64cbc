/**
 * The closing cell of every notebook: the paper's number or claim, ours, and whether it is
 * reproduced — computed from the results, never typed in. Each verdict is shown in the notebook
 * and recorded in results/<model>/verdicts/<notebook>.json (schema rsn-verdicts/1), which the
 * report collects. A notebook's first verdict in a run folder rewrites that folder's file, so a
 * re-run replaces the earlier verdicts of the same setting and never touches another setting's;
 * the report marks a notebook that failed as failed whatever its file holds.
 */
import { join } from 'node:path';
import { writeFileAtomic } from '../data/io.ts';
import { display, escapeHtml } from './display.ts';
import { currentEffective, currentParams, type EffectiveParam, type ParamValue } from './params.ts';
import { modelTag } from './paths.ts';
import { notebookName, notebookOutputDir, outputModel } from './state.ts';

export const VERDICTS_SCHEMA = 'rsn-verdicts/1';

export type VerdictStatus = 'reproduced' | 'differs' | 'not applicable';
export type VerdictValue = string | number | boolean | null;

export interface VerdictInput {
  /** The paper's claim in one sentence. */
  claim: string;
  /** What the paper reports (a number, or a short statement). */
  paper: VerdictValue;
  /** What we measured, computed in the notebook. */
  ours: VerdictValue;
  status: VerdictStatus;
  /** By how much / why (e.g. "−3.2 points", "no tokenizer in this model"). */
  detail?: string;
}

export interface VerdictRecord extends VerdictInput {
  detail: string;
}

export interface VerdictFile {
  schema: typeof VERDICTS_SCHEMA;
  notebook: string;
  model: string;
  modelTag: string;
  updated: string;
  params: Record<string, ParamValue>;
  /** Values derived from the parameters and used (k after capping, …), when they differ from what was asked. */
  effective?: Record<string, EffectiveParam>;
  verdicts: VerdictRecord[];
}

let records: VerdictRecord[] = [];
/** The file `records` belong to: verdicts of one run folder never leak into another's file. */
let recordsFile: string | null = null;

export function verdictFile(notebook = notebookName()): string {
  return join(notebookOutputDir('verdicts'), `${notebook}.json`);
}

/** Called when a notebook starts: its next verdict starts a new file (nothing on disk is deleted). */
export function resetVerdicts(): void {
  records = [];
  recordsFile = null;
}

/** The colour of each verdict status, in notebooks and in the report. */
export const VERDICT_COLORS: Record<VerdictStatus, string> = { reproduced: '#1a7f37', differs: '#b35900', 'not applicable': '#666' };

function show(v: VerdictValue): string {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4)));
  return v === null ? '–' : String(v);
}

/** Record and show one verdict; calling it again with the same claim replaces that entry. */
export function verdict(input: VerdictInput): void {
  if (!['reproduced', 'differs', 'not applicable'].includes(input.status)) throw new Error(`verdict status ${JSON.stringify(input.status)}: expected "reproduced", "differs" or "not applicable"`);
  const rec: VerdictRecord = { claim: input.claim, paper: input.paper, ours: input.ours, status: input.status, detail: input.detail ?? '' };
  const file = verdictFile();
  if (file !== recordsFile) {
    records = [];
    recordsFile = file;
  }
  records = [...records.filter((r) => r.claim !== rec.claim), rec];
  const model = outputModel();
  const content: VerdictFile = {
    schema: VERDICTS_SCHEMA,
    notebook: notebookName(),
    model,
    modelTag: modelTag(model),
    updated: new Date().toISOString(),
    params: Object.fromEntries(currentParams().map((p) => [p.name, p.value])),
    effective: currentEffective(),
    verdicts: records,
  };
  writeFileAtomic(file, JSON.stringify(content, null, 1) + '\n');
  const c = VERDICT_COLORS[rec.status];
  display({
    'text/html': `<div class="rsn-verdict" style="border-left:4px solid ${c};padding:4px 10px;margin:4px 0">
<div><b>${escapeHtml(rec.claim)}</b></div>
<div>paper: ${escapeHtml(show(rec.paper))} · ours: ${escapeHtml(show(rec.ours))} · <b style="color:${c}">${escapeHtml(rec.status)}</b>${rec.detail ? ` (${escapeHtml(rec.detail)})` : ''}</div></div>`,
    'text/plain': `VERDICT [${rec.status}] ${rec.claim}\n  paper: ${show(rec.paper)}\n  ours:  ${show(rec.ours)}${rec.detail ? `\n  ${rec.detail}` : ''}`,
  });
}

/** The verdicts recorded so far by this notebook. */
export function verdicts(): VerdictRecord[] {
  return records.map((r) => ({ ...r }));
}

/**
 * Compare a paper number with ours: reproduced when |ours − paper| ≤ tolerance (absolute, or
 * relative to |paper| with `relative`), else differs; the detail says by how much.
 */
export function compare(paper: number, ours: number, opts: { tolerance?: number; relative?: boolean; unit?: string } = {}): { status: VerdictStatus; detail: string } {
  const tol = opts.tolerance ?? 0;
  const diff = ours - paper;
  const scale = opts.relative ? Math.abs(paper) : 1;
  const within = Number.isFinite(ours) && Math.abs(diff) <= tol * scale + 1e-12;
  const unit = opts.unit ? ` ${opts.unit}` : '';
  const by = opts.relative && paper !== 0 ? `${diff >= 0 ? '+' : '−'}${Math.abs((100 * diff) / paper).toFixed(1)}%` : `${diff >= 0 ? '+' : '−'}${show(Math.abs(diff))}${unit}`;
  return { status: within ? 'reproduced' : 'differs', detail: diff === 0 ? 'exact' : `${by} (tolerance ${opts.relative ? `${100 * tol}%` : show(tol) + unit})` };
}
