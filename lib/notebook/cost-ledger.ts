/**
 * The cost ledger of a run folder (cost.json): every stage a notebook ran or read from the cache,
 * with its prompt runs, token forwards and FLOPs (lib/method/cost.ts) and, where it was computed,
 * how long it took on which executor. A stage counts once, for the first notebook that used it.
 * The report shows it per notebook, and the next reproduction of the same setting prints from it
 * what the run will cost and how long it should take, before any job runs.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../data/io.ts';
import { expectedSeconds, type Cost } from '../method/cost.ts';
import type { CostRecord } from '../runs/pipeline.ts';
import { currentRunDir, notebookName } from './state.ts';

export const COST_FILE = 'cost.json';
const COST_SCHEMA = 'rsn-cost/1';

export interface LedgerEntry extends Cost {
  notebook: string;
  stage: CostRecord['stage'];
  label: string;
  id: string;
  /** Its last computation: where, how long, when; null when it was only ever read from a cache. */
  last: { executor: string; seconds: number; computedAt: string } | null;
  /** Seconds of its last computation on each executor it ran on (the estimates per executor). */
  timings: Record<string, number>;
}

export function readCostLedger(runDir: string): LedgerEntry[] {
  const file = join(runDir, COST_FILE);
  if (!existsSync(file)) return [];
  try {
    const f = JSON.parse(readFileSync(file, 'utf8')) as { schema?: string; stages?: LedgerEntry[] };
    return f.schema === COST_SCHEMA && Array.isArray(f.stages) ? f.stages : [];
  } catch {
    // A damaged ledger only loses estimates; the next stage rewrites it.
    return [];
  }
}

/** Add a pipeline's cost record to the current run folder's ledger (nothing outside a run). */
export function recordCost(r: CostRecord, runDir: string | null = currentRunDir()): void {
  if (!runDir) return;
  const stages = readCostLedger(runDir);
  const i = stages.findIndex((e) => e.stage === r.stage && e.id === r.id);
  const old = i >= 0 ? stages[i]! : null;
  const computed = r.seconds !== null ? { executor: r.executor, seconds: r.seconds, computedAt: new Date().toISOString() } : null;
  const entry: LedgerEntry = {
    notebook: old?.notebook ?? notebookName(),
    stage: r.stage,
    label: r.label,
    id: r.id,
    ...r.cost,
    last: computed ?? old?.last ?? null,
    timings: { ...(old?.timings ?? {}), ...(computed ? { [computed.executor]: computed.seconds } : {}) },
  };
  if (i >= 0) stages[i] = entry;
  else stages.push(entry);
  writeFileAtomic(join(runDir, COST_FILE), JSON.stringify({ schema: COST_SCHEMA, stages }, null, 1) + '\n');
}

export interface NotebookCost extends Cost {
  notebook: string;
  stages: number;
  /** Measured seconds of the stages computed, summed. */
  seconds: number;
}

export function costByNotebook(entries: readonly LedgerEntry[]): NotebookCost[] {
  const rows = new Map<string, NotebookCost>();
  for (const e of entries) {
    const r = rows.get(e.notebook) ?? { notebook: e.notebook, stages: 0, promptRuns: 0, tokenForwards: 0, flops: 0, seconds: 0 };
    r.stages++;
    r.promptRuns += e.promptRuns;
    r.tokenForwards += e.tokenForwards;
    r.flops += e.flops;
    r.seconds += e.last?.seconds ?? 0;
    rows.set(e.notebook, r);
  }
  return [...rows.values()].sort((a, b) => a.notebook.localeCompare(b.notebook));
}

/**
 * Expected wall seconds of all `entries` on an executor, from the entries timed on it
 * (`executor` is matched as a prefix: "local" matches "local wasm+…"): each stage's FLOPs
 * through expectedSeconds, so a cluster's fixed cost per stage counts once per stage.
 * Null when no stage was timed there.
 */
export function expectedRunSeconds(entries: readonly LedgerEntry[], executor: string): { seconds: number; timings: number } | null {
  const timings = entries.flatMap((e) => Object.entries(e.timings ?? {}).filter(([where]) => where.startsWith(executor)).map(([, seconds]) => ({ flops: e.flops, seconds })));
  if (!timings.length) return null;
  let seconds = 0;
  for (const e of entries) seconds += expectedSeconds(timings, e.flops) ?? 0;
  return { seconds, timings: timings.length };
}
