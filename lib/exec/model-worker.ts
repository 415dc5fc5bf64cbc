/**
 * Worker side of ParallelModel (parallel-model.ts): loads the model on this thread's own TF.js
 * backend once, then runs parts of calls (model-job.ts) for the calling thread. Errors
 * are returned as replies, never thrown, so that a rejected task means the worker itself failed.
 */
import { LlamaModel } from '../model/llama.ts';
import type { ExecutionPlan } from '../model/weight-source.ts';
import { type ModelJob, type ModelReply, runModelJob } from './model-job.ts';
import { withTransfer, workerInit } from './worker-init.ts';

export interface ModelWorkerInit {
  dir: string;
  backend: string;
  plan: ExecutionPlan;
}

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

export default async function handleModelJob(job: ModelJob): Promise<ModelReply> {
  if (!model) return errorReply(loadError, true);
  try {
    const reply = await runModelJob(model, job);
    if (reply.type === 'generate') return reply;
    const buffers = [...reply.records.map((x) => x.data.buffer), ...(reply.logits ? [reply.logits.data.buffer] : [])] as ArrayBuffer[];
    return withTransfer(reply, buffers);
  } catch (e) {
    return errorReply(e, false);
  }
}
