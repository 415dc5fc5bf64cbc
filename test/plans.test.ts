/**
 * Execution plans (resident vs layer-streamed) and the memory planner, on both fixtures with
 * float32 and float16 storage.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { convertCheckpoint } from '../weights-converter/convert.ts';
import { LlamaModel } from '../lib/model/llama.ts';
import { checkWeightsFit, choosePlan, predictMemory } from '../lib/model/memory-plan.ts';
import { OutOfMemoryError } from '../lib/errors.ts';
import { initBackend } from '../lib/backend.ts';
import { fixturesDir, loadReference, maxAbsDiff } from './helpers/reference.ts';
import { parseLlamaConfig } from '../lib/model/config.ts';

const ref = loadReference();
const work = mkdtempSync(join(tmpdir(), 'rsn-plans-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

const record = [0, 1, 2].flatMap((l) => (['gate', 'up', 'down'] as const).map((s) => ({ point: `blocks.${l}.mlp.${s}`, mode: 'mean' as const })));
const zero = [{ point: 'blocks.1.mlp.gate', op: 'zero' as const, units: [0, 3, 9, 27, 81] }, { point: 'blocks.2.mlp.down', op: 'zero' as const, units: [10] }];

for (const fixture of ['tiny-llama-bf16', 'tiny-llama-f32-sharded']) {
  for (const dtype of ['float32', 'float16'] as const) {
    describe(`${fixture}, ${dtype} storage: resident and streamed agree`, () => {
      const dir = join(work, `${fixture}-${dtype}`);
      let resident: LlamaModel;
      let streamed: LlamaModel;
      /** What each model holds between calls (both models share the process, and tf.memory counts both). */
      const ownBytes = new Map<LlamaModel, number>();
      before(async () => {
        await convertCheckpoint({ inputDir: join(fixturesDir, fixture), outputDir: dir, dtype });
        await initBackend({ log: null });
        let before = tf.memory().numBytes;
        resident = await LlamaModel.load(dir, { log: null, plan: 'resident' });
        ownBytes.set(resident, tf.memory().numBytes - before);
        before = tf.memory().numBytes;
        streamed = await LlamaModel.load(dir, { log: null, plan: 'streamed' });
        ownBytes.set(streamed, tf.memory().numBytes - before);
        assert.equal(resident.plan, 'resident');
        assert.equal(streamed.plan, 'streamed');
      });
      after(() => {
        resident?.dispose();
        streamed?.dispose();
      });

      test('logits, pooled activations and greedy tokens (also masked) are the same and match the reference', async () => {
        const seqs = ref.cases.map((c) => c.input_ids);
        const a = await resident.forward(seqs, { logits: 'all', hooks: { record } });
        const b = await streamed.forward(seqs, { logits: 'all', hooks: { record } });
        assert.ok(maxAbsDiff(Array.from(a.logits!.data), b.logits!.data) < 1e-5);
        for (const r of record) assert.ok(maxAbsDiff(Array.from(a.records.get(r.point)!.data), b.records.get(r.point)!.data) < 1e-5, r.point);
        ref.cases.forEach((c, i) => {
          const off = (i * a.seqLen + a.seqLen - c.input_ids.length) * 300;
          assert.ok(maxAbsDiff(c.logits.flat(), b.logits!.data, off) < 1e-3);
        });
        const ga = await resident.generate(seqs, { maxNewTokens: 4, hooks: { interventions: zero } });
        const gb = await streamed.generate(seqs, { maxNewTokens: 4, hooks: { interventions: zero } });
        assert.deepEqual(gb.tokens, ga.tokens);
        assert.deepEqual((await streamed.generate(seqs, { maxNewTokens: 4 })).tokens, ref.cases.map((c) => c.greedy_4));
      });

      test('the streamed plan holds only the global weights between calls', async () => {
        const before = tf.memory().numTensors;
        await streamed.forward([ref.cases[5]!.input_ids]);
        await streamed.generate([ref.cases[5]!.input_ids], { maxNewTokens: 3 });
        assert.equal(tf.memory().numTensors, before);
      });

      test('the planner is within 10 % of what the decoder allocates (forward, generation, micro-batches, hooks)', async () => {
        const ids = (B: number, T: number) => Array.from({ length: B }, (_, b) => Array.from({ length: T }, (_, t) => ((b * 7 + t * 13) % 299) + 1));
        // One zeroed and one scaled point in every layer: the planner counts intervened points per layer.
        const hooked = [0, 1, 2].flatMap((l) => [{ point: `blocks.${l}.mlp.gate`, op: 'zero' as const, units: [1, 2] }, { point: `blocks.${l}.mlp.act`, op: 'scale' as const, value: 2, units: [5] }]);
        const cases = [
          { B: 32, T: 16, logits: 'last' as const },
          { B: 128, T: 24, logits: 'none' as const },
          { B: 8, T: 64, logits: 'all' as const },
          { B: 32, T: 16, newTokens: 4 },
          { B: 64, T: 8, newTokens: 2, microBatch: 16 },
          { B: 32, T: 16, hooks: true },
          { B: 30, T: 20, newTokens: 2, microBatch: 7, hooks: true },
        ];
        for (const m of [resident, streamed]) {
          for (const c of cases) {
            const hooks = c.hooks ? { interventions: hooked } : undefined;
            const base = tf.memory().numBytes;
            const { peakBytes } = await m.measurePeak((): Promise<unknown> =>
              c.newTokens ? m.generate(ids(c.B, c.T), { maxNewTokens: c.newTokens, microBatch: c.microBatch, hooks }) : m.forward(ids(c.B, c.T), { logits: c.logits, microBatch: c.microBatch, hooks }),
            );
            const chunked = (c.microBatch ?? c.B) < c.B;
            const p = m.predict({
              batchSize: c.B,
              microBatch: c.microBatch,
              promptLength: c.T + (chunked ? (c.newTokens ?? 1) - 1 : 0),
              newTokens: chunked ? 0 : c.newTokens,
              logits: c.logits,
              hookedFfnSitesPerLayer: c.hooks ? 2 : 0,
            });
            // Resident: weights are allocated before the call, so compare what the call allocates.
            // Streamed: layer weights come and go during the call, so compare the model's whole peak.
            const [predicted, measured] = m.plan === 'resident' ? [p.activationBytes + p.kvCacheBytes, peakBytes - base] : [p.peakBytes, peakBytes - base + ownBytes.get(m)!];
            assert.ok(Math.abs(predicted / measured - 1) <= 0.1, `${m.plan} ${JSON.stringify(c)}: predicted ${predicted}, measured ${measured} (ratio ${(predicted / measured).toFixed(3)})`);
          }
        }
      });
    });
  }
}

describe('memory budget', () => {
  test('a plan whose weights alone do not fit is refused at load, before any upload, naming the embedding and LM head', async () => {
    const dir = join(work, 'tiny-llama-bf16-float32');
    const tensorsBefore = tf.memory().numTensors;
    for (const plan of ['resident', 'streamed'] as const) {
      await assert.rejects(LlamaModel.load(dir, { log: null, plan, memoryBytes: 1e5 }), (e: Error) => {
        assert.ok(e instanceof OutOfMemoryError, String(e));
        assert.match(e.message, new RegExp(`the ${plan} plan keeps .* of weights on the device \\(the embedding and the LM head alone .*: two float32 copies of 300 × 64\\), more than the [\\d.]+ MB it can hold`));
        return true;
      });
    }
    assert.equal(tf.memory().numTensors, tensorsBefore);
    // Full-size shapes against wasm's 4 GiB heap: Gemma-7B's 256,000 × 3072 tied embedding (two float32 copies,
    // 6.3 GB) cannot be held under any plan; Llama-2-7B's (1.05 GB) can, streamed.
    const wasmHeap = 4 * 2 ** 30;
    const gemma7b = parseLlamaConfig({ model_type: 'gemma', hidden_size: 3072, intermediate_size: 24576, num_hidden_layers: 28, num_attention_heads: 16, num_key_value_heads: 16, head_dim: 256, rms_norm_eps: 1e-6, vocab_size: 256000, max_position_embeddings: 8192, hidden_activation: 'gelu_pytorch_tanh' });
    assert.throws(() => checkWeightsFit(gemma7b, 'streamed', wasmHeap), /6\.3 GB: two float32 copies of 256000 × 3072/);
    const llama7b = parseLlamaConfig({ model_type: 'llama', hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 32, rms_norm_eps: 1e-5, vocab_size: 32000, max_position_embeddings: 4096 });
    checkWeightsFit(llama7b, 'streamed', wasmHeap);
    assert.throws(() => checkWeightsFit(llama7b, 'resident', wasmHeap), /try the streamed plan/);
  });

  test('a too-small budget gives the planner\'s error, naming what would fit, before any work', async () => {
    const dir = join(work, 'tiny-llama-bf16-float32');
    const m = await LlamaModel.load(dir, { log: null, plan: 'resident', memoryBytes: 1.2e6 });
    try {
      const batch = Array.from({ length: 64 }, () => ref.cases[5]!.input_ids);
      const tensorsBefore = tf.memory().numTensors;
      const err = await m.forward(batch).then(
        () => null,
        (e: Error) => e,
      );
      assert.ok(err instanceof OutOfMemoryError, String(err));
      assert.match(err.message, /batch 64 × 17 tokens needs .* resident \/ .* streamed, but the device has [\d.]+ MB; the resident plan fits with batch size ≤ \d+/);
      assert.equal(tf.memory().numTensors, tensorsBefore);
      // The size it names really fits.
      const fit = Number(/batch size ≤ (\d+)/.exec(err.message)![1]);
      assert.ok(fit >= 1 && fit < 64);
      await m.forward(batch.slice(0, fit));
    } finally {
      m.dispose();
    }
  });

  test('plan "auto" picks resident when it fits and streamed when only that fits; nothing fitting is an error', async () => {
    const dir = join(work, 'tiny-llama-bf16-float16');
    const lines: string[] = [];
    const small = await LlamaModel.load(dir, { plan: 'auto', memoryBytes: 100e6, log: (l) => lines.push(l) });
    assert.equal(small.plan, 'resident');
    small.dispose();
    const w = { batchSize: 16, promptLength: 17 };
    const cfg = (await LlamaModel.load(dir, { log: null })).config;
    const r = predictMemory(cfg, w, 'resident').peakBytes;
    const s = predictMemory(cfg, w, 'streamed').peakBytes;
    assert.ok(s < r);
    const between = (r + s) / 2;
    const m = await LlamaModel.load(dir, { plan: 'auto', workload: w, memoryBytes: between, log: (l) => lines.push(l) });
    assert.equal(m.plan, 'streamed');
    m.dispose();
    assert.match(lines.at(-1)!, /resident needs .* [MG]B, device has .* [MG]B → streamed, peak .* [MG]B/);
    const one = predictMemory(cfg, { ...w, batchSize: 1 }, 'streamed').peakBytes;
    assert.throws(() => choosePlan(cfg, w, one / 2, 'tiny'), /tiny: batch 16 × 17 tokens needs .* but the device has .*; nothing fits: even one prompt needs/);
  });
});

describe('layer-major micro-batches', () => {
  test('a call split into micro-batches gives the unsplit results, and a streamed model reads each layer once per call', async () => {
    const dir = join(work, 'tiny-llama-bf16-float16');
    const resident = await LlamaModel.load(dir, { log: null });
    const streamed = await LlamaModel.load(dir, { log: null, plan: 'streamed' });
    try {
      const seqs = [...ref.cases, ...ref.cases].map((c) => c.input_ids);
      const perRow = { point: 'blocks.1.mlp.up', op: 'zero' as const, perRow: seqs.map((_, i) => (i % 3 === 0 ? [1, 2, 3, 100] : [])) };
      const hooks = { record, interventions: [...zero, perRow] };
      const whole = await resident.forward(seqs, { logits: 'all', hooks });
      const stats = (streamed.weights as { stats?: { layerLoads: number } }).stats!;
      const loadsBefore = stats.layerLoads;
      const split = await streamed.forward(seqs, { logits: 'all', hooks, microBatch: 5 });
      assert.equal(stats.layerLoads - loadsBefore, 3, 'three layers, each read once for all three micro-batches');
      assert.deepEqual(split.logits!.shape, whole.logits!.shape);
      assert.ok(maxAbsDiff(Array.from(whole.logits!.data), split.logits!.data) < 1e-5);
      for (const r of record) {
        assert.deepEqual(split.records.get(r.point)!.shape, whole.records.get(r.point)!.shape);
        assert.ok(maxAbsDiff(Array.from(whole.records.get(r.point)!.data), split.records.get(r.point)!.data) < 1e-5, r.point);
      }
      const gWhole = await resident.generate(seqs, { maxNewTokens: 4, hooks: { interventions: [...zero, perRow] } });
      const gSplit = await streamed.generate(seqs, { maxNewTokens: 4, hooks: { interventions: [...zero, perRow] }, microBatch: 4 });
      assert.deepEqual(gSplit.tokens, gWhole.tokens);
      assert.deepEqual((await streamed.generate(seqs, { maxNewTokens: 4, microBatch: 3 })).tokens, [...ref.cases, ...ref.cases].map((c) => c.greedy_4));
      const lastOnly = await streamed.forward(seqs, { microBatch: 4 });
      ref.cases.forEach((c, i) => assert.ok(maxAbsDiff(c.logits[c.logits.length - 1]!, lastOnly.logits!.data, i * 300) < 1e-3));
    } finally {
      resident.dispose();
      streamed.dispose();
    }
  });

  test('plan "auto" falls back to streamed micro-batches when the whole batch does not fit streamed', async () => {
    const dir = join(work, 'tiny-llama-bf16-float16');
    const probe = await LlamaModel.load(dir, { log: null });
    const cfg = probe.config;
    probe.dispose();
    const w = { batchSize: 256, promptLength: 17 };
    const budget = (predictMemory(cfg, { ...w, microBatch: 16 }, 'streamed').peakBytes + predictMemory(cfg, { ...w, microBatch: 17 }, 'streamed').peakBytes) / 2;
    const lines: string[] = [];
    const m = await LlamaModel.load(dir, { plan: 'auto', workload: w, memoryBytes: budget, log: (l) => lines.push(l) });
    try {
      assert.equal(m.plan, 'streamed');
      assert.equal(m.microBatch, 16);
      assert.match(lines.at(-1)!, /→ streamed in micro-batches of 16/);
      const seqs = Array.from({ length: 256 }, (_, i) => ref.cases[i % 6]!.input_ids);
      const { peakBytes } = await m.measurePeak(() => m.forward(seqs, { logits: 'none' }));
      assert.ok(peakBytes <= budget * 1.25, `measured ${peakBytes} vs budget ${budget}`);
    } finally {
      m.dispose();
    }
  });
});
