/**
 * A fixed-size pool of worker threads (piscina) running one module's default export as the task
 * handler. Under tsx the workers start from tsx-worker.mjs, which registers tsx first; from
 * compiled JavaScript the sibling .js module is the entry itself. A worker that dies is replaced
 * by the pool (its task rejects); `init` reaches every worker as workerInit().
 */
import { fileURLToPath } from 'node:url';
import type { Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';

/** workerData of every pool worker: the handler module and the pool's init value. */
export interface PoolWorkerData<Init> {
  module: string;
  init: Init;
}

export interface WorkerPoolOptions<Init> {
  /** The caller's import.meta.url; the handler module is its sibling `moduleBase`.ts (or .js). */
  callerUrl: string;
  moduleBase: string;
  threads: number;
  init: Init;
}

export class WorkerPool<Task, Result> {
  private readonly pool: Piscina<Task, Result>;
  private closed = false;

  constructor(opts: WorkerPoolOptions<unknown>) {
    if (!Number.isInteger(opts.threads) || opts.threads < 1) throw new RangeError(`a worker pool needs a positive integer of threads, got ${opts.threads}`);
    const typescript = opts.callerUrl.endsWith('.ts');
    const module = new URL(`./${opts.moduleBase}.${typescript ? 'ts' : 'js'}`, opts.callerUrl);
    const entry = typescript ? new URL('./tsx-worker.mjs', import.meta.url) : module;
    this.pool = new Piscina<Task, Result>({
      filename: fileURLToPath(entry),
      workerData: { module: module.href, init: opts.init } satisfies PoolWorkerData<unknown>,
      minThreads: opts.threads,
      maxThreads: opts.threads,
      // Workers hold expensive state (a model's weights): never retire an idle one.
      idleTimeout: Infinity,
      // Tasks are large; a worker waiting in Atomics.wait would also block its own async work.
      atomics: 'disabled',
    });
  }

  get size(): number {
    return this.pool.maxThreads;
  }

  /** The live worker threads, for diagnostics and for tests that kill one. */
  get threads(): readonly Worker[] {
    return this.pool.threads;
  }

  /** Runs one task on the next free worker; `transfer` buffers move instead of being copied. */
  run(task: Task, transfer: readonly ArrayBuffer[] = []): Promise<Result> {
    if (this.closed) return Promise.reject(new Error('the worker pool was closed'));
    return this.pool.run(task, transfer.length ? { transferList: [...transfer] } : undefined);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.destroy();
  }
}
