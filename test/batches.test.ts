/**
 * The batch loop (lib/method/batches.ts): consecutive ranges of at most batchSize items, in order,
 * from a resumed position; progress reaches the total, or is withdrawn when a batch throws.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { forEachBatch } from '../lib/method/batches.ts';
import type { ProgressState } from '../lib/progress.ts';

const quiet = (states: ProgressState[]) => ({ silent: true, onUpdate: (s: ProgressState) => states.push({ ...s }) });

test('ranges of batchSize items in order, the last one short; progress ends at the total', async () => {
  const ranges: [number, number][] = [];
  const states: ProgressState[] = [];
  await forEachBatch({ total: 7, batchSize: 3, progress: quiet(states) }, async (s, e) => void ranges.push([s, e]));
  assert.deepEqual(ranges, [[0, 3], [3, 6], [6, 7]]);
  assert.deepEqual(states.map((s) => s.done), [3, 6, 7, 7]);
  assert.ok(states.at(-1)!.finished);
});

test('a resumed loop starts where it stopped; nothing to do runs no batch', async () => {
  const ranges: [number, number][] = [];
  await forEachBatch({ total: 10, batchSize: 4, from: 5, progress: { silent: true } }, async (s, e) => void ranges.push([s, e]));
  assert.deepEqual(ranges, [[5, 9], [9, 10]]);
  let calls = 0;
  await forEachBatch({ total: 0, batchSize: 4, progress: { silent: true } }, async () => void calls++);
  assert.equal(calls, 0);
});

test('a batch that throws stops the loop, withdraws the progress line and reaches the caller', async () => {
  const states: ProgressState[] = [];
  const ranges: [number, number][] = [];
  await assert.rejects(
    forEachBatch({ total: 9, batchSize: 3, progress: quiet(states) }, async (s, e) => {
      ranges.push([s, e]);
      if (s === 3) throw new Error('boom');
    }),
    /boom/,
  );
  assert.deepEqual(ranges, [[0, 3], [3, 6]]);
  assert.ok(!states.some((s) => s.finished), 'never reported finished');
  await assert.rejects(forEachBatch({ total: 3, batchSize: 0, progress: { silent: true } }, async () => {}), /batchSize must be a positive integer, got 0/);
});
