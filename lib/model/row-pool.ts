/**
 * Data parallelism on the CPU: TF.js's wasm backend computes on one thread, so a call's rows are
 * split into contiguous ranges, one per worker thread, each holding the model on its own backend
 * instance, and the results are put back in row order. Every part is padded as the whole batch
 * is (padTo) and carries only its rows' hooks, so the merged result is the single-thread one.
 * Used by LlamaModel for forward and generate on wasm/cpu; on a GPU there is one device, and no pool.
 */
import type { Worker } from 'node:worker_threads';
import { startModuleWorker } from '../worker-thread.ts';
import { ActivationRecord } from './activation-record.ts';
import { concatFloat32 } from './batch.ts';
import { sliceHooks } from './hooks.ts';
import type { ForwardOptions, ForwardResult, GenerateOptions, GenerateResult } from './llama.ts';
import type { RowWorkerInit, RowWorkerJob, RowWorkerReply } from './row-worker.ts';

type Pending = { resolve: (r: RowWorkerReply) => void; reject: (e: Error) => void };

/** Contiguous row ranges, as even as possible, at most `parts` of them and none empty. */
export function splitRows(rows: number, parts: number): [number, number][] {
  const n = Math.max(1, Math.min(parts, rows));
  return Array.from({ length: n }, (_, i) => [Math.floor((i * rows) / n), Math.floor(((i + 1) * rows) / n)] as [number, number]);
}

function rebuildError(r: { name: string; message: string }, worker: number): Error {
  const e = new Error(r.message);
  e.name = r.name;
  e.stack = `${r.name}: ${r.message}\n    (in row-pool worker ${worker})`;
  return e;
}

export class RowPool {
  private nextId = 1;
  private readonly pending: Map<number, Pending>[];
  /** Set when a worker died: the pool answers nothing more (the model falls back to its own thread). */
  broken: Error | null = null;

  private constructor(private readonly workers: Worker[]) {
    this.pending = workers.map(() => new Map());
    workers.forEach((w, i) => {
      w.on('message', (r: RowWorkerReply) => {
        if (r.type === 'ready') return;
        const id = r.id;
        const p = id === null ? undefined : this.pending[i]!.get(id);
        if (!p) return;
        this.pending[i]!.delete(id!);
        if (this.pending[i]!.size === 0) w.unref();
        if (r.type === 'error') p.reject(rebuildError(r, i));
        else p.resolve(r);
      });
      const die = (e: Error) => {
        this.broken ??= e;
        for (const p of this.pending[i]!.values()) p.reject(e);
        this.pending[i]!.clear();
      };
      w.on('error', (e) => die(new Error(`row-pool worker ${i} failed: ${e.message}`, { cause: e })));
      w.on('exit', (code) => die(new Error(`row-pool worker ${i} exited (status ${code})`)));
      // An idle pool must not keep alive a process that forgot to dispose its model; a busy one must.
      w.unref();
    });
  }

  get size(): number {
    return this.workers.length;
  }

  /** Start `count` workers, each loading the model; resolves when all are ready, rejects (stopping them) if one fails. */
  static async start(init: RowWorkerInit, count: number): Promise<RowPool> {
    const workers = Array.from({ length: count }, () => startModuleWorker(import.meta.url, 'row-worker', init, 'Row-pool worker threads'));
    try {
      await Promise.all(
        workers.map(
          (w, i) =>
            new Promise<void>((resolve, reject) => {
              const onMessage = (r: RowWorkerReply) => {
                if (r.type === 'ready') {
                  w.off('message', onMessage);
                  resolve();
                } else if (r.type === 'error' && r.id === null) reject(rebuildError(r, i));
              };
              w.on('message', onMessage);
              w.once('error', reject);
              w.once('exit', (code) => reject(new Error(`row-pool worker ${i} exited (status ${code}) while loading ${init.dir}`)));
            }),
        ),
      );
    } catch (e) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw e;
    }
    return new RowPool(workers);
  }

  private call(worker: number, job: Omit<RowWorkerJob, 'id'>): Promise<RowWorkerReply> {
    if (this.broken) return Promise.reject(this.broken);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending[worker]!.set(id, { resolve, reject });
      this.workers[worker]!.ref();
      this.workers[worker]!.postMessage({ ...job, id } as RowWorkerJob);
    });
  }

  /** Worker i gets rows range i, padded as the whole batch, with the hooks of its rows. */
  private dispatch(call: 'forward' | 'generate', sequences: readonly (readonly number[])[], opts: ForwardOptions | GenerateOptions): Promise<RowWorkerReply[]> {
    const B = sequences.length;
    const padTo = Math.max(opts.padTo ?? 0, ...sequences.map((s) => s.length));
    return Promise.all(
      splitRows(B, this.workers.length).map(([start, end], i) =>
        this.call(i, { call, sequences: sequences.slice(start, end).map((s) => [...s]), opts: { ...opts, padTo, hooks: sliceHooks(opts.hooks, start, end, B) } } as Omit<RowWorkerJob, 'id'>),
      ),
    );
  }

  /** ForwardOptions without custom hooks (functions cannot cross threads; the caller checks). */
  async forward(sequences: readonly (readonly number[])[], opts: ForwardOptions): Promise<ForwardResult> {
    const B = sequences.length;
    const replies = await this.dispatch('forward', sequences, opts);
    const outs = replies.map((r) => {
      if (r.type !== 'forward') throw new Error(`row pool: expected a forward reply, got ${r.type}`);
      return r;
    });
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

  async generate(sequences: readonly (readonly number[])[], opts: GenerateOptions): Promise<GenerateResult> {
    const replies = await this.dispatch('generate', sequences, opts);
    return {
      tokens: replies.flatMap((r) => {
        if (r.type !== 'generate') throw new Error(`row pool: expected a generate reply, got ${r.type}`);
        return r.tokens;
      }),
    };
  }

  async dispose(): Promise<void> {
    this.broken ??= new Error('the row pool was disposed');
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
