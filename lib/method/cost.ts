/**
 * What a plan costs before it runs: prompt runs (rows), token forwards and floating-point
 * operations for a given model. The count is the usual one for transformer inference: every
 * forwarded token pays 2 FLOPs per weight it is multiplied with (the attention projections,
 * the three FFN matrices of every layer and the LM head) plus the attention itself, 2·2 FLOPs
 * per head dimension per earlier position (scores and the weighted sum). Embedding lookups,
 * norms, rotary embeddings and activations are left out (under 1 % for Llama-2-7B).
 *
 * Token forwards of one row: a greedy answer of m tokens forwards the prompt's n tokens and then
 * m − 1 generated ones (the last answer token is read from logits, not fed back); a scored
 * sentence forwards its n tokens. Position i (1-based) attends to i positions.
 */
import { linearRegression } from 'simple-statistics';
import type { LlamaConfig } from '../model/config.ts';

export interface Cost {
  /** Rows: prompts answered or sentences scored. */
  promptRuns: number;
  tokenForwards: number;
  flops: number;
}

export const NO_COST: Cost = { promptRuns: 0, tokenForwards: 0, flops: 0 };

export function addCosts(a: Cost, b: Cost): Cost {
  return { promptRuns: a.promptRuns + b.promptRuns, tokenForwards: a.tokenForwards + b.tokenForwards, flops: a.flops + b.flops };
}

/** FLOPs per forwarded token for the weights alone (no attention over positions). */
export function weightFlopsPerToken(c: LlamaConfig): number {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const perLayer = c.hiddenSize * q + 2 * c.hiddenSize * kv + q * c.hiddenSize + 3 * c.hiddenSize * c.intermediateSize;
  return 2 * (c.numLayers * perLayer + c.hiddenSize * c.vocabSize);
}

/** One row that forwards `tokens` positions in sequence (positions 1…tokens). */
export function rowCost(c: LlamaConfig, tokens: number): Cost {
  const attention = 2 * c.numLayers * c.numHeads * c.headDim * tokens * (tokens + 1);
  return { promptRuns: 1, tokenForwards: tokens, flops: tokens * weightFlopsPerToken(c) + attention };
}

/**
 * The cost of rows given their token counts: `newTokens` > 0 for greedy answers of that many
 * tokens (prompt lengths), 0 for scored sentences (sentence lengths).
 */
export function rowsCost(c: LlamaConfig, lengths: Iterable<number>, newTokens: number): Cost {
  let cost = NO_COST;
  for (const n of lengths) cost = addCosts(cost, rowCost(c, n + Math.max(0, newTokens - 1)));
  return cost;
}

const UNITS: [number, string][] = [[1e18, 'EFLOP'], [1e15, 'PFLOP'], [1e12, 'TFLOP'], [1e9, 'GFLOP'], [1e6, 'MFLOP']];

/** "59.1 PFLOP", "1.23 TFLOP". */
export function formatFlops(flops: number): string {
  for (const [scale, unit] of UNITS) if (flops >= scale) return `${(flops / scale).toPrecision(3)} ${unit}`;
  return `${Math.round(flops)} FLOP`;
}

export function formatCost(c: Cost): string {
  return `${c.promptRuns.toLocaleString('en-US')} prompt runs · ${c.tokenForwards.toLocaleString('en-US')} token forwards · ${formatFlops(c.flops)}`;
}

/** One measured stage: its FLOPs and the wall seconds it took. */
export interface Timing {
  flops: number;
  seconds: number;
}

/**
 * Expected wall seconds for `flops` from earlier timings of the same executor: a line fitted to
 * (FLOPs, seconds), whose slope is the inverse throughput and whose intercept the fixed cost of a
 * stage (submission, scheduling, model load on the nodes); with one timing, or a fit that makes
 * no sense (slope ≤ 0), the throughput alone. Null without timings.
 */
export function expectedSeconds(timings: readonly Timing[], flops: number): number | null {
  const usable = timings.filter((t) => t.flops > 0 && t.seconds > 0 && Number.isFinite(t.seconds));
  if (!usable.length) return null;
  const distinct = new Set(usable.map((t) => t.flops)).size;
  if (distinct >= 2) {
    const { m, b } = linearRegression(usable.map((t) => [t.flops, t.seconds]));
    if (m > 0) return m * flops + Math.max(0, b);
  }
  const rate = usable.reduce((a, t) => a + t.flops, 0) / usable.reduce((a, t) => a + t.seconds, 0);
  return flops / rate;
}
