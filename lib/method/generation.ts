/**
 * Greedy generation and scoring over many (prompt, ablation) rows in big padded batches (the
 * one batch loop, batches.ts), each row with its own ablation: a whole experiment grid
 * (relations × k × seeds) is a few batched passes rather than one pass per configuration.
 */
import type { ModelRunner } from '../model/runner.ts';
import type { ProgressState } from '../progress.ts';
import { forEachBatch } from './batches.ts';
import type { Ablation, NeuronSpace } from './neurons.ts';

export interface GreedyRow {
  ids: readonly number[];
  /** What this row does to neurons of `space` at every position and step, or null. */
  ablation: Ablation | null;
}

export interface RunOptions {
  maxNewTokens?: number;
  /** Rows per forward pass (default 64). */
  batchSize?: number;
  label?: string;
  /** Silence the terminal progress line (callbacks still fire). */
  quiet?: boolean;
  onProgress?: (s: ProgressState) => void;
}

/** Greedy continuation of every row; rows are batched by length, results come back in row order. */
export async function greedyRows(model: ModelRunner, space: NeuronSpace, rows: readonly GreedyRow[], opts: RunOptions = {}): Promise<number[][]> {
  const order = rows.map((_, i) => i).sort((a, b) => rows[a]!.ids.length - rows[b]!.ids.length || a - b);
  const out: number[][] = new Array(rows.length);
  const progress = { itemName: 'prompts', label: opts.label ?? 'generate', silent: opts.quiet, onUpdate: opts.onProgress };
  await forEachBatch({ total: order.length, batchSize: opts.batchSize ?? 64, progress }, async (start, end) => {
    const idx = order.slice(start, end);
    const interventions = space.perRowInterventions(idx.map((i) => rows[i]!.ablation));
    const { tokens } = await model.generate(
      idx.map((i) => rows[i]!.ids),
      { maxNewTokens: opts.maxNewTokens ?? 2, hooks: { interventions } },
    );
    idx.forEach((rowIndex, r) => (out[rowIndex] = tokens[r]!));
  });
  return out;
}

export interface ScoredRow {
  /** Token ids including BOS; every token after the first is scored. */
  ids: readonly number[];
  ablation: Ablation | null;
}

/**
 * Sum of log p(token_t | tokens_<t) over t ≥ 1 and the number of scored tokens, per row, with
 * the row's ablation applied. Perplexity of a row = exp(−logProb / count).
 */
export async function scoreRows(model: ModelRunner, space: NeuronSpace, rows: readonly ScoredRow[], opts: RunOptions = {}): Promise<{ logProb: number; count: number }[]> {
  const V = model.config.vocabSize;
  const out: { logProb: number; count: number }[] = new Array(rows.length);
  const progress = { itemName: 'sentences', label: opts.label ?? 'score', silent: opts.quiet, onUpdate: opts.onProgress };
  await forEachBatch({ total: rows.length, batchSize: opts.batchSize ?? 32, progress }, async (start, end) => {
    const batch = rows.slice(start, end);
    const interventions = space.perRowInterventions(batch.map((r) => r.ablation));
    const r = await model.forward(batch.map((x) => x.ids), { logits: 'all', hooks: { interventions } });
    const T = r.seqLen;
    const logits = r.logits!.data;
    batch.forEach((row, b) => {
      const len = row.ids.length;
      const pad = T - len;
      let lp = 0;
      for (let t = 0; t < len - 1; t++) {
        const base = (b * T + pad + t) * V;
        let max = -Infinity;
        for (let v = 0; v < V; v++) max = Math.max(max, logits[base + v]!);
        let sum = 0;
        for (let v = 0; v < V; v++) sum += Math.exp(logits[base + v]! - max);
        lp += logits[base + row.ids[t + 1]!]! - max - Math.log(sum);
      }
      out[start + b] = { logProb: lp, count: len - 1 };
    });
  });
  return out;
}
