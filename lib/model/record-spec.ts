/**
 * What a forward pass records, as data: hook points and one reducer that says what is kept of
 * each point's [B, T, N] activations. The same spec serves runWithCache (full activations),
 * the activation collection (token means), the bench and the 7B dry run.
 */
import { HookError } from '../errors.ts';
import type { LlamaConfig } from './config.ts';
import type { ActivationCache } from './activation-cache.ts';
import { type Hooks, hookPoints, parseHookPoint, type RecordSpec } from './hooks.ts';
import type { ForwardOptions, ForwardResult, ModelRunner } from './runner.ts';

/**
 * 'full': every position, [B, T, N] (left-padded); 'token-mean': the mean over each row's real
 * tokens, [B, N]; 'token-mean-no-bos': the same without each row's first token (the BOS; a row
 * of one token gives zeros).
 */
export type Reducer = 'full' | 'token-mean' | 'token-mean-no-bos';

export const REDUCERS: readonly Reducer[] = ['full', 'token-mean', 'token-mean-no-bos'];

/** Hook point names, or a test over the model's hook points (e.g. `(p) => p.endsWith(".mlp.act")`). */
export type PointSelection = readonly string[] | ((point: string) => boolean);

/** One RecordSpec per selected point, each with `reducer`; the points are checked against the model. */
export function recordSpec(config: LlamaConfig, points: PointSelection, reducer: Reducer = 'full'): RecordSpec[] {
  if (!REDUCERS.includes(reducer)) throw new HookError(`record: reducer must be one of ${REDUCERS.join(', ')}, got ${JSON.stringify(reducer)}`);
  const names = typeof points === 'function' ? hookPoints(config).filter(points) : [...points];
  if (names.length === 0) throw new HookError('record: the selection names no hook point');
  for (const name of names) parseHookPoint(name, config);
  if (reducer === 'full') return names.map((point) => ({ point, mode: 'full' }));
  return names.map((point) => ({ point, mode: 'mean', skipFirstToken: reducer === 'token-mean-no-bos' }));
}

export interface RunWithCacheOptions extends Omit<ForwardOptions, 'hooks'> {
  interventions?: Hooks['interventions'];
  /** What is kept of each point (default 'full': every position). */
  reducer?: Reducer;
}

/**
 * One forward pass that records the selected hook points (TransformerLens's run_with_cache):
 * `points` names them, or tests each of hookPoints(config). Works on any ModelRunner.
 */
export async function runWithCache(model: ModelRunner, sequences: readonly (readonly number[])[], points: PointSelection, opts: RunWithCacheOptions = {}): Promise<{ logits: ForwardResult['logits']; cache: ActivationCache; lengths: number[] }> {
  const { interventions, reducer, ...forward } = opts;
  const record = recordSpec(model.config, points, reducer);
  const r = await model.forward(sequences, { ...forward, hooks: { record, interventions } });
  return { logits: r.logits, cache: r.records, lengths: r.lengths };
}
