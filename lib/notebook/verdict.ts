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
import { PLACEMENT_PARAMS } from './run.ts';
import { currentEffective, currentParams, type EffectiveParam, type ParamValue } from './params.ts';
import { modelTag } from './paths.ts';
import { showValue, type VerdictInput, type VerdictStatus } from '../method/verdicts.ts';
import { notebookName, notebookOutputDir, outputModel } from './state.ts';

export const VERDICTS_SCHEMA = 'rsn-verdicts/1';

export { compare, holds, type VerdictInput, type VerdictStatus, type VerdictValue } from '../method/verdicts.ts';

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
    // A run on a cluster records the same file as one here.
    params: Object.fromEntries(currentParams().filter((p) => !PLACEMENT_PARAMS.has(p.name)).map((p) => [p.name, p.value])),
    effective: currentEffective(),
    verdicts: records,
  };
  writeFileAtomic(file, JSON.stringify(content, null, 1) + '\n');
  const c = VERDICT_COLORS[rec.status];
  display({
    'text/html': `<div class="rsn-verdict" style="border-left:4px solid ${c};padding:4px 10px;margin:4px 0">
<div><b>${escapeHtml(rec.claim)}</b></div>
<div>paper: ${escapeHtml(showValue(rec.paper))} · ours: ${escapeHtml(showValue(rec.ours))} · <b style="color:${c}">${escapeHtml(rec.status)}</b>${rec.detail ? ` (${escapeHtml(rec.detail)})` : ''}</div></div>`,
    'text/plain': `VERDICT [${rec.status}] ${rec.claim}\n  paper: ${showValue(rec.paper)}\n  ours:  ${showValue(rec.ours)}${rec.detail ? `\n  ${rec.detail}` : ''}`,
  });
}

/** Record and show each verdict of a list, e.g. an experiment's `verdicts(result)`. */
export function showVerdicts(list: readonly VerdictInput[]): void {
  for (const v of list) verdict(v);
}

/** The verdicts recorded so far by this notebook. */
export function verdicts(): VerdictRecord[] {
  return records.map((r) => ({ ...r }));
}
