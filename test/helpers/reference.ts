/** Typed access to test/fixtures/reference.json (llama2.c model.py outputs on the tiny fixtures). */
import { readFileSync } from 'node:fs';

export interface ReferenceCase {
  input_ids: number[];
  logits: number[][];
  mlp_outputs: Record<string, number[][]>;
  mlp_outputs_mean_over_tokens: Record<string, number[]>;
  greedy_4: number[];
}

export interface Reference {
  cases: ReferenceCase[];
  deactivation: {
    zeroed_units: Record<string, { gate: number[]; up: number[]; down: number[] }>;
    cases: { input_ids: number[]; logits: number[][]; greedy_4: number[] }[];
  };
}

export const fixturesDir = new URL('../fixtures/', import.meta.url).pathname;

export function loadReference(): Reference {
  return JSON.parse(readFileSync(fixturesDir + 'reference.json', 'utf8')) as Reference;
}

/** Largest absolute difference between a reference array and a slice of a flat Float32Array. */
export function maxAbsDiff(expected: readonly number[], actual: ArrayLike<number>, offset = 0): number {
  let m = 0;
  for (let i = 0; i < expected.length; i++) m = Math.max(m, Math.abs(expected[i]! - actual[offset + i]!));
  return Number.isNaN(m) ? Infinity : m;
}
