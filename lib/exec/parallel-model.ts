/**
 * Data parallelism on the CPU: TF.js's wasm and cpu backends compute on one thread, so a call's
 * rows are split into contiguous ranges, one per worker thread, each holding the model on its
 * own backend instance (model-worker.ts), and the results are put back in row order. Every part
 * is padded as the whole batch is (padTo) and carries only its rows' hooks, so the merged result
 * is the single-thread one bit for bit.
 *
 * A call runs on the calling thread's LlamaModel instead when there is nothing to split (one
 * worker, one row), when it has custom hooks (functions stay on their thread), on a GPU backend
 * (one device), and for a model built in memory (workers load from a directory). A worker that
 * dies fails its call over to the calling thread; the pool starts a replacement for the next
 * call. Workers that cannot load the model end the pool: later calls run on this thread.
 */
import type { Worker } from 'node:worker_threads';
import { ActivationRecord } from '../model/activation-record.ts';
import { concatFloat32 } from '../model/batch.ts';
import type { Hooks } from '../model/hooks.ts';
import { sliceHooks } from '../model/hooks.ts';
import { LlamaModel, type LoadOptions } from '../model/llama.ts';
import { predictMemory } from '../model/memory-plan.ts';
import type { ForwardOptions, ForwardResult, GenerateOptions, GenerateResult, ModelRunner } from '../model/runner.ts';
import type { ModelJob, ModelReply, ModelWorkerInit } from './model-worker.ts';
import { splitRows } from './rows.ts';
import { requestedWorkers, workerCount } from './worker-count.ts';
import { WorkerPool } from './worker-pool.ts';

/** Backends that compute on the calling thread's CPU; a GPU backend is one device, shared by all. */
const CPU_BACKENDS = new Set(['wasm', 'cpu']);

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

  /** The pool for a call of `rows` rows, started on first use; null when the call runs on this thread. */
  private poolFor(rows: number, hooks: Hooks | undefined): WorkerPool<ModelJob, ModelReply> | null {
    if (this.workers < 2 || rows < 2 || hooks?.custom?.length || this.poolClosed) return null;
    const dir = this.local.info.dir!;
    this.pool ??= new WorkerPool<ModelJob, ModelReply>({
      callerUrl: import.meta.url,
      moduleBase: 'model-worker',
      threads: this.workers,
      init: { dir, backend: this.local.info.backend!.name, plan: this.local.plan } satisfies ModelWorkerInit,
    });
    return this.pool;
  }

  /**
   * Part i of the rows goes to a worker, padded as the whole batch, with the hooks of its rows.
   * Null when a worker failed: the caller then runs the call on this thread.
   */
  private async dispatch(pool: WorkerPool<ModelJob, ModelReply>, call: ModelJob['call'], sequences: readonly (readonly number[])[], opts: ForwardOptions | GenerateOptions): Promise<ModelReply[] | null> {
    const B = sequences.length;
    const padTo = Math.max(opts.padTo ?? 0, ...sequences.map((s) => s.length));
    // Sliced before anything is sent, so a malformed perRow fails here with the caller's stack.
    const parts = splitRows(B, pool.size).map(([start, end]) => ({ call, sequences: sequences.slice(start, end).map((s) => [...s]), opts: { ...opts, padTo, hooks: sliceHooks(opts.hooks, start, end, B) } }) as ModelJob);
    let replies: ModelReply[];
    try {
      replies = await Promise.all(parts.map((job) => pool.run(job)));
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

  /** Runs `pooled` on the pool, else (no pool, a worker died, the pool cannot load) `local` on this thread. */
  private async run<T>(rows: number, hooks: Hooks | undefined, pooled: (pool: WorkerPool<ModelJob, ModelReply>) => Promise<T | null>, local: () => Promise<T>): Promise<T> {
    const pool = this.poolFor(rows, hooks);
    if (!pool) return local();
    try {
      return (await pooled(pool)) ?? (await local());
    } catch (e) {
      if (!(e instanceof PoolLoadError)) throw e;
      this.log?.(`[rsn] workers: ${e.message}; running on one thread from now on`);
      this.poolClosed = true;
      this.pool = null;
      void pool.close();
      return local();
    }
  }

  async forward(sequences: readonly (readonly number[])[], opts: ForwardOptions = {}): Promise<ForwardResult> {
    return this.run(
      sequences.length,
      opts.hooks,
      async (pool) => {
        const replies = await this.dispatch(pool, 'forward', sequences, opts);
        return replies && mergeForward(sequences, replies as Reply<'forward'>[]);
      },
      () => this.local.forward(sequences, opts),
    );
  }

  async generate(sequences: readonly (readonly number[])[], opts: GenerateOptions): Promise<GenerateResult> {
    return this.run(
      sequences.length,
      opts.hooks,
      async (pool) => {
        const replies = await this.dispatch(pool, 'generate', sequences, opts);
        return replies && { tokens: (replies as Reply<'generate'>[]).flatMap((r) => r.tokens) };
      },
      () => this.local.generate(sequences, opts),
    );
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
  const records = new Map<string, ActivationRecord>();
  for (const [k, rec] of outs[0]!.records.entries()) {
    const pieces = outs.map((o) => o.records[k]!);
    records.set(rec.point, new ActivationRecord(rec.point, rec.mode, [B, ...rec.shape.slice(1)], concatFloat32(pieces.map((p) => p.data)), lengths));
  }
  const first = outs[0]!.logits;
  const logits = first ? { shape: [B, ...first.shape.slice(1)], data: concatFloat32(outs.map((o) => o.logits!.data)) } : null;
  return { batchSize: B, seqLen: outs[0]!.seqLen, lengths, logits, records };
}
