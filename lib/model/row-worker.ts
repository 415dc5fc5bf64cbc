/**
 * Worker-thread side of the row pool (row-pool.ts): loads the model on its own TF.js backend and
 * answers forward and generate calls for its share of a batch's rows. Started by row-pool.ts
 * only; not an entry point of its own.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { ExecutionPlan } from './weight-source.ts';
import { LlamaModel, type ForwardOptions, type GenerateOptions } from './llama.ts';

/** Sent once, as workerData. */
export interface RowWorkerInit {
  dir: string;
  backend: string;
  plan: ExecutionPlan;
}

/** Main → worker: one call on a slice of rows (hooks already sliced to them, no custom hooks). */
export type RowWorkerJob =
  | { id: number; call: 'forward'; sequences: number[][]; opts: ForwardOptions }
  | { id: number; call: 'generate'; sequences: number[][]; opts: GenerateOptions };

export interface SerializedRecord {
  point: string;
  mode: 'full' | 'mean';
  shape: number[];
  data: Float32Array;
}

/** Worker → main. */
export type RowWorkerReply =
  | { type: 'ready' }
  | { type: 'forward'; id: number; seqLen: number; logits: { shape: number[]; data: Float32Array } | null; records: SerializedRecord[] }
  | { type: 'generate'; id: number; tokens: number[][] }
  | { type: 'error'; id: number | null; name: string; message: string };

if (parentPort !== null) {
  const port = parentPort;
  const init = workerData as RowWorkerInit;
  const fail = (id: number | null, e: unknown) => {
    const err = e instanceof Error ? e : new Error(String(e));
    port.postMessage({ type: 'error', id, name: err.name, message: err.message } satisfies RowWorkerReply);
  };
  let model: LlamaModel | null = null;
  try {
    // No log: the main thread has already said which backend and plan it uses.
    model = await LlamaModel.load(init.dir, { backend: init.backend, plan: init.plan, log: null, workers: 1 });
    port.postMessage({ type: 'ready' } satisfies RowWorkerReply);
  } catch (e) {
    fail(null, e);
  }
  port.on('message', (job: RowWorkerJob) => {
    void (async () => {
      try {
        if (!model) throw new Error('the worker has no model (its load failed)');
        if (job.call === 'forward') {
          const r = await model.forward(job.sequences, job.opts);
          const records = [...r.records.values()].map((x) => ({ point: x.point, mode: x.mode, shape: x.shape, data: x.data }));
          // Records may share a buffer; each buffer is transferred once.
          const transfer = [...new Set([...records.map((x) => x.data.buffer), ...(r.logits ? [r.logits.data.buffer] : [])])] as ArrayBuffer[];
          port.postMessage({ type: 'forward', id: job.id, seqLen: r.seqLen, logits: r.logits, records } satisfies RowWorkerReply, transfer);
        } else {
          const r = await model.generate(job.sequences, job.opts);
          port.postMessage({ type: 'generate', id: job.id, tokens: r.tokens } satisfies RowWorkerReply);
        }
      } catch (e) {
        fail(job.id, e);
      }
    })();
  });
}
