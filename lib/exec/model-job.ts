/**
 * One part of a call, the unit that ParallelModel runs on a worker thread or on the calling
 * thread: the same function in both places, so where a part runs never changes its numbers.
 */
import type { LlamaModel } from '../model/llama.ts';
import type { ForwardOptions, GenerateOptions } from '../model/runner.ts';

/** One call on a part of a batch's rows (hooks already sliced to them, no custom hooks). */
export type ModelJob = { call: 'forward'; sequences: number[][]; opts: ForwardOptions } | { call: 'generate'; sequences: number[][]; opts: GenerateOptions };

export interface SerializedRecord {
  point: string;
  mode: 'full' | 'mean';
  shape: number[];
  data: Float32Array;
}

export type ModelReply =
  | { type: 'forward'; seqLen: number; logits: { shape: number[]; data: Float32Array } | null; records: SerializedRecord[] }
  | { type: 'generate'; tokens: number[][] }
  /** `loading`: the worker could not load the model, so no call can succeed on it. */
  | { type: 'error'; name: string; message: string; loading: boolean };

/** Runs `job` on `model`; throws what the model throws. */
export async function runModelJob(model: LlamaModel, job: ModelJob): Promise<Exclude<ModelReply, { type: 'error' }>> {
  if (job.call === 'generate') return { type: 'generate', tokens: (await model.generate(job.sequences, job.opts)).tokens };
  const r = await model.forward(job.sequences, job.opts);
  const records = [...r.records.values()].map((x) => ({ point: x.point, mode: x.mode, shape: x.shape, data: x.data }));
  return { type: 'forward', seqLen: r.seqLen, logits: r.logits, records };
}
