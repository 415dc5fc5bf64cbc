/**
 * The webgpu backend for real: Dawn over Vulkan (on a machine without a GPU, Mesa's software
 * adapter, installed by the project's setup). Fails — never skips — when no adapter is found.
 * Checks the backend against the independent reference (llama2.c's model.py outputs on the
 * fixture), that device errors (a binding over the adapter's limit, too many storage buffers)
 * become a DeviceError naming the call instead of silently wrong numbers, that the next call
 * works, and that nothing leaks, including across calls that throw.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { checkDeviceErrors, initBackend, type BackendChoice } from '../lib/backend.ts';
import { DeviceError } from '../lib/errors.ts';
import { parseLlamaConfig } from '../lib/model/config.ts';
import { LlamaModel } from '../lib/model/llama.ts';
import { deviceWidensHalf, halfBitsToTensor } from '../lib/model/half-upload.ts';
import { halfToFloat } from '../lib/half.ts';
import { convertCheckpoint } from '../weights-converter/convert.ts';
import { fixturesDir, loadReference, maxAbsDiff } from './helpers/reference.ts';
import { randomWeights } from '../bench/shared.ts';

const work = mkdtempSync(join(tmpdir(), 'rsn-webgpu-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

let choice: BackendChoice;
const logs: string[] = [];

before(async () => {
  try {
    choice = await initBackend({ backend: 'webgpu', log: (l) => logs.push(l) });
  } catch (e) {
    throw new Error(`webgpu tests need a Vulkan adapter and found none — ${(e as Error).message}. Run \`npx tsx scripts/vulkan-setup.ts\` (as root on Debian 12) or see README "GPU".`);
  }
});

describe('webgpu backend', () => {
  test('initialises on a real adapter and names it', () => {
    assert.equal(choice.name, 'webgpu');
    assert.equal(tf.getBackend(), 'webgpu');
    assert.ok(choice.adapter, 'no adapter description');
    assert.ok(choice.adapter.maxStorageBufferBindingSize > 0);
    assert.match(logs.join('\n'), /\[rsn\] backend: webgpu on .+\(forced by argument\)/);
  });

  test('device errors become a DeviceError naming the call; the next call works', async () => {
    const limit = choice.adapter!.maxStorageBufferBindingSize;
    const cases: [string, () => tf.Tensor, RegExp][] = [
      // One element more than a binding may hold.
      ['an oversized binding', () => tf.sum(tf.ones([Math.floor(limit / 4) + 1024])), /storage buffer binding size/i],
      // addN binds every input; TF.js asks the device for 8 storage buffers per stage.
      ['too many storage buffers', () => tf.addN(Array.from({ length: 20 }, (_, i) => tf.scalar(i + 1))), /storage buffers/i],
    ];
    for (const [name, op] of cases) {
      const before = tf.memory().numTensors;
      const t = tf.tidy(op);
      await t.data();
      t.dispose();
      assert.throws(() => checkDeviceErrors(name), (e: unknown) => e instanceof DeviceError && e.message.includes(`during ${name}`) && e.deviceMessages.some((m) => (cases.find((c) => c[0] === name)![2]).test(m)), name);
      assert.equal(tf.memory().numTensors, before, `${name}: tensors leaked`);
      // The next call works and is right.
      const ok = tf.tidy(() => tf.addN([tf.scalar(1), tf.scalar(2), tf.scalar(3)]));
      assert.deepEqual(Array.from(await ok.data()), [6]);
      ok.dispose();
      checkDeviceErrors(`the call after ${name}`);
    }
  });

  test('a model call whose activations exceed a binding throws a DeviceError naming forward; the next call is right', async () => {
    const limit = choice.adapter!.maxStorageBufferBindingSize;
    // A narrow model whose FFN activations for a full batch exceed one binding: [B·T, FFN] floats > limit.
    const T = 64;
    const ffn = 2048;
    const B = Math.ceil(limit / (T * ffn * 4)) + 1;
    const config = parseLlamaConfig({
      hidden_size: 32, intermediate_size: ffn, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 2,
      vocab_size: 64, rms_norm_eps: 1e-5, rope_theta: 10000, max_position_embeddings: T, bos_token_id: 1, eos_token_id: 2,
    });
    const model = await LlamaModel.fromArrays(config, randomWeights(config, 3), { log: null });
    const rows = Array.from({ length: B }, (_, b) => Array.from({ length: T }, (_, t) => 1 + ((b * 7 + t * 3) % 60)));
    const before = tf.memory().numTensors;
    await assert.rejects(model.forward(rows, { logits: 'last' }), (e: unknown) => e instanceof DeviceError && /during forward on the in-memory model \(batch \d+ × 64 tokens\)/.test(e.message));
    assert.equal(tf.memory().numTensors, before, 'tensors leaked by the failed call');
    // Row results do not depend on the batch: the first two rows alone, after the failure, match them one by one.
    const pair = await model.forward(rows.slice(0, 2), { logits: 'last' });
    for (let b = 0; b < 2; b++) {
      const one = await model.forward([rows[b]!], { logits: 'last' });
      assert.ok(maxAbsDiff(Array.from(one.logits!.data), pair.logits!.data, b * config.vocabSize) < 1e-5);
    }
    assert.equal(tf.memory().numTensors, before);
    model.dispose();
  });

  test('float16 bits are widened on the device, exactly, for every finite half (odd lengths too)', async () => {
    assert.equal(deviceWidensHalf(), true);
    const bits = Uint16Array.from({ length: 65535 }, (_, i) => i + 1).filter((h) => (h & 0x7c00) !== 0x7c00); // odd count
    assert.equal(bits.length % 2, 1);
    const t = halfBitsToTensor(bits, [bits.length]);
    const v = await t.data();
    t.dispose();
    let wrong = 0;
    bits.forEach((h, i) => {
      if (!Object.is(v[i], halfToFloat(h))) wrong++;
    });
    assert.equal(wrong, 0, `${wrong} of ${bits.length} halves widened wrongly`);
    checkDeviceErrors('half widening');
  });

  test('the fixture on webgpu matches the independent reference (logits < 1e-3, identical greedy tokens), both storage dtypes, no leaks', async () => {
    const ref = loadReference();
    for (const dtype of ['float32', 'float16'] as const) {
      const dir = join(work, `tiny-${dtype}`);
      await convertCheckpoint({ inputDir: join(fixturesDir, 'tiny-llama-bf16'), outputDir: dir, dtype });
      const model = await LlamaModel.load(dir, { log: null });
      const before = tf.memory().numTensors;
      let worst = 0;
      for (const c of ref.cases) {
        const r = await model.forward([c.input_ids], { logits: 'all' });
        worst = Math.max(worst, maxAbsDiff(c.logits.flat(), r.logits!.data));
        const g = await model.generate([c.input_ids], { maxNewTokens: c.greedy_4.length });
        assert.deepEqual(g.tokens[0], c.greedy_4, `${dtype}: greedy tokens (KV cache)`);
        const n = await model.generate([c.input_ids], { maxNewTokens: c.greedy_4.length, useCache: false });
        assert.deepEqual(n.tokens[0], c.greedy_4, `${dtype}: greedy tokens (no cache)`);
      }
      assert.ok(worst < 1e-3, `${dtype}: max |Δlogit| ${worst}`);
      assert.equal(tf.memory().numTensors, before, `${dtype}: tensors leaked`);
      model.dispose();
    }
  });
});
