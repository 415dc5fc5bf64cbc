/**
 * Worker-thread side of the AP engine (ap-engine.ts), run by lib/exec's worker pool. Each
 * worker owns one ApChunkKernel (its scratch buffers are reused across chunks) and answers one
 * task per chunk; errors are replies, so a rejected task means the worker itself failed.
 */
import { withTransfer, workerInit } from '../exec/worker-init.ts';
import { ApChunkKernel } from './average-precision.ts';

/** The pool's init, sent once to every worker. */
export interface ApWorkerInit {
  numPrompts: number;
  numTasks: number;
  /** [R][P] task codes (CODE_POS / CODE_NEG / CODE_OUT). */
  codes: Uint8Array;
}

/** Main → worker: one chunk, [P][width] prompt-major, neurons start..start+width. */
export interface ApWorkerJob {
  start: number;
  width: number;
  data: Float32Array;
}

/** Worker → main. `ap` is [R][width]. */
export type ApWorkerReply =
  | { type: 'result'; start: number; width: number; ap: Float64Array }
  | { type: 'error'; name: string; message: string };

const init = workerInit<ApWorkerInit>();
const kernel = new ApChunkKernel(init.numPrompts, init.numTasks, init.codes);

export default function runApChunk(job: ApWorkerJob): ApWorkerReply {
  try {
    const ap = new Float64Array(init.numTasks * job.width);
    kernel.run(job.data, job.width, ap, job.start);
    return withTransfer({ type: 'result', start: job.start, width: job.width, ap } satisfies ApWorkerReply, [ap.buffer]);
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    return { type: 'error', name: e.name, message: e.message };
  }
}
