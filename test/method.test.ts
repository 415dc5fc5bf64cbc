/**
 * The method's engine on the fixture model (token ids in, no tokenizer needed): neuron
 * indexing, the activation store (values, resume after a kill, float16, merge), ranking from
 * the store, and batched per-row masked generation.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convertCheckpoint } from '../weights-converter/convert.ts';
import { LlamaModel } from '../lib/model/llama.ts';
import { ablation, NeuronSpace, randomNeurons } from '../lib/method/neurons.ts';
import { ActivationStore, collectActivations, mergeStores } from '../lib/method/activation-store.ts';
import { greedyRows } from '../lib/method/generation.ts';
import { computeNeuronAp } from '../lib/stats/ap-engine.ts';
import { averagePrecision } from '../lib/stats/average-precision.ts';
import { fixturesDir, loadReference, maxAbsDiff } from './helpers/reference.ts';

const ref = loadReference();
const work = mkdtempSync(join(tmpdir(), 'rsn-method-test-'));
after(() => rmSync(work, { recursive: true, force: true }));
let model: LlamaModel;
before(async () => {
  await convertCheckpoint({ inputDir: join(fixturesDir, 'tiny-llama-bf16'), outputDir: join(work, 'tiny'), dtype: 'float32' });
  model = await LlamaModel.load(join(work, 'tiny'), { log: null });
});
after(() => model?.dispose());

/** 40 prompts: the reference cases plus deterministic variations of them. */
function prompts(): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < 40; i++) {
    const base = ref.cases[i % ref.cases.length]!.input_ids;
    out.push(i < 6 ? base : [1, ...base.slice(1).map((t) => (t * (i + 3) + i) % 297 + 3), (i * 7) % 300]);
  }
  return out;
}

describe('neuron space', () => {
  test('FFN space of the fixture: 3 layers × (172 + 172 + 64) = 1224 neurons, indices round-trip', () => {
    const s = NeuronSpace.forModel(model.config, 'ffn');
    assert.equal(s.size, 3 * (172 + 172 + 64));
    for (const i of [0, 171, 172, 343, 344, 407, 408, 1223]) {
      const n = s.neuron(i);
      assert.equal(s.indexOf(n.layer, n.site, n.unit), i);
    }
    assert.deepEqual(s.neuron(408), { index: 408, layer: 1, site: 'mlp.gate', unit: 0 });
    assert.equal(NeuronSpace.forModel(model.config, 'all').size, 3 * (64 + 32 + 32 + 64 + 172 + 172 + 64));
    assert.throws(() => s.poolIndices('attn'), /pool needs sites attn.q, attn.k, attn.v, attn.o/);
    const g = s.groupByPoint([0, 5, 172, 344, 408]);
    assert.deepEqual([...g], [['blocks.0.mlp.gate', [0, 5]], ['blocks.0.mlp.up', [0]], ['blocks.0.mlp.down', [0]], ['blocks.1.mlp.gate', [0]]]);
  });

  test('random neurons: seeded, distinct, inside the pool, impossible k refused', () => {
    const s = NeuronSpace.forModel(model.config, 'ffn');
    const pool = s.poolIndices('gate');
    const a = randomNeurons(pool, 100, 3);
    assert.deepEqual(a, randomNeurons(pool, 100, 3));
    assert.notDeepEqual(a, randomNeurons(pool, 100, 4));
    assert.equal(new Set(a).size, 100);
    const members = new Set(pool);
    for (const x of a) assert.ok(members.has(x));
    assert.throws(() => randomNeurons(pool, pool.length + 1, 0), /cannot draw k = 517 random neurons from a pool of 516/);
  });
});

describe('activation store', () => {
  test('token means equal the reference, in float32 and (within half precision) float16', async () => {
    const ids = ref.cases.map((c) => c.input_ids);
    for (const dtype of ['float32', 'float16'] as const) {
      const store = await collectActivations(model, ids, join(work, `store-ref-${dtype}`), { dtype, batchSize: 4, chunkNeurons: 300, quiet: true });
      const s = store.space;
      const all = store.readRange(0, s.size);
      ref.cases.forEach((c, p) => {
        for (const b of s.blocks) {
          const key = `${b.layer}.${b.site.slice(4)}`;
          const got = all.subarray(p * s.size + b.offset, p * s.size + b.offset + b.width);
          const tol = dtype === 'float32' ? 1e-3 : 1e-3 + 1e-3 * Math.max(...c.mlp_outputs_mean_over_tokens[key]!.map(Math.abs));
          assert.ok(maxAbsDiff(c.mlp_outputs_mean_over_tokens[key]!, got) < tol, `${dtype} prompt ${p} ${key}`);
        }
      });
      // Arbitrary ranges across chunk boundaries read the same values.
      const part = store.readRange(250, 710);
      for (let p = 0; p < ids.length; p++) assert.deepEqual(part.subarray(p * 460, (p + 1) * 460), all.subarray(p * s.size + 250, p * s.size + 710));
    }
  });

  test('a killed collection resumes to the same store; another setting is refused', async () => {
    const ids = prompts();
    const full = await collectActivations(model, ids, join(work, 'store-full'), { batchSize: 8, chunkNeurons: 500, quiet: true });
    const dir = join(work, 'store-killed');
    let calls = 0;
    await assert.rejects(
      collectActivations(model, ids, dir, {
        batchSize: 8,
        chunkNeurons: 500,
        quiet: true,
        onProgress: () => {
          if (++calls === 3) throw new Error('killed');
        },
      }),
      /killed/,
    );
    const partial = ActivationStore.open(dir);
    assert.ok(partial.numPrompts > 0 && partial.numPrompts < ids.length, `partial store has ${partial.numPrompts} prompts`);
    const resumed = await collectActivations(model, ids, dir, { batchSize: 8, chunkNeurons: 500, quiet: true });
    assert.ok(resumed.complete);
    assert.deepEqual(resumed.readRange(0, resumed.space.size), full.readRange(0, full.space.size));
    await assert.rejects(collectActivations(model, ids, dir, { batchSize: 8, includeBos: false, quiet: true }), /includeBos true ≠ false/);
    await assert.rejects(collectActivations(model, ids.slice(1), dir, { quiet: true }), /prompt list differs/);
  });

  test('stores of consecutive prompt ranges merge into the full store', async () => {
    const ids = prompts();
    const full = ActivationStore.open(join(work, 'store-full'));
    // Same batch boundaries as the full run, so the values are bit-identical (padding within a
    // batch changes float rounding in the last bit).
    await collectActivations(model, ids, join(work, 'part-b'), { promptRange: [16, 40], batchSize: 8, chunkNeurons: 500, quiet: true });
    await collectActivations(model, ids, join(work, 'part-a'), { promptRange: [0, 16], batchSize: 8, chunkNeurons: 500, quiet: true });
    const merged = await mergeStores([join(work, 'part-b'), join(work, 'part-a')], join(work, 'merged'));
    assert.deepEqual(merged.readRange(0, merged.space.size), full.readRange(0, full.space.size));
    await assert.rejects(mergeStores([join(work, 'part-b')], join(work, 'merged')), /already exists/);
    await assert.rejects(mergeStores([join(work, 'part-b'), join(work, 'store-full')], join(work, 'merged2')), /covers prompts from 0, expected|consecutive/);
    assert.ok(!existsSync(join(work, 'merged2')));
  });

  test('excluding BOS from the mean changes it exactly as the reference implies', async () => {
    const c = ref.cases[5]!;
    const store = await collectActivations(model, [c.input_ids], join(work, 'store-nobos'), { includeBos: false, quiet: true });
    const rows = c.mlp_outputs['1.up']!.slice(1);
    const expected = rows[0]!.map((_, j) => rows.reduce((a, r) => a + r[j]!, 0) / rows.length);
    const b = store.space.blocks.find((x) => x.layer === 1 && x.site === 'mlp.up')!;
    assert.ok(maxAbsDiff(expected, store.readRange(b.offset, b.offset + b.width)) < 1e-3);
  });

  test('AP from the store equals averagePrecision on the same columns', async () => {
    const store = ActivationStore.open(join(work, 'store-full'));
    const positives = Array.from({ length: 8 }, (_, i) => i);
    const negatives = Array.from({ length: 32 }, (_, i) => i + 8);
    const [res] = await computeNeuronAp(store.source(), [{ name: 'first8', positives, negatives }], { workers: 0 });
    const all = store.readRange(0, store.space.size);
    const N = store.space.size;
    for (const n of [0, 100, 407, 900, 1223]) {
      const col = Array.from({ length: 40 }, (_, p) => all[p * N + n]!);
      const labels = col.map((_, p) => (p < 8 ? 1 : 0));
      assert.ok(Math.abs(res!.ap[n]! - averagePrecision(col, labels)) < 1e-12);
    }
  });
});

test('greedyRows: one batched pass with per-row ablations equals separate runs', async () => {
  const space = NeuronSpace.forModel(model.config, 'ffn');
  const ids = prompts().slice(0, 12);
  const masks = [null, randomNeurons(space.poolIndices('ffn'), 300, 1), randomNeurons(space.poolIndices('gate'), 100, 2)];
  const rows = ids.flatMap((p) => masks.map((mask) => ({ ids: p, ablation: mask ? ablation(mask) : null })));
  const batched = await greedyRows(model, space, rows, { maxNewTokens: 3, batchSize: 7, quiet: true });
  for (let i = 0; i < rows.length; i += 5) {
    const r = rows[i]!;
    const single = await model.generate([r.ids], { maxNewTokens: 3, hooks: { interventions: r.ablation ? space.interventions(r.ablation) : [] } });
    assert.deepEqual(batched[i], single.tokens[0], `row ${i}`);
  }
  // The deactivation case's units, expressed as global indices, reproduce its reference tokens.
  const units: number[] = [];
  for (const [layer, sites] of Object.entries(ref.deactivation.zeroed_units)) {
    for (const site of ['gate', 'up', 'down'] as const) for (const u of sites[site]) units.push(space.indexOf(Number(layer), `mlp.${site}`, u));
  }
  const mask = Int32Array.from(units);
  const out = await greedyRows(model, space, ref.deactivation.cases.map((c) => ({ ids: c.input_ids, ablation: ablation(mask) })), { maxNewTokens: 4, quiet: true });
  assert.deepEqual(out, ref.deactivation.cases.map((c) => c.greedy_4));
});
