/**
 * The one loop that feeds a model call after call: consecutive ranges of `batchSize` items, with
 * a progress line that reaches its end or is withdrawn when a batch throws. Greedy generation,
 * scoring and the activation collection all run through it; the rows of one call are then cut
 * into parts by the execution layer (lib/exec), and into micro-batches by the model for memory.
 */
import { Progress, type ProgressOptions } from '../progress.ts';

export interface BatchLoop {
  /** Items in all. */
  total: number;
  /** Items per call: a positive integer. */
  batchSize: number;
  /** Items already done (a resumed run): the loop starts there. Default 0. */
  from?: number;
  progress: Omit<ProgressOptions, 'total'>;
}

/** Calls `batch(start, end)` for consecutive ranges of at most `batchSize` items, in order. */
export async function forEachBatch(loop: BatchLoop, batch: (start: number, end: number) => Promise<void>): Promise<void> {
  const { total, batchSize } = loop;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
  const progress = new Progress({ ...loop.progress, total });
  let start = loop.from ?? 0;
  if (start > 0) progress.update(start);
  try {
    while (start < total) {
      const end = Math.min(total, start + batchSize);
      await batch(start, end);
      progress.update(end);
      start = end;
    }
    progress.finish();
  } catch (e) {
    progress.abort();
    throw e;
  }
}
