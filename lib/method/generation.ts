/**
 * Greedy generation and scoring over many (prompt, ablation) rows in big padded batches, each
 * row with its own ablation: a whole experiment grid (relations × k × seeds) is a few batched
 * passes rather than one pass per configuration.
 */
import type { ModelRunner } from '../model/runner.ts';
import { Progress, type ProgressState } from '../progress.ts';
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
  const batchSize = opts.batchSize ?? 64;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
  const order = rows.map((_, i) => i).sort((a, b) => rows[a]!.ids.length - rows[b]!.ids.length || a - b);
  const out: number[][] = new Array(rows.length);
  const progress = new Progress({ total: rows.length, itemName: 'prompts', label: opts.label ?? 'generate', silent: opts.quiet, onUpdate: opts.onProgress });
  try {
    for (let start = 0; start < order.length; start += batchSize) {
      const idx = order.slice(start, start + batchSize);
      const interventions = space.perRowInterventions(idx.map((i) => rows[i]!.ablation));
      const { tokens } = await model.generate(
        idx.map((i) => rows[i]!.ids),
        { maxNewTokens: opts.maxNewTokens ?? 2, hooks: { interventions } },
      );
      idx.forEach((rowIndex, r) => (out[rowIndex] = tokens[r]!));
      progress.update(Math.min(order.length, start + batchSize));
    }
    progress.finish();
  } catch (e) {
    progress.abort();
    throw e;
  }
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
  const batchSize = opts.batchSize ?? 32;
  const V = model.config.vocabSize;
  const out: { logProb: number; count: number }[] = new Array(rows.length);
  const progress = new Progress({ total: rows.length, itemName: 'sentences', label: opts.label ?? 'score', silent: opts.quiet, onUpdate: opts.onProgress });
  for (let start = 0; start < rows.length; start += batchSize) {
    const batch = rows.slice(start, start + batchSize);
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
    progress.update(Math.min(rows.length, start + batchSize));
  }
  progress.finish();
  return out;
}
