/**
 * Two public options of the model that the reference tests do not reach:
 * - generate's stopAtEos: on the fixture model with its EOS id set to a token the model is known
 *   (from the reference's greedy_4, llama2.c) to produce, the output is cut at the first EOS, on
 *   the KV-cache, no-cache and layer-major (microBatch) paths;
 * - several interventions at one hook point in one call (zero / scale / set on overlapping
 *   units, shared and per-row): checked against the values recorded without intervention with
 *   the composition worked out by hand, against a custom hook that applies that composition
 *   itself, and against the reference deactivation logits when the composition is a zeroing.
 *
 * Run: node --import tsx --test test/generation-options.test.ts
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { convertCheckpoint } from '../weights-converter/convert.ts';
import { LlamaModel } from '../lib/model/llama.ts';
import type { Intervention } from '../lib/model/hooks.ts';
import { fixturesDir, loadReference, maxAbsDiff } from './helpers/reference.ts';

const ref = loadReference();
const work = mkdtempSync(join(tmpdir(), 'rsn-generation-options-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

const converted = join(work, 'tiny');
before(async () => {
  await convertCheckpoint({ inputDir: join(fixturesDir, 'tiny-llama-bf16'), outputDir: converted, dtype: 'float32' });
});

/** The fixture with config.json's eos_token_id replaced, converted (a converted model's files are checked against their digests, so the source is edited). */
async function withEos(eos: number): Promise<LlamaModel> {
  const source = join(work, `source-eos-${eos}`);
  const { cpSync } = await import('node:fs');
  cpSync(join(fixturesDir, 'tiny-llama-bf16'), source, { recursive: true });
  const cfg = JSON.parse(readFileSync(join(source, 'config.json'), 'utf8')) as Record<string, unknown>;
  cfg['eos_token_id'] = eos;
  writeFileSync(join(source, 'config.json'), JSON.stringify(cfg));
  const dir = join(work, `tiny-eos-${eos}`);
  await convertCheckpoint({ inputDir: source, outputDir: dir, dtype: 'float32' });
  const m = await LlamaModel.load(dir, { log: null });
  assert.equal(m.config.eosTokenId, eos);
  return m;
}

/** The reference greedy tokens cut before the first `eos`, computed here. */
function cut(tokens: readonly number[], eos: number): number[] {
  const i = tokens.indexOf(eos);
  return i < 0 ? [...tokens] : tokens.slice(0, i);
}

describe('generate with stopAtEos', () => {
  const seqs = ref.cases.map((c) => c.input_ids);
  // Reference greedy_4: [18,47,142,38] [256,178,178,99] [47,38,38,38] [173,192,218,284] [157,7,218,32] [222,61,133,5]

  test('EOS = 38: rows are cut before their first 38, on every decoding path; without the option all 4 tokens come back', async () => {
    const m = await withEos(38);
    try {
      const expected = [[18, 47, 142], [256, 178, 178, 99], [47], [173, 192, 218, 284], [157, 7, 218, 32], [222, 61, 133, 5]];
      assert.deepEqual(ref.cases.map((c) => cut(c.greedy_4, 38)), expected);
      assert.deepEqual((await m.generate(seqs, { maxNewTokens: 4, stopAtEos: true })).tokens, expected);
      assert.deepEqual((await m.generate(seqs, { maxNewTokens: 4, stopAtEos: true, useCache: false })).tokens, expected);
      assert.deepEqual((await m.generate(seqs, { maxNewTokens: 4, stopAtEos: true, microBatch: 2 })).tokens, expected);
      assert.deepEqual((await m.generate(seqs, { maxNewTokens: 4 })).tokens, ref.cases.map((c) => c.greedy_4));
      assert.deepEqual((await m.generate(seqs, { maxNewTokens: 4, stopAtEos: false, microBatch: 2 })).tokens, ref.cases.map((c) => c.greedy_4));
    } finally {
      m.dispose();
    }
  });

  test('EOS as the very first new token gives an empty row; EOS = 178 cuts only the row that repeats it', async () => {
    const m = await withEos(18);
    try {
      assert.deepEqual((await m.generate([seqs[0]!, seqs[1]!], { maxNewTokens: 4, stopAtEos: true })).tokens, [[], [256, 178, 178, 99]]);
    } finally {
      m.dispose();
    }
    const m2 = await withEos(178);
    try {
      assert.deepEqual((await m2.generate(seqs.slice(0, 3), { maxNewTokens: 4, stopAtEos: true })).tokens, [[18, 47, 142, 38], [256], [47, 38, 38, 38]]);
    } finally {
      m2.dispose();
    }
  });

  test('the fixture EOS (2) is never produced greedily, so stopAtEos leaves the reference tokens whole', async () => {
    const m = await LlamaModel.load(converted, { log: null });
    try {
      assert.equal(m.config.eosTokenId, 2);
      assert.deepEqual((await m.generate(seqs, { maxNewTokens: 4, stopAtEos: true })).tokens, ref.cases.map((c) => c.greedy_4));
    } finally {
      m.dispose();
    }
  });
});

describe('several interventions at one hook point', () => {
  let model: LlamaModel;
  before(async () => {
    model = await LlamaModel.load(converted, { log: null });
  });
  after(() => model?.dispose());

  const POINT = 'blocks.1.mlp.up'; // width 172
  const seq = ref.cases[4]!.input_ids; // 12 tokens

  /**
   * Worked out by hand for the list below, applied in order:
   *   units 0–4: ×2 · 5–9: ×2 then set 0.5 → 0.5 · 10, 11, 14: set 0.5 · 12: set 0.5 then zero → 0 ·
   *   13: set 0.5 then ×3 → 1.5 · 20: zero · 30: ×2 then ×−1.5 → ×−3 · every other unit unchanged.
   */
  const ivs: Intervention[] = [
    { point: POINT, op: 'scale', value: 2, units: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 30] },
    { point: POINT, op: 'set', value: 0.5, units: [5, 6, 7, 8, 9, 10, 11, 12, 13, 14] },
    { point: POINT, op: 'zero', units: [12, 20] },
    { point: POINT, op: 'scale', value: 3, units: [13] },
    { point: POINT, op: 'scale', value: -1.5, units: [30] },
  ];
  function expectedUnit(u: number, x: number): number {
    if (u <= 4) return 2 * x;
    if (u === 12 || u === 20) return 0;
    if (u === 13) return 1.5;
    if (u >= 5 && u <= 14) return 0.5;
    if (u === 30) return -3 * x;
    return x;
  }

  test('the recorded activation at the point is the hand-worked composition of the original, at every position', async () => {
    const plain = await model.forward([seq], { logits: 'none', hooks: { record: [{ point: POINT, mode: 'full' }] } });
    const hooked = await model.forward([seq], { logits: 'none', hooks: { interventions: ivs, record: [{ point: POINT, mode: 'full' }] } });
    const x = plain.records.get(POINT)!.data;
    const y = hooked.records.get(POINT)!.data;
    assert.equal(y.length, seq.length * 172);
    // The original matches the reference (so x is the true activation, not something already hooked).
    assert.ok(maxAbsDiff(ref.cases[4]!.mlp_outputs['1.up']!.flat(), x) < 1e-3);
    let worst = 0;
    for (let t = 0; t < seq.length; t++) {
      for (let u = 0; u < 172; u++) worst = Math.max(worst, Math.abs(y[t * 172 + u]! - expectedUnit(u, x[t * 172 + u]!)));
    }
    assert.ok(worst < 1e-6, `max deviation ${worst}`);
    // Order matters: set then scale ≠ scale then set.
    const setThenScale = await model.forward([seq], { logits: 'none', hooks: { interventions: [{ point: POINT, op: 'set', value: 0.5, units: [40] }, { point: POINT, op: 'scale', value: 3, units: [40] }], record: [{ point: POINT, mode: 'full' }] } });
    const scaleThenSet = await model.forward([seq], { logits: 'none', hooks: { interventions: [{ point: POINT, op: 'scale', value: 3, units: [40] }, { point: POINT, op: 'set', value: 0.5, units: [40] }], record: [{ point: POINT, mode: 'full' }] } });
    for (let t = 0; t < seq.length; t++) {
      assert.ok(Math.abs(setThenScale.records.get(POINT)!.data[t * 172 + 40]! - 1.5) < 1e-6);
      assert.ok(Math.abs(scaleThenSet.records.get(POINT)!.data[t * 172 + 40]! - 0.5) < 1e-6);
    }
  });

  test('logits and greedy tokens under the interventions equal those of a custom hook applying the same composition', async () => {
    const mul = new Float32Array(172).fill(1);
    const add = new Float32Array(172);
    for (let u = 0; u < 172; u++) {
      // expectedUnit is affine in x: recover its slope and offset.
      add[u] = expectedUnit(u, 0);
      mul[u] = expectedUnit(u, 1) - add[u]!;
    }
    const custom = {
      point: POINT,
      fn: (a: tf.Tensor) => tf.add(tf.mul(a, tf.tensor3d(mul, [1, 1, 172])), tf.tensor3d(add, [1, 1, 172])),
    };
    const seqs = ref.cases.map((c) => c.input_ids);
    const viaOps = await model.forward(seqs, { logits: 'all', hooks: { interventions: ivs } });
    const viaCustom = await model.forward(seqs, { logits: 'all', hooks: { custom: [custom] } });
    const plain = await model.forward(seqs, { logits: 'all' });
    assert.ok(maxAbsDiff([...viaCustom.logits!.data], viaOps.logits!.data) < 1e-4);
    assert.ok(maxAbsDiff([...plain.logits!.data], viaOps.logits!.data) > 1e-2, 'the interventions change the logits');
    const g1 = await model.generate(seqs, { maxNewTokens: 4, hooks: { interventions: ivs } });
    const g2 = await model.generate(seqs, { maxNewTokens: 4, useCache: false, hooks: { custom: [custom] } });
    assert.deepEqual(g1.tokens, g2.tokens);
  });

  test('overlapping zero / scale-by-0 / set-then-zero lists that together zero the deactivation units reproduce the reference deactivation', async () => {
    const units2gate = ref.deactivation.zeroed_units['2']!.gate; // 25 units
    const ivs2: Intervention[] = [
      { point: 'blocks.2.mlp.gate', op: 'zero', units: units2gate.slice(0, 12) },
      { point: 'blocks.2.mlp.gate', op: 'scale', value: 0, units: units2gate.slice(10, 20) },
      { point: 'blocks.2.mlp.gate', op: 'set', value: 7, units: units2gate.slice(18) },
      { point: 'blocks.2.mlp.gate', op: 'zero', units: units2gate.slice(18) },
      { point: 'blocks.2.mlp.gate', op: 'scale', value: 1, units: [1, 2, 3] }, // not listed: identity
    ];
    for (const [layer, sites] of Object.entries(ref.deactivation.zeroed_units)) {
      for (const site of ['gate', 'up', 'down'] as const) {
        if (layer === '2' && site === 'gate') continue;
        if (sites[site].length) ivs2.push({ point: `blocks.${layer}.mlp.${site}`, op: 'zero', units: sites[site] });
      }
    }
    for (const c of ref.deactivation.cases) {
      const r = await model.forward([c.input_ids], { logits: 'all', hooks: { interventions: ivs2 } });
      const d = maxAbsDiff(c.logits.flat(), r.logits!.data);
      assert.ok(d < 1e-3, `len ${c.input_ids.length}: max |Δlogit| ${d}`);
      assert.deepEqual((await model.generate([c.input_ids], { maxNewTokens: 4, hooks: { interventions: ivs2 } })).tokens[0], c.greedy_4);
    }
  });

  test('a shared and a per-row intervention at the same point compose row by row', async () => {
    const seq2 = ref.cases[3]!.input_ids; // 8 tokens
    const plain = await model.forward([seq2], { logits: 'none', hooks: { record: [{ point: POINT, mode: 'full' }] } });
    const x = plain.records.get(POINT)!.data;
    const r = await model.forward([seq2, seq2, seq2], {
      logits: 'none',
      hooks: {
        interventions: [
          { point: POINT, op: 'scale', value: 2, units: [7, 8] },
          { point: POINT, op: 'zero', perRow: [[7], [], [8, 9]] },
        ],
        record: [{ point: POINT, mode: 'full' }],
      },
    });
    const y = r.records.get(POINT)!.data;
    const expectRow = (row: number, u: number, xv: number) => {
      if ((row === 0 && u === 7) || (row === 2 && (u === 8 || u === 9))) return 0;
      return u === 7 || u === 8 ? 2 * xv : xv;
    };
    let worst = 0;
    for (let row = 0; row < 3; row++) {
      for (let t = 0; t < seq2.length; t++) {
        for (let u = 0; u < 172; u++) worst = Math.max(worst, Math.abs(y[(row * seq2.length + t) * 172 + u]! - expectRow(row, u, x[t * 172 + u]!)));
      }
    }
    assert.ok(worst < 1e-5, `max deviation ${worst}`);
  });
});
