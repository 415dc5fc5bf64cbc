/**
 * Worker-thread side of the AP engine (ap-engine.ts). Each worker owns one ApChunkKernel (its
 * scratch buffers are reused across chunks) and answers one message per chunk. Started by
 * ap-engine.ts only; not an entry point of its own.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ApChunkKernel } from './average-precision.ts';

/** Sent once, as workerData. */
export interface ApWorkerInit {
  numPrompts: number;
  numTasks: number;
  /** [R][P] task codes (CODE_POS / CODE_NEG / CODE_OUT). */
  codes: Uint8Array;
}

/** Main → worker: one chunk, [P][width] prompt-major, neurons start..start+width. */
export interface ApWorkerJob {
  id: number;
  start: number;
  width: number;
  data: Float32Array;
}

/** Worker → main. `ap` is [R][width]. */
export type ApWorkerReply =
  | { type: 'result'; id: number; start: number; width: number; ap: Float64Array }
  | { type: 'error'; id: number; name: string; message: string };

if (parentPort !== null) {
  const port = parentPort;
  const init = workerData as ApWorkerInit;
  const kernel = new ApChunkKernel(init.numPrompts, init.numTasks, init.codes);
  port.on('message', (job: ApWorkerJob) => {
    try {
      const ap = new Float64Array(init.numTasks * job.width);
      kernel.run(job.data, job.width, ap, job.start);
      const reply: ApWorkerReply = {
        type: 'result',
        id: job.id,
        start: job.start,
        width: job.width,
        ap,
      };
      port.postMessage(reply, [ap.buffer]);
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      const reply: ApWorkerReply = { type: 'error', id: job.id, name: e.name, message: e.message };
      port.postMessage(reply);
    }
  });
}
