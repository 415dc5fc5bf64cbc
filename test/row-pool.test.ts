/**
 * The row pool (lib/model/row-pool.ts): a call's rows split over worker threads, each with the
 * model on its own wasm backend, give the single-thread results bit for bit: logits, pooled and
 * full records, greedy tokens with per-row interventions (with and without the KV cache), on the
 * fixture and on the organism. Errors in a worker reach the caller with their name and message
 * and the next call works; custom hooks run on the calling thread; the worker count follows
 * RSN_WORKERS and host memory, and is 1 on a GPU backend.
 *
 * Run: node --import tsx --test test/row-pool.test.ts
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, HookError } from '../lib/errors.ts';
import { parseLlamaConfig } from '../lib/model/config.ts';
import type { Hooks } from '../lib/model/hooks.ts';
import { LlamaModel } from '../lib/model/llama.ts';
import { requestedWorkers, rowPoolSize } from '../lib/model/row-pool-size.ts';
import { splitRows } from '../lib/model/row-pool.ts';
import { prepareModel } from '../lib/notebook/model.ts';
import { convertCheckpoint } from '../weights-converter/convert.ts';
import { fixturesDir } from './helpers/reference.ts';

const work = mkdtempSync(join(tmpdir(), 'rsn-row-pool-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

const identical = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));

/** Prompts of different lengths (so rows are padded), and an odd count (so the split is uneven). */
function prompts(vocab: number): number[][] {
  const lengths = [7, 3, 12, 1, 9, 5, 12];
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
  describe(`${name}: 2 workers give the single-thread results bit for bit`, () => {
    let one: LlamaModel;
    let two: LlamaModel;
    before(async () => {
      let dir: string;
      if (name === 'organism') dir = (await prepareModel('data/organism')).dir;
      else {
        dir = join(work, 'tiny');
        await convertCheckpoint({ inputDir: join(fixturesDir, 'tiny-llama-bf16'), outputDir: dir, dtype: 'float32' });
      }
      one = await LlamaModel.load(dir, { backend: 'wasm', workers: 1, log: null });
      two = await LlamaModel.load(dir, { backend: 'wasm', workers: 2, log: null });
    });
    after(() => {
      one.dispose();
      two.dispose();
    });

    test('forward: logits at every position, mean and full records, per-row interventions', async () => {
      const ids = prompts(one.config.vocabSize);
      const hooks: Hooks = { ...perRowHooks(ids, one.config.intermediateSize), record: [{ point: 'blocks.1.mlp.down', mode: 'mean', skipFirstToken: true }, { point: 'blocks.0.mlp.act', mode: 'full' }] };
      const a = await one.forward(ids, { hooks, logits: 'all' });
      const b = await two.forward(ids, { hooks, logits: 'all' });
      assert.equal(two.activeWorkers, 2, 'the call ran on 2 worker threads');
      assert.equal(one.activeWorkers, 0);
      assert.deepEqual(b.logits!.shape, a.logits!.shape);
      assert.deepEqual([b.seqLen, b.lengths], [a.seqLen, a.lengths]);
      assert.ok(identical(a.logits!.data, b.logits!.data), 'logits differ');
      for (const [point, rec] of a.records) {
        const other = b.records.get(point)!;
        assert.deepEqual(other.shape, rec.shape, point);
        assert.ok(identical(rec.data, other.data), `${point}: records differ`);
      }
      // And the pool's rows are the rows: row 2 alone equals row 2 of the batch (as padded alone).
      const alone = await one.forward([ids[2]!], { logits: 'last' });
      const batch = await two.forward(ids, { logits: 'last' });
      const V = one.config.vocabSize;
      assert.ok(Math.max(...alone.logits!.data.map((v, i) => Math.abs(v - batch.logits!.data[2 * V + i]!))) < 1e-5);
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

    test('custom hooks (functions) run on the calling thread, with the same result', async () => {
      const ids = prompts(one.config.vocabSize);
      const custom: Hooks = { custom: [{ point: 'blocks.0.mlp.up', fn: (x) => tf.mul(x, 0.5) }] };
      const a = await one.forward(ids, { hooks: custom });
      const b = await two.forward(ids, { hooks: custom });
      assert.ok(identical(a.logits!.data, b.logits!.data));
    });
  });
}

describe('how many workers', () => {
  const c = parseLlamaConfig({ hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 32, vocab_size: 32000, rms_norm_eps: 1e-5 });
  test('as asked on wasm/cpu; one on a GPU backend; fewer when host memory cannot hold the copies', () => {
    assert.equal(rowPoolSize(c, 'resident', 'wasm', 2, null, 1e12), 2);
    assert.equal(rowPoolSize(c, 'resident', 'cpu', 4, null, 1e12), 4);
    assert.equal(rowPoolSize(c, 'resident', 'webgpu', 4, null, 1e12), 1);
    assert.equal(rowPoolSize(c, 'resident', 'tensorflow-gpu', 4, null, 1e12), 1);
    const lines: string[] = [];
    // 7B resident is ≈ 27 GB a copy: 40 GB free holds one more copy, not three.
    assert.equal(rowPoolSize(c, 'resident', 'wasm', 3, (l) => lines.push(l), 40e9), 1);
    assert.match(lines[0]!, /3 asked for, but host memory \(40\.0 GB free\) holds 1 more copy of the model .*using this thread only/);
    assert.equal(rowPoolSize(c, 'streamed', 'wasm', 3, null, 40e9), 3, 'the streamed plan holds one layer per worker');
  });

  test('RSN_WORKERS and the option are checked', () => {
    assert.equal(requestedWorkers(undefined, { RSN_WORKERS: '3' }), 3);
    assert.throws(() => requestedWorkers(undefined, { RSN_WORKERS: 'two' }), (e: Error) => e instanceof ConfigError && /RSN_WORKERS="two": expected a positive integer/.test(e.message));
    assert.throws(() => requestedWorkers(undefined, { RSN_WORKERS: '0' }), ConfigError);
    assert.throws(() => requestedWorkers(0), /workers must be a positive integer/);
  });

  test('rows split into contiguous, even, non-empty ranges', () => {
    assert.deepEqual(splitRows(7, 2), [[0, 3], [3, 7]]);
    assert.deepEqual(splitRows(1, 4), [[0, 1]]);
    assert.deepEqual(splitRows(6, 3), [[0, 2], [2, 4], [4, 6]]);
  });
});
