/**
 * The worker side of worker-pool.ts: the pool's init value, and results whose buffers move back
 * to the caller instead of being copied.
 */
import { isMainThread, workerData } from 'node:worker_threads';
import { move, transferableSymbol, valueSymbol } from 'piscina';
import type { PoolWorkerData } from './worker-pool.ts';

/** The `init` the pool was created with. Only inside a pool worker. */
export function workerInit<Init>(): Init {
  if (isMainThread) throw new Error('workerInit() is for pool workers; the main thread has no pool init');
  return (workerData as PoolWorkerData<Init>).init;
}

/** Wraps a task result so that `buffers` are transferred to the calling thread. */
export function withTransfer<T extends object>(value: T, buffers: readonly ArrayBuffer[]): T {
  if (buffers.length === 0) return value;
  // piscina sends the value of a moved { [transferableSymbol], [valueSymbol] } and transfers the list.
  const movable = { [transferableSymbol]: [...new Set(buffers)], [valueSymbol]: value };
  return move(movable) as unknown as T;
}
