/**
 * Worker side of ParallelModel (parallel-model.ts): loads the model on this thread's own TF.js
 * backend once, then answers forward and generate calls for a share of a batch's rows. Errors
 * are returned as replies, never thrown, so that a rejected task means the worker itself failed.
 */
import { LlamaModel } from '../model/llama.ts';
import type { ForwardOptions, GenerateOptions } from '../model/runner.ts';
import type { ExecutionPlan } from '../model/weight-source.ts';
import { withTransfer, workerInit } from './worker-init.ts';

export interface ModelWorkerInit {
  dir: string;
  backend: string;
  plan: ExecutionPlan;
}

/** One call on a slice of rows (hooks already sliced to them, no custom hooks). */
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

const init = workerInit<ModelWorkerInit>();
let model: LlamaModel | null = null;
let loadError: Error | null = null;
try {
  // No log: the calling thread has already said which backend and plan it uses.
  model = await LlamaModel.load(init.dir, { backend: init.backend, plan: init.plan, log: null });
} catch (e) {
  loadError = e instanceof Error ? e : new Error(String(e));
}

function errorReply(e: unknown, loading: boolean): ModelReply {
  const err = e instanceof Error ? e : new Error(String(e));
  return { type: 'error', name: err.name, message: err.message, loading };
}

export default async function runModelJob(job: ModelJob): Promise<ModelReply> {
  if (!model) return errorReply(loadError, true);
  try {
    if (job.call === 'generate') return { type: 'generate', tokens: (await model.generate(job.sequences, job.opts)).tokens };
    const r = await model.forward(job.sequences, job.opts);
    const records = [...r.records.values()].map((x) => ({ point: x.point, mode: x.mode, shape: x.shape, data: x.data }));
    const buffers = [...records.map((x) => x.data.buffer), ...(r.logits ? [r.logits.data.buffer] : [])] as ArrayBuffer[];
    return withTransfer({ type: 'forward', seqLen: r.seqLen, logits: r.logits, records } satisfies ModelReply, buffers);
  } catch (e) {
    return errorReply(e, false);
  }
}
