/**
 * The method end to end on the bundled organism (data/organism, converted by the real
 * converter): filtering, activations → AP ranking, and the experiments, checked by invariants
 * that tie independent code paths together (a direct forward pass vs the activation store +
 * AP engine; intra vs inter vs k-sweep accuracies; P^det = 100 % by construction).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convertCheckpoint } from '../weights-converter/convert.ts';
import { Pipeline } from '../lib/method/pipeline.ts';
import { buildIdentificationSet, topNeurons } from '../lib/method/ranking.ts';
import { layerDistribution, overlapMatrix, capK, type InterResult, type IntraResult, type SweepResult } from '../lib/method/experiments.ts';
import { hookPointName } from '../lib/model/hooks.ts';
import { averagePrecision } from '../lib/stats/average-precision.ts';

const organism = process.env['RSN_TEST_ORGANISM'] ?? new URL('../data/organism', import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), 'rsn-experiments-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

// Four relations keep the test short; two share subjects' entity type (persons), two do not.
const RELATIONS = ['company_ceo', 'landmark_country', 'person_father', 'person_mother'];

describe('the method on the organism', () => {
  let p: Pipeline;
  let k: number;
  let intra: IntraResult;
  let inter: InterResult;
  let sweep: SweepResult;
  before(async () => {
    await convertCheckpoint({ inputDir: organism, outputDir: join(work, 'model'), dtype: 'float32' });
    p = await Pipeline.open({ modelDir: join(work, 'model'), dataDir: join(organism, 'relations'), cacheDir: join(work, 'cache'), relations: RELATIONS, run: { batchSize: 128, quiet: true } });
    const ctx = await p.context();
    k = capK(ctx, Math.max(5, Math.round(ctx.space.poolIndices('ffn').length * 0.02)));
    intra = await p.intra({ k, randomSeeds: 3, detLimit: 60, sets: ['eva', 'det'] });
    inter = await p.inter({ k });
    sweep = await p.sweep({ ks: [0, Math.round(k / 3), k] });
  });
  after(() => p?.dispose());

  test('every relation has known facts; P^det is answered correctly under every evaluation batch (100 % by construction)', async () => {
    const known = await p.known();
    for (const r of known.relations) assert.ok(r.known.length > 0, `${r.name} has no known detection prompts`);
    for (const r of intra.relations) assert.ok(r.sets['det']!.original >= 0.98, `${r.name}: P^det original accuracy ${r.sets['det']!.original}`);
  });

  test('AP from the activation store + engine equals AP of a direct forward pass', async () => {
    const ranking = await p.ranking();
    const known = await p.known();
    const idset = buildIdentificationSet(p.dataset, known, { seed: p.dataset.seed });
    const tok = p.model.tokenizer!;
    const task = idset.tasks[0]!;
    const rows = [...task.positives, ...task.negatives];
    const labels = rows.map((_, i) => (i < task.positives.length ? 1 : 0));
    const top = topNeurons(ranking, task.name, 3);
    for (const idx of top) {
      const n = ranking.space.neuron(idx);
      const point = hookPointName(n.layer, n.site);
      const scores: number[] = [];
      for (let s = 0; s < rows.length; s += 64) {
        const batch = rows.slice(s, s + 64).map((i) => tok.encode(idset.prompts[i]!.text));
        const r = await p.model.forward(batch, { logits: 'none', hooks: { record: [{ point, mode: 'mean' }] } });
        const width = r.records.get(point)!.shape[1]!;
        for (let b = 0; b < batch.length; b++) scores.push(r.records.get(point)!.data[b * width + n.unit]!);
      }
      const direct = averagePrecision(scores, labels);
      const stored = ranking.relations.find((x) => x.name === task.name)!.ap[idx]!;
      assert.ok(Math.abs(direct - stored) < 1e-4, `${task.name} ${point}[${n.unit}]: direct ${direct}, ranking ${stored}`);
    }
    // Top AP well above the chance level of 0.2 for every relation.
    for (const r of ranking.relations) assert.ok(Math.max(...r.ap) > 0.5, `${r.name}: best AP ${Math.max(...r.ap)}`);
  });

  test('intra, inter and the k-sweep agree where they measure the same thing', () => {
    const names = inter.relations;
    const n = (name: string) => p.dataset.relations.find((r) => r.relation.name === name)!.eva.length;
    names.forEach((name, i) => {
      const onePrompt = 1 / n(name) + 1e-9; // batches differ between stages: allow one near-tie flip
      const ir = intra.relations.find((r) => r.name === name)!.sets['eva']!;
      assert.ok(Math.abs(ir.original - inter.original[i]!) <= onePrompt, `${name} original`);
      assert.ok(Math.abs(ir.relation - inter.accuracy[i]![i]!) <= onePrompt, `${name} own-relation ablation`);
      assert.ok(Math.abs(sweep.accuracy[i]![0]![i]! - inter.original[i]!) <= onePrompt, `${name} k = 0`);
      names.forEach((_, j) => assert.ok(Math.abs(sweep.accuracy[j]![2]![i]! - inter.accuracy[i]![j]!) <= onePrompt, `${name} with ${names[j]} zeroed`));
      inter.dropPercent[i]!.forEach((d, j) => {
        const expected = ((inter.original[i]! - inter.accuracy[i]![j]!) / inter.original[i]!) * 100;
        assert.ok(Math.abs(d - expected) < 1e-9);
      });
    });
  });

  test('overlap and layer distribution of the top-k are consistent', async () => {
    const ranking = await p.ranking();
    const o = overlapMatrix(ranking, k);
    const layers = layerDistribution(ranking, k);
    o.counts.forEach((row, i) => {
      assert.equal(row[i], k);
      row.forEach((c, j) => assert.equal(c, o.counts[j]![i]));
      assert.equal(layers.counts[i]!.reduce((a, b) => a + b, 0), k);
    });
  });

  test('cumulativity counts are bounded by the prompts that flipped in the sweep', async () => {
    const cum = await p.cumulativity({ ks: [0, Math.round(k / 3), k] });
    cum.total.forEach((row, r) => row.forEach((t, i) => assert.ok(cum.affected[r]![i]! <= t)));
    for (const x of [...cum.macro, ...cum.micro]) assert.ok(x === null || Number.isNaN(x) || (x >= 0 && x <= 1));
  });
});
