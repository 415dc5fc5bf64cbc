/**
 * The execution layer (lib/exec/parallel-model.ts): a call's rows cut into parts that run on
 * worker threads, each with the model on its own wasm backend, give the one-thread results bit
 * for bit, whatever the matrix product (RSN_MATMUL): logits, pooled and full records, greedy
 * tokens with per-row interventions (with and without the KV cache), on the fixture and on the
 * organism. Errors in a worker reach the caller with their name and message and the next call
 * works; a worker killed during a call fails the call over to the calling thread and is
 * replaced; custom hooks run on the calling thread; the worker count follows RSN_WORKERS, host
 * memory (cgroup-aware) and a hard cap, and is 1 on a GPU backend.
 *
 * Run: node --import tsx --test test/parallel-model.test.ts
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, HookError } from '../lib/errors.ts';
import { expectedTensors, parseLlamaConfig } from '../lib/model/config.ts';
import type { Hooks } from '../lib/model/hooks.ts';
import { cgroupAvailableBytes } from '../lib/host-memory.ts';
import { ParallelModel, ROWS_PER_PART } from '../lib/exec/parallel-model.ts';
import { maxWorkers, requestedWorkers, workerCount } from '../lib/exec/worker-count.ts';
import { LlamaModel } from '../lib/model/llama.ts';
import { rowRanges } from '../lib/model/batch.ts';
import { predictMemory } from '../lib/model/memory-plan.ts';
import { runWithCache } from '../lib/model/record-spec.ts';
import { prepareModel } from '../lib/notebook/model.ts';
import { convertCheckpoint } from '../weights-converter/convert.ts';
import { fixturesDir } from './helpers/reference.ts';

const work = mkdtempSync(join(tmpdir(), 'rsn-parallel-model-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

const identical = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));

/** Prompts of different lengths (so rows are padded), more than two parts and the last one short. */
function prompts(vocab: number): number[][] {
  const lengths = [7, 3, 12, 1, 9, 5, 12, 4, 8, 2, 11, 6, 10, 3, 7, 12, 5, 9, 1, 4, 6, 11, 2, 8, 10, 3, 12, 7, 1, 5, 9, 6, 4, 8, 2];
  return lengths.map((n, r) => [1, ...Array.from({ length: n - 1 }, (_, t) => 2 + ((r * 31 + t * 17) % (vocab - 2)))]);
}

function perRowHooks(ids: number[][], width: number): Hooks {
  return {
    interventions: [
      { point: 'blocks.1.mlp.up', op: 'zero', perRow: ids.map((_, r) => [r % width, (r * 7 + 3) % width]) },
      { point: 'blocks.0.mlp.gate', op: 'set', perRow: ids.map((_, r) => [(r * 5) % width]), perRowValues: ids.map((_, r) => [0.25 * r]) },
    ],
  };
}

for (const name of ['fixture tiny-llama', 'organism']) {
  describe(`${name}: 2 workers give the one-thread results bit for bit`, () => {
    let one: ParallelModel;
    let two: ParallelModel;
    let whole: LlamaModel;
    before(async () => {
      let dir: string;
      if (name === 'organism') dir = (await prepareModel('data/organism')).dir;
      else {
        dir = join(work, 'tiny');
        await convertCheckpoint({ inputDir: join(fixturesDir, 'tiny-llama-bf16'), outputDir: dir, dtype: 'float32' });
      }
      one = await ParallelModel.load(dir, { backend: 'wasm', workers: 1, log: null });
      two = await ParallelModel.load(dir, { backend: 'wasm', workers: 2, log: null });
      whole = await LlamaModel.load(dir, { backend: 'wasm', log: null });
    });
    after(() => {
      one.dispose();
      two.dispose();
      whole.dispose();
    });

    test('forward: logits at every position, mean and full records, per-row interventions', async () => {
      const ids = prompts(one.config.vocabSize);
      const hooks: Hooks = { ...perRowHooks(ids, one.config.intermediateSize), record: [{ point: 'blocks.1.mlp.down', mode: 'mean', skipFirstToken: true }, { point: 'blocks.0.mlp.act', mode: 'full' }] };
      const a = await one.forward(ids, { hooks, logits: 'all' });
      const b = await two.forward(ids, { hooks, logits: 'all' });
      assert.equal(two.activeWorkers, 2, 'the call ran on 2 worker threads');
      assert.equal(one.activeWorkers, 0, 'one worker: the parts ran on this thread');
      assert.ok(ids.length > 2 * ROWS_PER_PART && ids.length % ROWS_PER_PART !== 0, 'three parts, the last one short');
      assert.deepEqual(b.logits!.shape, a.logits!.shape);
      assert.deepEqual([b.seqLen, b.lengths], [a.seqLen, a.lengths]);
      assert.ok(identical(a.logits!.data, b.logits!.data), 'logits differ');
      for (const [point, rec] of a.records) {
        const other = b.records.get(point)!;
        assert.deepEqual(other.shape, rec.shape, point);
        assert.ok(identical(rec.data, other.data), `${point}: records differ`);
      }
      // And the parts are the rows: the whole batch in one call on one thread gives the same
      // numbers to float32 rounding (a BLAS kernel may sum a row in another order where it sits
      // elsewhere in the matrix), and the same numbers bit for bit with TF.js's own matMul.
      const all = await whole.forward(ids, { hooks, logits: 'all' });
      const tol = 1e-5 * all.logits!.data.reduce((m, v) => Math.max(m, Math.abs(v)), 1);
      assert.ok(all.logits!.data.reduce((m, v, i) => Math.max(m, Math.abs(v - b.logits!.data[i]!)), 0) < tol);
      if (process.env['RSN_MATMUL'] === 'wasm') assert.ok(identical(all.logits!.data, b.logits!.data), 'TF.js matMul: the whole batch');
    });

    test('runWithCache on the pool: the same cache as on one thread, stacked by site', async () => {
      const ids = prompts(one.config.vocabSize);
      const a = (await runWithCache(one, ids, (p) => p.endsWith('.mlp.act'), { reducer: 'token-mean-no-bos' })).cache.stack('mlp.act');
      const b = (await runWithCache(two, ids, (p) => p.endsWith('.mlp.act'), { reducer: 'token-mean-no-bos' })).cache.stack('mlp.act');
      assert.deepEqual([b.layers, b.shape, b.mode], [a.layers, a.shape, 'mean']);
      assert.equal(b.shape[1], ids.length);
      assert.ok(identical(a.data, b.data));
    });

    test('generate: the same tokens with per-row interventions, with and without the KV cache, and with micro-batches', async () => {
      const ids = prompts(one.config.vocabSize);
      const hooks = perRowHooks(ids, one.config.intermediateSize);
      for (const opts of [{ maxNewTokens: 4, hooks }, { maxNewTokens: 3, hooks, useCache: false }, { maxNewTokens: 3, microBatch: 2 }]) {
        const a = await one.generate(ids, opts);
        const b = await two.generate(ids, opts);
        assert.deepEqual(b.tokens, a.tokens, JSON.stringify({ ...opts, hooks: undefined }));
      }
    });

    test('an error in a worker reaches the caller with its name and message; the next call works; memory stays flat', async () => {
      const ids = prompts(one.config.vocabSize);
      await assert.rejects(two.forward(ids, { hooks: { interventions: [{ point: 'blocks.99.mlp.up', op: 'zero', units: [1] }] } }), (e: Error) => e.name === 'HookError' && /layer 99 does not exist/.test(e.message));
      await assert.rejects(two.forward(ids, { hooks: { interventions: [{ point: 'blocks.0.mlp.up', op: 'zero', perRow: [[1]] }] } }), HookError);
      const before = tf.memory().numTensors;
      const a = await one.forward(ids, {});
      const b = await two.forward(ids, {});
      assert.ok(identical(a.logits!.data, b.logits!.data));
      assert.equal(two.activeWorkers, 2);
      assert.equal(tf.memory().numTensors, before, 'the pooled call leaves no tensor on this thread');
    });

    test('a worker killed during a call: that call runs on this thread, the pool replaces the worker, the next call runs on 2 workers; same results', async () => {
      const ids = prompts(one.config.vocabSize);
      const a = await one.forward(ids, { logits: 'all' });
      const [victim] = two.threads;
      assert.ok(victim, 'the pool has threads');
      const during = two.forward(ids, { logits: 'all' });
      await victim.terminate();
      assert.ok(identical(a.logits!.data, (await during).logits!.data), 'the failed-over call');
      const next = await two.forward(ids, { logits: 'all' });
      assert.ok(identical(a.logits!.data, next.logits!.data), 'the next call');
      assert.equal(two.activeWorkers, 2);
      assert.equal(two.threads.length, 2, 'the killed worker was replaced');
      assert.ok(!two.threads.includes(victim));
      assert.deepEqual((await two.generate(ids, { maxNewTokens: 3 })).tokens, (await one.generate(ids, { maxNewTokens: 3 })).tokens);
    });

    test('custom hooks (functions) run on the calling thread, with the same result', async () => {
      const ids = prompts(one.config.vocabSize);
      const custom: Hooks = { custom: [{ point: 'blocks.0.mlp.up', fn: (x) => tf.mul(x, 0.5) }] };
      const a = await one.forward(ids, { hooks: custom });
      const b = await two.forward(ids, { hooks: custom });
      assert.ok(identical(a.logits!.data, b.logits!.data));
    });
  });
}

describe('a worker out of memory', () => {
  test("a part too large for a worker's memory is refused there with the planner's advice; the workers stay, and the next call gives the one-thread result", async () => {
    const dir = join(work, 'tiny-small-memory');
    await convertCheckpoint({ inputDir: join(fixturesDir, 'tiny-llama-bf16'), outputDir: dir, dtype: 'float32' });
    // A device of 5 MB (the workers read the same setting): the weights and parts of short prompts fit, 16 rows × 64 tokens do not.
    const saved = process.env['RSN_DEVICE_MEMORY_GB'];
    process.env['RSN_DEVICE_MEMORY_GB'] = '0.005';
    let one: LlamaModel | null = null;
    let two: ParallelModel | null = null;
    try {
      // The one-thread reference holds a whole call: a budget of its own.
      one = await LlamaModel.load(dir, { backend: 'wasm', log: null, memoryBytes: 1e9 });
      two = await ParallelModel.load(dir, { backend: 'wasm', workers: 2, log: null });
      const long = Array.from({ length: 40 }, (_, r) => Array.from({ length: 64 }, (_, i) => (i * 7 + r) % 300));
      await assert.rejects(two.forward(long), (e: Error) =>
        e.name === 'OutOfMemoryError' && /batch 16 × 64 tokens needs [\d.]+ MB resident .* but the device has 5\.0 MB; the resident plan fits with batch size ≤ \d+/.test(e.message) && /worker thread of row part/.test(e.stack ?? ''));
      const ids = prompts(one.config.vocabSize);
      const a = await one.forward(ids, { logits: 'all' });
      const b = await two.forward(ids, { logits: 'all' });
      assert.ok(identical(a.logits!.data, b.logits!.data), 'the next call, on the same workers');
      assert.equal(two.activeWorkers, 2);
    } finally {
      one?.dispose();
      two?.dispose();
      if (saved === undefined) delete process.env['RSN_DEVICE_MEMORY_GB'];
      else process.env['RSN_DEVICE_MEMORY_GB'] = saved;
    }
  });
});

describe('how many workers', () => {
  const c = parseLlamaConfig({ hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 32, vocab_size: 32000, rms_norm_eps: 1e-5 });
  const perWorker = (plan: 'resident' | 'streamed') => predictMemory(c, { batchSize: 32, promptLength: 32, newTokens: 2 }, plan).peakBytes;

  test('as asked when memory holds them; fewer, said, when host memory cannot hold the copies', () => {
    assert.equal(workerCount({ requested: 2, perWorkerBytes: perWorker('resident'), hostFreeBytes: 1e12, cores: 2 }), 2);
    assert.equal(workerCount({ requested: 4, perWorkerBytes: perWorker('resident'), hostFreeBytes: 1e12, cores: 2 }), 4);
    const lines: string[] = [];
    // 7B resident is ≈ 27 GB a copy: 40 GB free holds one copy, not three.
    assert.equal(workerCount({ requested: 3, perWorkerBytes: perWorker('resident'), log: (l) => lines.push(l), hostFreeBytes: 40e9, cores: 4 }), 1);
    assert.match(lines[0]!, /3 asked for, but host memory \(40\.0 GB free\) holds 1 copy .*using one thread/);
    assert.equal(workerCount({ requested: 3, perWorkerBytes: perWorker('streamed'), hostFreeBytes: 40e9, cores: 4 }), 3, 'the streamed plan holds one layer per worker');
  });

  test('a model built in memory gets no workers (they load from a directory), and still runs', async () => {
    const small = parseLlamaConfig({ hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 2, vocab_size: 16, rms_norm_eps: 1e-5 });
    const shapes = new Map(expectedTensors(small).map((t) => [t.name, t.shape]));
    const local = await LlamaModel.fromArrays(small, (name) => ({ data: new Float32Array(shapes.get(name)!.reduce((x, y) => x * y, 1)).fill(0.01), shape: shapes.get(name)! }), { backend: 'wasm', log: null });
    const m = ParallelModel.wrap(local, { workers: 2, log: null });
    try {
      assert.equal(m.workers, 1);
      assert.equal(m.info.dir, null);
      const r = await m.forward([[1, 2, 3], [1, 4]]);
      assert.equal(m.activeWorkers, 0);
      assert.deepEqual(r.logits!.shape, [2, 16]);
    } finally {
      m.dispose();
    }
  });

  test('RSN_WORKERS and the option are checked; 10^6 workers are refused, naming the setting', () => {
    assert.equal(requestedWorkers(undefined, { RSN_WORKERS: '3' }, 2), 3);
    assert.equal(requestedWorkers(undefined, {}, 2), 2, 'default: the available cores');
    assert.throws(() => requestedWorkers(undefined, { RSN_WORKERS: 'two' }), (e: Error) => e instanceof ConfigError && /RSN_WORKERS="two": expected a positive integer/.test(e.message));
    assert.throws(() => requestedWorkers(undefined, { RSN_WORKERS: '0' }), ConfigError);
    assert.throws(() => requestedWorkers(0), /workers must be a positive integer/);
    assert.equal(maxWorkers(2), 8);
    assert.equal(requestedWorkers(8, {}, 2), 8);
    assert.throws(() => requestedWorkers(1e6, {}, 2), (e: Error) => e instanceof RangeError && /^workers: 1000000 asked for, but at most 8 are allowed/.test(e.message));
    assert.throws(() => requestedWorkers(undefined, { RSN_WORKERS: '1000000' }, 2), (e: Error) => e instanceof ConfigError && /^RSN_WORKERS=1000000: at most 8 workers are allowed/.test(e.message));
  });

  test('ParallelModel refuses 10^6 workers before loading anything', async () => {
    await assert.rejects(ParallelModel.load('/nonexistent-model-dir', { workers: 1e6, log: null }), /workers: 1000000 asked for, but at most/);
  });

  test('host memory: the cgroup v2 limit, else v1, bounds what is available', () => {
    const files = (m: Record<string, string>) => (f: string) => {
      if (!(f in m)) throw new Error(`ENOENT ${f}`);
      return m[f]!;
    };
    assert.equal(cgroupAvailableBytes(files({ '/sys/fs/cgroup/memory.max': '8000000000\n', '/sys/fs/cgroup/memory.current': '3000000000\n' })), 5e9);
    assert.equal(cgroupAvailableBytes(files({ '/sys/fs/cgroup/memory.max': 'max\n', '/sys/fs/cgroup/memory.current': '3000000000\n' })), null);
    assert.equal(cgroupAvailableBytes(files({ '/sys/fs/cgroup/memory/memory.limit_in_bytes': '4000000000', '/sys/fs/cgroup/memory/memory.usage_in_bytes': '1000000000' })), 3e9);
    assert.equal(cgroupAvailableBytes(files({ '/sys/fs/cgroup/memory/memory.limit_in_bytes': '9223372036854771712' })), null, 'v1 "no limit"');
    assert.equal(cgroupAvailableBytes(files({ '/sys/fs/cgroup/memory.max': '1000', '/sys/fs/cgroup/memory.current': '5000' })), 0, 'over the limit: nothing left');
    assert.equal(cgroupAvailableBytes(files({})), null);
  });

  test('rows are cut into contiguous parts of a fixed size, whatever the worker count', () => {
    assert.deepEqual(rowRanges(19, 8), [[0, 8], [8, 16], [16, 19]]);
    assert.deepEqual(rowRanges(8, 8), [[0, 8]]);
    assert.deepEqual(rowRanges(1, 8), [[0, 1]]);
    assert.deepEqual(rowRanges(0, 8), []);
    assert.throws(() => rowRanges(4, 0), RangeError);
  });
});
