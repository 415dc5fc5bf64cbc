/**
 * The hook points beyond the reference's gate/up/down outputs (embed, resid_pre, mlp.act,
 * resid_mid/post), runWithCache's indexed records, the reducers, the cache by name and by site
 * (stack), and the ablation ops, on the tiny fixture:
 * against values computed here in float64 from the reference's own outputs and the checkpoint's
 * bytes, and against identities that a misplaced hook breaks.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convertCheckpoint } from '../weights-converter/convert.ts';
import { LlamaModel } from '../lib/model/llama.ts';
import { hookPoints, type Site } from '../lib/model/hooks.ts';
import { type Reducer, recordSpec } from '../lib/model/record-spec.ts';
import { ablation, NeuronSpace } from '../lib/method/neurons.ts';
import { HookError } from '../lib/errors.ts';
import { fixturesDir, loadReference, maxAbsDiff } from './helpers/reference.ts';

const ref = loadReference();
const work = mkdtempSync(join(tmpdir(), 'rsn-hook-points-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** One bf16 tensor of a safetensors file as float64 values, read here byte by byte. */
function readBf16(file: string, name: string): { shape: number[]; values: number[] } {
  const buf = readFileSync(file);
  const headerLen = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const e = header[name]!;
  assert.equal(e.dtype, 'BF16');
  const start = 8 + headerLen + e.data_offsets[0];
  const n = (e.data_offsets[1] - e.data_offsets[0]) / 2;
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const values = Array.from({ length: n }, (_, i) => {
    u[0] = buf.readUInt16LE(start + 2 * i) << 16;
    return f[0]!;
  });
  return { shape: e.shape, values };
}

const silu = (x: number) => x / (1 + Math.exp(-x));

describe('hook points on the tiny Llama fixture', () => {
  let model: LlamaModel;
  before(async () => {
    const out = join(work, 'f32');
    await convertCheckpoint({ inputDir: join(fixturesDir, 'tiny-llama-bf16'), outputDir: out, dtype: 'float32' });
    model = await LlamaModel.load(out, { log: null });
  });
  after(() => model?.dispose());

  test('mlp.act equals SiLU(gate)·up of the reference outputs, at every token', async () => {
    for (const c of ref.cases) {
      const { cache } = await model.runWithCache([c.input_ids], (p) => p.endsWith('.mlp.act'));
      for (let l = 0; l < 3; l++) {
        const gate = c.mlp_outputs[`${l}.gate`]!;
        const up = c.mlp_outputs[`${l}.up`]!;
        const expected = gate.flatMap((row, t) => row.map((g, u) => silu(g) * up[t]![u]!));
        const got = cache.get(`blocks.${l}.mlp.act`)!;
        assert.deepEqual(got.shape, [1, c.input_ids.length, 172]);
        const d = maxAbsDiff(expected, got.data);
        assert.ok(d < 1e-3, `layer ${l}, len ${c.input_ids.length}: max |Δ| = ${d}`);
      }
    }
  });

  test('embed holds the checkpoint’s embedding rows; each layer’s resid_pre is the stream it receives', async () => {
    const E = readBf16(join(fixturesDir, 'tiny-llama-bf16', 'model.safetensors'), 'model.embed_tokens.weight');
    const H = E.shape[1]!;
    const ids = ref.cases.at(-1)!.input_ids;
    const { cache } = await model.runWithCache([ids], hookPoints(model.config));
    const embed = cache.get('embed')!;
    ids.forEach((id, t) => assert.deepEqual(Array.from(embed.token(0, t)), E.values.slice(id * H, (id + 1) * H), `token ${t}`));
    assert.deepEqual(cache.get('blocks.0.resid_pre')!.data, embed.data);
    for (let l = 0; l < 3; l++) {
      const pre = cache.get(`blocks.${l}.resid_pre`)!.data;
      const mid = cache.get(`blocks.${l}.resid_mid`)!.data;
      const post = cache.get(`blocks.${l}.resid_post`)!.data;
      const o = cache.get(`blocks.${l}.attn.o`)!.data;
      const down = cache.get(`blocks.${l}.mlp.down`)!.data;
      // resid_mid = resid_pre + attn.o and resid_post = resid_mid + mlp.down, elementwise.
      assert.ok(maxAbsDiff(Array.from(mid), pre.map((x, i) => x + o[i]!)) < 1e-5, `layer ${l} resid_mid`);
      assert.ok(maxAbsDiff(Array.from(post), mid.map((x, i) => x + down[i]!)) < 1e-5, `layer ${l} resid_post`);
      if (l < 2) assert.deepEqual(cache.get(`blocks.${l + 1}.resid_pre`)!.data, post);
    }
  });

  test('records index real tokens of left-padded rows the same as unpadded runs', async () => {
    const seqs = ref.cases.map((c) => c.input_ids);
    const { cache } = await model.runWithCache(seqs, ['blocks.1.mlp.act', 'blocks.2.resid_post']);
    const act = cache.get('blocks.1.mlp.act')!;
    for (const [b, c] of ref.cases.entries()) {
      const single = (await model.runWithCache([c.input_ids], ['blocks.1.mlp.act'])).cache.get('blocks.1.mlp.act')!;
      // A padded batch puts a row's tokens at other positions of each matrix product, and a BLAS
      // kernel (OpenBLAS) may sum them in another order: equal to float32 rounding, relative to
      // the values' size (a misplaced row or token is off by the values themselves).
      const tol = 1e-5 * Math.max(1, ...Array.from(single.data, Math.abs));
      assert.ok(maxAbsDiff(Array.from(single.data), act.row(b)) < tol, `row ${b}`);
      const last = c.input_ids.length - 1;
      assert.ok(maxAbsDiff(Array.from(single.token(0, last)), act.token(b, -1)) < tol);
      assert.ok(Math.abs(act.at(b, 0, 5) - single.data[5]!) < tol);
    }
    assert.throws(() => act.token(0, ref.cases[0]!.input_ids.length), HookError);
    assert.throws(() => act.at(0, 0, 172), HookError);
    await assert.rejects(model.runWithCache(seqs, () => false), HookError);
  });

  test('reducers: token means (with and without BOS) are the means of the full record over each row\'s real tokens', async () => {
    const seqs = ref.cases.map((c) => c.input_ids);
    const points = ['blocks.0.mlp.up', 'blocks.2.resid_post'];
    const full = (await model.runWithCache(seqs, points)).cache;
    for (const [reducer, skip] of [['token-mean', 0], ['token-mean-no-bos', 1]] as const) {
      const { cache } = await model.runWithCache(seqs, points, { reducer });
      for (const point of points) {
        const rec = cache.record(point);
        const f = full.record(point);
        assert.equal(rec.mode, 'mean');
        assert.deepEqual(rec.shape, [seqs.length, f.units]);
        seqs.forEach((ids, b) => {
          // The mean over tokens skip … len−1 of row b, summed here in float64 (a row of only
          // its BOS has no token left: zeros).
          const expected = Array.from({ length: f.units }, (_, u) => {
            let sum = 0;
            for (let t = skip; t < ids.length; t++) sum += f.at(b, t, u);
            return ids.length > skip ? sum / (ids.length - skip) : 0;
          });
          const tol = 1e-5 * Math.max(1, ...expected.map(Math.abs));
          assert.ok(maxAbsDiff(expected, rec.row(b)) < tol, `${reducer} ${point} row ${b}`);
        });
      }
    }
    assert.throws(() => recordSpec(model.config, points, 'median' as Reducer), (e: Error) => e instanceof HookError && /reducer must be one of full, token-mean, token-mean-no-bos, got "median"/.test(e.message));
    assert.throws(() => recordSpec(model.config, ['blocks.7.mlp.up']), (e: Error) => e instanceof HookError && /layer 7 does not exist/.test(e.message));
    assert.deepEqual(recordSpec(model.config, (p) => p.startsWith('blocks.1.mlp.'), 'token-mean-no-bos').map((r) => [r.point, r.mode, r.skipFirstToken]), [
      ['blocks.1.mlp.gate', 'mean', true],
      ['blocks.1.mlp.up', 'mean', true],
      ['blocks.1.mlp.act', 'mean', true],
      ['blocks.1.mlp.down', 'mean', true],
    ]);
  });

  test('the cache by name and by site: get/record a point, stack a site over the layers in layer order', async () => {
    const seqs = ref.cases.map((c) => c.input_ids);
    // Recorded out of order on purpose: the stack is in layer order whatever the request's order.
    const { cache } = await model.runWithCache(seqs, ['blocks.2.mlp.act', 'blocks.0.mlp.act', 'blocks.1.mlp.act', 'blocks.1.resid_post']);
    const stacked = cache.stack('mlp.act');
    const one = cache.record('blocks.0.mlp.act');
    assert.deepEqual(stacked.layers, [0, 1, 2]);
    assert.deepEqual(stacked.shape, [3, ...one.shape]);
    assert.equal(stacked.mode, 'full');
    for (const l of [0, 1, 2]) {
      const rec = cache.get(`blocks.${l}.mlp.act`)!;
      assert.deepEqual(stacked.data.subarray(l * rec.data.length, (l + 1) * rec.data.length), rec.data, `layer ${l}`);
    }
    assert.deepEqual(cache.stack('resid_post').layers, [1]);
    assert.throws(() => cache.stack('attn.q'), (e: Error) => e instanceof HookError && /no layer's "attn.q" was recorded; recorded: blocks\.2\.mlp\.act/.test(e.message));
    assert.throws(() => cache.stack('mlp.bogus' as Site), HookError);
    assert.throws(() => cache.record('blocks.0.mlp.up'), (e: Error) => e instanceof HookError && /no activations recorded at "blocks.0.mlp.up"/.test(e.message));
    assert.equal(cache.get('blocks.0.mlp.up'), undefined, 'get is a Map lookup');
  });

  test('zeroing a unit of mlp.gate, mlp.up or mlp.act is the same intervention (SiLU(0) = 0)', async () => {
    const ids = ref.cases.at(-1)!.input_ids;
    const units = [3, 40, 171];
    const logits = async (site: string) =>
      (await model.forward([ids], { logits: 'all', hooks: { interventions: [{ point: `blocks.1.${site}`, op: 'zero', units }] } })).logits!.data;
    const viaAct = await logits('mlp.act');
    const plain = (await model.forward([ids], { logits: 'all' })).logits!.data;
    assert.ok(maxAbsDiff(Array.from(plain), viaAct) > 1e-4, 'the zeroed units must matter');
    assert.ok(maxAbsDiff(Array.from(viaAct), await logits('mlp.gate')) < 1e-5);
    assert.ok(maxAbsDiff(Array.from(viaAct), await logits('mlp.up')) < 1e-5);
  });

  test('ablation ops: mean ablation sets each neuron to its own mean; scale and set act per unit', async () => {
    const space = NeuronSpace.forModel(model.config, 'act');
    const ids = ref.cases.at(-1)!.input_ids;
    const neurons = [space.indexOf(0, 'mlp.act', 7), space.indexOf(2, 'mlp.act', 100)];
    const means = Float32Array.from({ length: space.size }, (_, i) => (i % 13) / 10 - 0.5);
    const record = [{ point: 'blocks.0.mlp.act', mode: 'full' as const }, { point: 'blocks.2.mlp.act', mode: 'full' as const }];
    const run = async (a: Parameters<typeof ablation>[1]) => (await model.forward([ids], { hooks: { record, interventions: space.interventions(ablation(neurons, a)) } })).records;
    const mean = await run({ op: 'mean', means });
    const plain = (await model.forward([ids], { hooks: { record } })).records;
    const T = ids.length;
    for (let t = 0; t < T; t++) {
      assert.equal(mean.get('blocks.0.mlp.act')!.at(0, t, 7), means[neurons[0]!]);
      assert.equal(mean.get('blocks.2.mlp.act')!.at(0, t, 100), means[neurons[1]!]);
      assert.equal(mean.get('blocks.0.mlp.act')!.at(0, t, 8), plain.get('blocks.0.mlp.act')!.at(0, t, 8));
    }
    const scaled = await run({ op: 'scale', factor: -2 });
    const set = await run({ op: 'set', value: 0.25 });
    for (let t = 0; t < T; t++) {
      assert.ok(Math.abs(scaled.get('blocks.0.mlp.act')!.at(0, t, 7) + 2 * plain.get('blocks.0.mlp.act')!.at(0, t, 7)) < 1e-6);
      assert.equal(set.get('blocks.0.mlp.act')!.at(0, t, 7), 0.25);
    }
    assert.throws(() => space.interventions(ablation(neurons, { op: 'mean', means: new Float32Array(3) })), HookError);
  });

  test('per-row ablations with different ops in one batch equal separate runs', async () => {
    const space = NeuronSpace.forModel(model.config, 'ffn');
    const seqs = ref.cases.slice(2).map((c) => c.input_ids);
    const neurons = Int32Array.from([space.indexOf(0, 'mlp.up', 1), space.indexOf(1, 'mlp.gate', 9), space.indexOf(2, 'mlp.down', 3)]);
    const means = Float32Array.from({ length: space.size }, (_, i) => Math.sin(i));
    const rows = [ablation(neurons), null, ablation(neurons, { op: 'scale', factor: 3 }), ablation(neurons, { op: 'mean', means })];
    const batched = await model.forward(seqs, { logits: 'last', hooks: { interventions: space.perRowInterventions(rows) } });
    for (const [b, ids] of seqs.entries()) {
      const a = rows[b]!;
      const single = await model.forward([ids], { logits: 'last', hooks: { interventions: a ? space.interventions(a) : [] } });
      const d = maxAbsDiff(Array.from(single.logits!.data), batched.logits!.data, b * 300);
      assert.ok(d < 1e-4, `row ${b}: ${d}`);
    }
  });
});
