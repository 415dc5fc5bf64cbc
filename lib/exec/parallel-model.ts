/**
 * Data parallelism on the CPU: TF.js's wasm and cpu backends compute on one thread, so a call's
 * rows are cut into parts of ROWS_PER_PART rows, each padded as the whole batch is (padTo) and
 * carrying only its rows' hooks, and the parts run on worker threads that each hold the model on
 * their own backend instance (model-worker.ts); the results are put back in row order.
 *
 * The parts do not depend on the number of workers, and a part computes the same numbers on any
 * thread (model-job.ts): so a call gives the same bits with 1, 2 or 16 workers, and after a
 * worker failed. (Splitting the rows by the worker count would not: a BLAS kernel such as
 * OpenBLAS's sums a row in an order that depends on where the row sits in the matrix.)
 *
 * Parts run on the calling thread's LlamaModel, one after another, with one worker, with custom
 * hooks (functions stay on their thread), and for a model built in memory (workers load from a
 * directory). On a GPU backend (one device) a call runs whole. A worker that dies fails its call
 * over to the calling thread; the pool starts a replacement for the next call. Workers that
 * cannot load the model end the pool: later calls run on this thread.
 */
import type { Worker } from 'node:worker_threads';
import { ActivationCache } from '../model/activation-cache.ts';
import { ActivationRecord } from '../model/activation-record.ts';
import { concatFloat32, rowRanges } from '../model/batch.ts';
import type { Hooks } from '../model/hooks.ts';
import { sliceHooks } from '../model/hooks.ts';
import { LlamaModel, type LoadOptions } from '../model/llama.ts';
import { predictMemory } from '../model/memory-plan.ts';
import type { ForwardOptions, ForwardResult, GenerateOptions, GenerateResult, ModelRunner } from '../model/runner.ts';
import { type ModelJob, type ModelReply, runModelJob } from './model-job.ts';
import type { ModelWorkerInit } from './model-worker.ts';
import { requestedWorkers, workerCount } from './worker-count.ts';
import { WorkerPool } from './worker-pool.ts';

/** Backends that compute on the calling thread's CPU; a GPU backend is one device, shared by all. */
const CPU_BACKENDS = new Set(['wasm', 'cpu']);

/**
 * Rows per part on the CPU backends: the usual calls (32–64 rows) keep 2–4 workers busy, and a
 * part's products stay as efficient as a whole call's (8-row parts cost 20–30 % of the
 * throughput: a decode step reads every weight once per part).
 */
export const ROWS_PER_PART = 16;

/** The batch one worker is planned for: its share of a 64-prompt call of 32 tokens. */
const WORKER_WORKLOAD = { batchSize: 32, promptLength: 32, newTokens: 2 };

export interface ParallelOptions {
  /**
   * Worker threads that share a call's rows on the CPU backends, each holding the weights on
   * its own backend instance. Default: RSN_WORKERS, else the available cores; 1 = this thread
   * only. Fewer when host memory cannot hold the copies; none on a GPU backend.
   */
  workers?: number;
  /** Where pool events are said (default stderr; null: silent). */
  log?: ((line: string) => void) | null;
}

type Reply<T extends ModelReply['type']> = Extract<ModelReply, { type: T }>;

function rebuildError(r: Reply<'error'>, part: number): Error {
  const e = new Error(r.message);
  e.name = r.name;
  e.stack = `${r.name}: ${r.message}\n    (in the worker thread of row part ${part})`;
  return e;
}

/** A worker could not load the model: no call can run on the pool. */
class PoolLoadError extends Error {}

export class ParallelModel implements ModelRunner {
  private pool: WorkerPool<ModelJob, ModelReply> | null = null;
  private poolClosed = false;

  private constructor(
    /** The calling thread's model: for calls that are not split, and for fallback. */
    readonly local: LlamaModel,
    /** Worker threads for split calls (1: every call runs on the calling thread). */
    readonly workers: number,
    private readonly log: ((line: string) => void) | null,
  ) {}

  /** Calls are cut into parts on the CPU backends only. */
  private get partwise(): boolean {
    return CPU_BACKENDS.has(this.local.info.backend?.name ?? '');
  }

  /** Loads `dir` on this thread (LlamaModel.load) and plans the workers its calls get. */
  static async load(dir: string, opts: LoadOptions & ParallelOptions = {}): Promise<ParallelModel> {
    const { workers, ...load } = opts;
    requestedWorkers(workers); // a bad request fails before the model loads
    const model = await LlamaModel.load(dir, load);
    try {
      return ParallelModel.wrap(model, { workers, log: opts.log });
    } catch (e) {
      model.dispose();
      throw e;
    }
  }

  /** Runs `model`'s calls on worker threads too; takes ownership (dispose() disposes it). */
  static wrap(model: LlamaModel, opts: ParallelOptions = {}): ParallelModel {
    const log = opts.log === undefined ? (l: string) => process.stderr.write(l + '\n') : opts.log;
    const want = requestedWorkers(opts.workers);
    const backend = model.info.backend?.name ?? '';
    if (want === 1 || !CPU_BACKENDS.has(backend) || model.info.dir === null) return new ParallelModel(model, 1, log);
    const perWorkerBytes = predictMemory(model.config, WORKER_WORKLOAD, model.plan).peakBytes;
    return new ParallelModel(model, workerCount({ requested: want, perWorkerBytes, log }), log);
  }

  get config() {
    return this.local.config;
  }

  get tokenizer() {
    return this.local.tokenizer;
  }

  get info() {
    return this.local.info;
  }

  /** Worker threads running now (0 until a call has started the pool, or when calls run on this thread). */
  get activeWorkers(): number {
    return this.pool?.size ?? 0;
  }

  /** The pool's live threads (for diagnostics, and for tests that kill one). */
  get threads(): readonly Worker[] {
    return this.pool?.threads ?? [];
  }

  /** The pool for a call of `parts` parts, started on first use; null when the parts run on this thread. */
  private poolFor(parts: number, hooks: Hooks | undefined): WorkerPool<ModelJob, ModelReply> | null {
    if (this.workers < 2 || parts < 2 || hooks?.custom?.length || this.poolClosed) return null;
    const dir = this.local.info.dir!;
    this.pool ??= new WorkerPool<ModelJob, ModelReply>({
      callerUrl: import.meta.url,
      moduleBase: 'model-worker',
      threads: this.workers,
      init: { dir, backend: this.local.info.backend!.name, plan: this.local.plan } satisfies ModelWorkerInit,
    });
    return this.pool;
  }

  /** The call cut into parts of ROWS_PER_PART rows, each padded as the whole batch, with the hooks of its rows. */
  private parts(call: ModelJob['call'], sequences: readonly (readonly number[])[], opts: ForwardOptions | GenerateOptions): ModelJob[] {
    const B = sequences.length;
    const padTo = Math.max(opts.padTo ?? 0, ...sequences.map((s) => s.length));
    // Sliced before anything runs, so a malformed perRow fails here with the caller's stack.
    return rowRanges(B, ROWS_PER_PART).map(([start, end]) => ({ call, sequences: sequences.slice(start, end).map((s) => [...s]), opts: { ...opts, padTo, hooks: sliceHooks(opts.hooks, start, end, B) } }) as ModelJob);
  }

  /** The parts on the pool; null when a worker failed (the caller then runs them on this thread). */
  private async onPool(pool: WorkerPool<ModelJob, ModelReply>, jobs: readonly ModelJob[]): Promise<ModelReply[] | null> {
    let replies: ModelReply[];
    try {
      replies = await Promise.all(jobs.map((job) => pool.run(job)));
    } catch (e) {
      this.log?.(`[rsn] workers: a worker thread failed (${(e as Error).message}); this call runs on the calling thread, the pool replaces the worker`);
      return null;
    }
    const failed = replies.findIndex((r) => r.type === 'error');
    if (failed >= 0) {
      const r = replies[failed] as Reply<'error'>;
      if (r.loading) throw new PoolLoadError(`could not load the model in a worker thread (${r.name}: ${r.message})`);
      throw rebuildError(r, failed);
    }
    return replies;
  }

  /** The parts on this thread, one after another. */
  private async onThisThread(jobs: readonly ModelJob[]): Promise<ModelReply[]> {
    const replies: ModelReply[] = [];
    for (const job of jobs) replies.push(await runModelJob(this.local, job));
    return replies;
  }

  /** Runs the parts on the pool, else (no pool, a worker died, the pool cannot load) on this thread. */
  private async runParts(jobs: readonly ModelJob[], hooks: Hooks | undefined): Promise<ModelReply[]> {
    const pool = this.poolFor(jobs.length, hooks);
    if (!pool) return this.onThisThread(jobs);
    try {
      return (await this.onPool(pool, jobs)) ?? (await this.onThisThread(jobs));
    } catch (e) {
      if (!(e instanceof PoolLoadError)) throw e;
      this.log?.(`[rsn] workers: ${e.message}; running on one thread from now on`);
      this.poolClosed = true;
      this.pool = null;
      void pool.close();
      return this.onThisThread(jobs);
    }
  }

  async forward(sequences: readonly (readonly number[])[], opts: ForwardOptions = {}): Promise<ForwardResult> {
    if (!this.partwise || sequences.length === 0) return this.local.forward(sequences, opts);
    const replies = await this.runParts(this.parts('forward', sequences, opts), opts.hooks);
    return mergeForward(sequences, replies as Reply<'forward'>[]);
  }

  async generate(sequences: readonly (readonly number[])[], opts: GenerateOptions): Promise<GenerateResult> {
    if (!this.partwise || sequences.length === 0) return this.local.generate(sequences, opts);
    const replies = await this.runParts(this.parts('generate', sequences, opts), opts.hooks);
    return { tokens: (replies as Reply<'generate'>[]).flatMap((r) => r.tokens) };
  }

  dispose(): void {
    this.local.dispose();
    this.poolClosed = true;
    void this.pool?.close();
    this.pool = null;
  }
}

/** The parts' results in row order, as one call over all rows would give them. */
function mergeForward(sequences: readonly (readonly number[])[], outs: readonly Reply<'forward'>[]): ForwardResult {
  const B = sequences.length;
  const lengths = sequences.map((s) => s.length);
  const records = new ActivationCache();
  for (const [k, rec] of outs[0]!.records.entries()) {
    const pieces = outs.map((o) => o.records[k]!);
    records.set(rec.point, new ActivationRecord(rec.point, rec.mode, [B, ...rec.shape.slice(1)], concatFloat32(pieces.map((p) => p.data)), lengths));
  }
  const first = outs[0]!.logits;
  const logits = first ? { shape: [B, ...first.shape.slice(1)], data: concatFloat32(outs.map((o) => o.logits!.data)) } : null;
  return { batchSize: B, seqLen: outs[0]!.seqLen, lengths, logits, records };
}
