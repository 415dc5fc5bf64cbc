/**
 * The forward pass, hooks and greedy generation against an independent implementation
 * (test/fixtures/reference.json, from llama2.c's model.py), through the real converter.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { convertCheckpoint, type StorageDtype } from '../weights-converter/convert.ts';
import { LlamaModel } from '../lib/model/llama.ts';
import type { Intervention } from '../lib/model/hooks.ts';
import { HookError } from '../lib/errors.ts';
import { fixturesDir, loadReference, maxAbsDiff } from './helpers/reference.ts';

const ref = loadReference();
const work = mkdtempSync(join(tmpdir(), 'rsn-model-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

/**
 * Float32 storage holds the fixture's bf16 values exactly, so only accumulation order differs:
 * 1e-3 (the fixtures README's bound; we measure 1.7e-5). Float16 storage is exact too for
 * every bf16 value in half's normal range (bf16 has 8 significant bits, half 11); only values
 * below 2^-14 lose bits as half subnormals. Measured on these fixtures: max |Δlogit| 1.8e-5, so
 * the same 1e-3 holds. (A float32 checkpoint with full 24-bit mantissas would round to
 * 2^-11 relative per weight; for such checkpoints expect logit errors around 1e-3–1e-2.)
 */
const TOL: Record<StorageDtype, number> = { float32: 1e-3, float16: 1e-3 };

const SITES = ['gate', 'up', 'down'] as const;

function deactivationInterventions(): Intervention[] {
  const out: Intervention[] = [];
  for (const [layer, sites] of Object.entries(ref.deactivation.zeroed_units)) {
    for (const site of SITES) {
      if (sites[site].length) out.push({ point: `blocks.${layer}.mlp.${site}`, op: 'zero', units: sites[site] });
    }
  }
  return out;
}

for (const fixture of ['tiny-llama-bf16', 'tiny-llama-f32-sharded']) {
  for (const dtype of ['float32', 'float16'] as const) {
    describe(`${fixture} converted with ${dtype} storage`, () => {
      let model: LlamaModel;
      const tol = TOL[dtype];
      before(async () => {
        const out = join(work, `${fixture}-${dtype}`);
        await convertCheckpoint({ inputDir: join(fixturesDir, fixture), outputDir: out, dtype });
        model = await LlamaModel.load(out, { log: null });
      });
      after(() => model?.dispose());

      test('logits of every reference case', async () => {
        for (const c of ref.cases) {
          const r = await model.forward([c.input_ids], { logits: 'all' });
          assert.deepEqual(r.logits!.shape, [1, c.input_ids.length, 300]);
          const d = maxAbsDiff(c.logits.flat(), r.logits!.data);
          assert.ok(d < tol, `case len ${c.input_ids.length}: max |Δlogit| = ${d}`);
        }
      });

      test('gate/up/down outputs and their token means', async () => {
        const record = [];
        for (let l = 0; l < 3; l++) {
          for (const s of SITES) {
            record.push({ point: `blocks.${l}.mlp.${s}`, mode: 'full' as const });
            record.push({ point: `blocks.${l}.mlp.${s}`, mode: 'mean' as const });
          }
        }
        for (const c of ref.cases) {
          // A full and a mean record of the same point: use two calls so both are checked.
          const full = await model.forward([c.input_ids], { logits: 'none', hooks: { record: record.filter((r) => r.mode === 'full') } });
          const mean = await model.forward([c.input_ids], { logits: 'none', hooks: { record: record.filter((r) => r.mode === 'mean') } });
          for (let l = 0; l < 3; l++) {
            for (const s of SITES) {
              const key = `${l}.${s}`;
              const f = full.records.get(`blocks.${l}.mlp.${s}`)!;
              assert.deepEqual(f.shape, [1, c.input_ids.length, c.mlp_outputs[key]![0]!.length]);
              const d1 = maxAbsDiff(c.mlp_outputs[key]!.flat(), f.data);
              assert.ok(d1 < tol, `${key} full, len ${c.input_ids.length}: ${d1}`);
              const d2 = maxAbsDiff(c.mlp_outputs_mean_over_tokens[key]!, mean.records.get(`blocks.${l}.mlp.${s}`)!.data);
              assert.ok(d2 < tol, `${key} mean, len ${c.input_ids.length}: ${d2}`);
            }
          }
        }
      });

      test('4 greedy tokens, with and without the KV cache', async () => {
        for (const c of ref.cases) {
          const cached = await model.generate([c.input_ids], { maxNewTokens: 4 });
          const plain = await model.generate([c.input_ids], { maxNewTokens: 4, useCache: false });
          assert.deepEqual(cached.tokens[0], c.greedy_4);
          assert.deepEqual(plain.tokens[0], c.greedy_4);
        }
        // The whole set as one padded batch decodes the same tokens.
        const batch = await model.generate(ref.cases.map((c) => c.input_ids), { maxNewTokens: 4 });
        assert.deepEqual(batch.tokens, ref.cases.map((c) => c.greedy_4));
      });

      test('a padded batch reproduces every unpadded sequence; pooled means ignore padding', async () => {
        const seqs = ref.cases.map((c) => c.input_ids);
        const r = await model.forward(seqs, { logits: 'all', hooks: { record: [{ point: 'blocks.1.mlp.up', mode: 'mean' }, { point: 'blocks.2.mlp.down', mode: 'mean' }] } });
        const T = r.seqLen;
        assert.equal(T, 17);
        ref.cases.forEach((c, b) => {
          const len = c.input_ids.length;
          const offset = (b * T + (T - len)) * 300; // left padding: real tokens at the end of the row
          const d = maxAbsDiff(c.logits.flat(), r.logits!.data, offset);
          assert.ok(d < tol, `row ${b}: ${d}`);
          for (const [point, key, width] of [['blocks.1.mlp.up', '1.up', 172], ['blocks.2.mlp.down', '2.down', 64]] as const) {
            const dm = maxAbsDiff(c.mlp_outputs_mean_over_tokens[key]!, r.records.get(point)!.data, b * width);
            assert.ok(dm < tol, `row ${b} ${key} mean: ${dm}`);
          }
        });
      });

      test('deactivation: zeroed units reproduce its logits and greedy tokens', async () => {
        const interventions = deactivationInterventions();
        for (const c of ref.deactivation.cases) {
          const r = await model.forward([c.input_ids], { logits: 'all', hooks: { interventions } });
          const d = maxAbsDiff(c.logits.flat(), r.logits!.data);
          assert.ok(d < tol, `len ${c.input_ids.length}: ${d}`);
          assert.deepEqual((await model.generate([c.input_ids], { maxNewTokens: 4, hooks: { interventions } })).tokens[0], c.greedy_4);
          assert.deepEqual((await model.generate([c.input_ids], { maxNewTokens: 4, useCache: false, hooks: { interventions } })).tokens[0], c.greedy_4);
        }
      });
    });
  }
}

describe('hooks on the float32 model', () => {
  let model: LlamaModel;
  before(async () => {
    const out = join(work, 'hooks-f32');
    await convertCheckpoint({ inputDir: join(fixturesDir, 'tiny-llama-bf16'), outputDir: out, dtype: 'float32' });
    model = await LlamaModel.load(out, { log: null });
  });
  after(() => model?.dispose());

  test('per-row masks: each row carries its own units', async () => {
    const dc = ref.deactivation.cases;
    const plain = ref.cases;
    // Row 2i is deactivated, row 2i+1 is the same prompt untouched.
    const seqs = dc.flatMap((c) => [c.input_ids, c.input_ids]);
    const perRowInterventions: Intervention[] = deactivationInterventions().map((iv) => ({
      point: iv.point,
      op: 'zero',
      perRow: seqs.map((_, row) => (row % 2 === 0 ? iv.units! : [])),
    }));
    const gen = await model.generate(seqs, { maxNewTokens: 4, hooks: { interventions: perRowInterventions } });
    dc.forEach((c, i) => {
      assert.deepEqual(gen.tokens[2 * i], c.greedy_4, `deactivated row ${2 * i}`);
      const original = plain.find((p) => p.input_ids.join() === c.input_ids.join())!;
      assert.deepEqual(gen.tokens[2 * i + 1], original.greedy_4, `untouched row ${2 * i + 1}`);
    });
  });

  test('scale by 0 equals zero; set to 0 equals zero; scale by 1 changes nothing', async () => {
    const ids = ref.cases[4]!.input_ids;
    const units = [1, 2, 3, 50];
    const run = async (iv: Intervention[]) => (await model.forward([ids], { logits: 'all', hooks: { interventions: iv } })).logits!.data;
    const zero = await run([{ point: 'blocks.1.mlp.gate', op: 'zero', units }]);
    assert.ok(maxAbsDiff(Array.from(zero), await run([{ point: 'blocks.1.mlp.gate', op: 'scale', value: 0, units }])) === 0);
    assert.ok(maxAbsDiff(Array.from(zero), await run([{ point: 'blocks.1.mlp.gate', op: 'set', value: 0, units }])) === 0);
    const base = await run([]);
    assert.ok(maxAbsDiff(Array.from(base), await run([{ point: 'blocks.1.mlp.gate', op: 'scale', value: 1, units }])) === 0);
    assert.ok(maxAbsDiff(Array.from(base), zero) > 1e-4, 'zeroing must change the logits');
    // Setting a unit to a value shows up in the recorded activation at every position.
    const r = await model.forward([ids], { logits: 'none', hooks: { interventions: [{ point: 'blocks.0.attn.v', op: 'set', value: 3.5, units: [7] }], record: [{ point: 'blocks.0.attn.v', mode: 'full' }] } });
    const v = r.records.get('blocks.0.attn.v')!;
    const width = v.shape[2]!;
    for (let t = 0; t < ids.length; t++) assert.equal(v.data[t * width + 7], 3.5);
  });

  test('every hook point records with the right shape; mean with skipFirstToken drops the BOS', async () => {
    const ids = ref.cases[3]!.input_ids;
    const widths: Record<string, number> = { 'attn.q': 64, 'attn.k': 32, 'attn.v': 32, 'attn.o': 64, resid_mid: 64, 'mlp.gate': 172, 'mlp.up': 172, 'mlp.down': 64, resid_post: 64 };
    const record = Object.keys(widths).map((s) => ({ point: `blocks.2.${s}`, mode: 'full' as const }));
    record.push({ point: 'logits', mode: 'full' });
    const r = await model.forward([ids], { logits: 'none', hooks: { record } });
    for (const [s, w] of Object.entries(widths)) assert.deepEqual(r.records.get(`blocks.2.${s}`)!.shape, [1, ids.length, w]);
    assert.deepEqual(r.records.get('logits')!.shape, [1, ids.length, 300]);
    const c = ref.cases[3]!;
    const m = await model.forward([ids], { logits: 'none', hooks: { record: [{ point: 'blocks.0.mlp.gate', mode: 'mean', skipFirstToken: true }] } });
    const rows = c.mlp_outputs['0.gate']!.slice(1);
    const expected = rows[0]!.map((_, j) => rows.reduce((a, row) => a + row[j]!, 0) / rows.length);
    assert.ok(maxAbsDiff(expected, m.records.get('blocks.0.mlp.gate')!.data) < 1e-3);
    // resid_post of the last layer after the final norm is what the head sees: check one identity.
    const mid = r.records.get('blocks.2.resid_mid')!.data;
    const post = r.records.get('blocks.2.resid_post')!.data;
    const down = r.records.get('blocks.2.mlp.down')!.data;
    for (let i = 0; i < post.length; i++) assert.ok(Math.abs(mid[i]! + down[i]! - post[i]!) < 1e-5);
  });

  test('bad hooks give HookError naming the problem', async () => {
    const ids = [[1, 5, 9]];
    await assert.rejects(model.forward(ids, { hooks: { record: [{ point: 'blocks.0.mlp.fc', mode: 'mean' }] } }), (e: Error) => e instanceof HookError && /unknown hook point "blocks.0.mlp.fc"/.test(e.message));
    await assert.rejects(model.forward(ids, { hooks: { record: [{ point: 'blocks.3.mlp.up', mode: 'mean' }] } }), /layer 3 does not exist; the model has layers 0–2/);
    await assert.rejects(model.forward(ids, { hooks: { interventions: [{ point: 'blocks.0.mlp.up', op: 'zero', units: [172] }] } }), /unit 172 out of range; the site has units 0–171/);
    await assert.rejects(model.forward(ids, { hooks: { interventions: [{ point: 'blocks.0.mlp.up', op: 'zero', perRow: [[1], [2]] }] } }), /perRow has 2 lists but the batch has 1 rows/);
    await assert.rejects(model.forward(ids, { hooks: { interventions: [{ point: 'blocks.0.mlp.up', op: 'scale', units: [1] }] } }), /needs a finite "value"/);
    await assert.rejects(model.forward([[1, 300]]), /token id 300 is outside the vocabulary/);
  });

  test('hooks live for one call, also when it throws; no tensors leak', async () => {
    const ids = ref.cases[5]!.input_ids;
    const base = (await model.forward([ids], { logits: 'all' })).logits!.data;
    const start = tf.memory().numTensors;
    const hooks = {
      interventions: deactivationInterventions(),
      record: [{ point: 'blocks.1.mlp.gate', mode: 'mean' as const }, { point: 'blocks.2.attn.q', mode: 'full' as const }],
    };
    for (let i = 0; i < 3; i++) {
      await model.forward([ids, ids.slice(0, 4)], { logits: 'all', hooks });
      await model.generate([ids, ids.slice(0, 4)], { maxNewTokens: 3, hooks: { interventions: hooks.interventions } });
      await model.generate([ids], { maxNewTokens: 2, useCache: false, hooks: { interventions: hooks.interventions } });
      assert.equal(tf.memory().numTensors, start, `iteration ${i}`);
    }
    // A custom hook that throws in layer 1, mid-forward, after interventions were compiled.
    const failing = model.forward([ids], {
      hooks: {
        interventions: hooks.interventions,
        custom: [{ point: 'blocks.1.mlp.up', fn: () => { throw new Error('boom'); } }],
      },
    });
    await assert.rejects(failing, /boom/);
    await assert.rejects(model.generate([ids], { maxNewTokens: 3, hooks: { custom: [{ point: 'blocks.2.mlp.down', fn: (x, ctx) => { if (ctx.step === 2) throw new Error('late'); return x; } }] } }), /late/);
    assert.equal(tf.memory().numTensors, start, 'after throwing calls');
    const again = (await model.forward([ids], { logits: 'all' })).logits!.data;
    assert.equal(maxAbsDiff(Array.from(base), again), 0, 'no hook survives the call');
  });
});
