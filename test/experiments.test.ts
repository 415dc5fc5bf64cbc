/**
 * The paper's experiments (lib/method/experiments.ts).
 *
 * Plain Node: overlapMatrix and layerDistribution on a hand-built ranking whose top-k sets (and
 * their layers) were worked out by hand; errorCategory / errorCategories on hand-written flips
 * following the paper's three categories (App. J: a repeat of the prompt, an answer starting
 * with "The", one starting with "A.").
 *
 * On the bundled organism (data/organism, converted by the real converter): filtering,
 * activations → AP ranking and the experiments, checked against independent code paths: a
 * direct forward pass vs the activation store + AP engine; intra vs inter vs k-sweep; and
 * inter-relation accuracies/drops and cumulativity counts against counts made here from
 * plain model.generate calls, with the top-k taken from the AP arrays by the test's own sort,
 * the ablations built as hook interventions by hand and answers graded with isCorrectAnswer.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convertCheckpoint } from '../weights-converter/convert.ts';
import { jobsDigest, Pipeline } from '../lib/runs/pipeline.ts';
import { buildIdentificationSet, RANKING_SCHEMA, topNeurons, type Ranking } from '../lib/method/ranking.ts';
import {
  capK,
  errorCategories,
  errorCategory,
  interRelation,
  intraRelation,
  kSweep,
  cumulativity,
  perplexity,
  QUICK_KS,
  type PerplexityResult,
  layerDistribution,
  overlapMatrix,
  identification,
  dataAndFiltering,
  knownFilter,
  paperModels,
  otherPools,
  neutralSentences,
  layers,
  overlap,
  overlapPair,
  overlapRank,
  type CumulativityResult,
  type InterResult,
  type IntraResult,
  type SweepResult,
} from '../lib/method/experiments.ts';
import { NeuronSpace, type PoolName } from '../lib/method/neurons.ts';
import { loadDataset } from '../lib/method/dataset.ts';
import type { KnownFacts } from '../lib/method/known.ts';
import { hookPointName, type Intervention } from '../lib/model/hooks.ts';
import { isCorrectAnswer } from '../lib/data/answer-check.ts';
import type { Prompt } from '../lib/data/prompts.ts';
import { averagePrecision } from '../lib/stats/average-precision.ts';

describe('overlap and layer distribution of the top-k on a hand-built ranking', () => {
  // 3 layers × (gate 4, up 4, down 2): layer L holds gate 10L+0…3, up 10L+4…7, down 10L+8…9.
  const space = new NeuronSpace(3, ['mlp.gate', 'mlp.up', 'mlp.down'], (s) => (s === 'mlp.down' ? 2 : 4));
  const background = (i: number) => 0.3 - 0.005 * i; // distinct, falling with the index
  const ap = (top: Record<number, number>, fill: (i: number) => number) => Float32Array.from({ length: 30 }, (_, i) => top[i] ?? fill(i));
  const ranking: Ranking = {
    schema: RANKING_SCHEMA,
    provenance: { model: { name: 'hand', dir: '', sha256: '', storageDtype: 'float32' }, dataHash: '', seed: 0, backend: '', version: '', createdAt: '' },
    space,
    includeBos: true,
    negativeRatio: 4,
    relations: [
      // a: top-4 {0 (L0 gate), 5 (L0 up), 14 (L1 up), 28 (L2 down)}
      { name: 'a', numPositives: 1, numNegatives: 4, ap: ap({ 0: 0.9, 5: 0.8, 14: 0.7, 28: 0.6 }, background) },
      // b: top-4 {5, 14, 21 (L2 gate), 22 (L2 gate)}: shares 5 and 14 with a; the rest tie at 0.2
      { name: 'b', numPositives: 1, numNegatives: 4, ap: ap({ 5: 0.95, 14: 0.85, 21: 0.75, 22: 0.65 }, () => 0.2) },
      // c: top-4 {0, 26 (L2 up), 27 (L2 up), 29 (L2 down)}: shares 0 with a, nothing with b
      { name: 'c', numPositives: 1, numNegatives: 4, ap: ap({ 0: 0.99, 26: 0.98, 27: 0.97, 29: 0.96 }, background) },
    ],
  };

  test('k = 4: pairwise shared neurons and per-layer counts as built', () => {
    const o = overlapMatrix(ranking, 4);
    assert.deepEqual(o.relations, ['a', 'b', 'c']);
    assert.equal(o.k, 4);
    assert.deepEqual(o.counts, [[4, 2, 1], [2, 4, 0], [1, 0, 4]]);
    assert.deepEqual(layerDistribution(ranking, 4).counts, [[2, 1, 1], [1, 1, 2], [1, 0, 3]]);
  });

  test('k = 5: the fifth neuron comes from the background (ties by index), changing overlaps and layers', () => {
    // a adds 1 (highest background), b adds 0 (all tie at 0.2: lowest index), c adds 1.
    assert.deepEqual(overlapMatrix(ranking, 5).counts, [[5, 3, 2], [3, 5, 1], [2, 1, 5]]);
    assert.deepEqual(layerDistribution(ranking, 5).counts, [[3, 1, 1], [2, 1, 2], [2, 0, 3]]);
  });

  test('pools restrict the ranking before the top-k is taken', () => {
    // down (8, 9, 18, 19, 28, 29), k = 2: a {28, 8}, b {8, 9}, c {29, 8}.
    assert.deepEqual(overlapMatrix(ranking, 2, 'down').counts, [[2, 1, 1], [1, 2, 1], [1, 1, 2]]);
    assert.deepEqual(layerDistribution(ranking, 2, 'down').counts, [[1, 0, 1], [2, 0, 0], [1, 0, 1]]);
    // gate (0–3, 10–13, 20–23), k = 3: a {0, 1, 2}, b {21, 22, 0}, c {0, 1, 2}.
    assert.deepEqual(overlapMatrix(ranking, 3, 'gate').counts, [[3, 1, 3], [1, 3, 1], [3, 1, 3]]);
    assert.deepEqual(layerDistribution(ranking, 3, 'gate').counts, [[3, 0, 0], [1, 0, 2], [3, 0, 0]]);
    // k = 0: nothing anywhere.
    assert.deepEqual(overlapMatrix(ranking, 0).counts, [[0, 0, 0], [0, 0, 0], [0, 0, 0]]);
    assert.deepEqual(layerDistribution(ranking, 0).counts, [[0, 0, 0], [0, 0, 0], [0, 0, 0]]);
  });
});

describe('the ranking views as objects: identification, layers, overlap (summaries and verdicts that flip)', () => {
  // 4 layers × (gate 4, up 4, down 2): layer L holds neurons 10L … 10L+9 (middle layers: 1 and 2).
  const space = new NeuronSpace(4, ['mlp.gate', 'mlp.up', 'mlp.down'], (s) => (s === 'mlp.down' ? 2 : 4));
  /** A ranking where each relation's listed neurons come first, in the listed order (AP 0.9, 0.89, …); the rest 0.1. */
  const ranked = (tops: Record<string, number[]>): Ranking => ({
    schema: RANKING_SCHEMA,
    provenance: { model: { name: 'hand', dir: '', sha256: '', storageDtype: 'float32' }, dataHash: '', seed: 0, backend: '', version: '', createdAt: '' },
    space,
    includeBos: true,
    negativeRatio: 4,
    relations: Object.entries(tops).map(([name, top]) => ({
      name,
      numPositives: 1,
      numNegatives: 4,
      ap: Float32Array.from({ length: 40 }, (_, i) => (top.includes(i) ? 0.9 - 0.01 * top.indexOf(i) : 0.1)),
    })),
  });
  const status = (v: { claim: string; status: string }[]) => v.map((x) => x.status);

  test('identification: AP at rank k above chance for every relation, or not (k past the listed neurons)', () => {
    const r = ranked({ x: [3, 14, 25], y: [5, 6, 7] });
    const at3 = identification.summarise(r, { k: 3, poolSize: 40, kHow: 'hand' });
    assert.deepEqual(at3.rows.map((row) => [row.relation, row.chance, row.apAtK, row.aboveTwiceChance]), [['x', 0.2, Math.fround(0.88), 3], ['y', 0.2, Math.fround(0.88), 3]]);
    assert.ok(Math.abs(at3.rows[0]!.meanApTopK - (Math.fround(0.9) + Math.fround(0.89) + Math.fround(0.88)) / 3) < 1e-12);
    assert.deepEqual(status(identification.verdicts(at3)), ['reproduced', 'reproduced']);
    assert.match(identification.verdicts(at3)[1]!.paper as string, /^top-3000 of 835,584 \(0\.36 %\)/);
    // Rank 4 is a 0.1 neuron: below the chance AP 0.2 for both relations.
    assert.deepEqual(status(identification.verdicts(identification.summarise(r, { k: 4, poolSize: 40, kHow: 'hand' }))), ['reproduced', 'differs']);
  });

  test('layers: shares of the first, middle and last layers; the middle claim flips with where the top-k sit', () => {
    const middle = layers.summarise(ranked({ x: [12, 13], y: [21, 25] }), { k: 2 });
    assert.deepEqual(middle.middle, [1, 2]);
    assert.deepEqual(middle.counts, [[0, 2, 0, 0], [0, 0, 2, 0]]);
    assert.deepEqual(status(layers.verdicts(middle)), ['reproduced', 'reproduced']);
    const edges = layers.summarise(ranked({ x: [1, 33], y: [12, 35] }), { k: 2 });
    assert.deepEqual(edges.shares.map((r) => [r.firstQuarterShare, r.middleShare, r.lastQuarterShare, r.peakLayer]), [[0.5, 0, 0.5, 0], [0, 0.5, 0.5, 1]]);
    assert.deepEqual(status(layers.verdicts(edges)), ['differs', 'differs']);
  });

  test('overlap: pairs largest first with ranks, chance k²/pool; the paper\'s pairs reproduced or not', () => {
    const tops = { person_father: [1, 2, 3, 4], person_mother: [1, 2, 3, 9], company_ceo: [20, 21, 22, 30], company_hq: [20, 21, 31, 32], person_occupation: [5, 6, 7, 8] };
    const ov = overlap.summarise(ranked(tops), { k: 4, poolSize: 40 });
    assert.equal(ov.chance, 0.4);
    assert.deepEqual(ov.pairs.slice(0, 2).map((p) => [p.a, p.b, p.overlap]), [['person_father', 'person_mother', 3], ['company_ceo', 'company_hq', 2]]);
    assert.equal(overlapRank(ov, 'company_hq', 'company_ceo'), 2);
    assert.equal(overlapPair(ov, 'person_father', 'person_occupation')!.overlap, 0);
    const v = overlap.verdicts(ov);
    // 3/4 = 75 % against the paper's 68.4 % (±15 points); person_sport_position absent; ceo/hq 2 ≥ 2 × 0.4 and rank 2 ≤ 10/4.
    assert.deepEqual(status(v), ['reproduced', 'not applicable', 'reproduced']);
    assert.equal(v[0]!.paper, '2053/3000 = 68.4 %');
    const apart = overlap.summarise(ranked({ ...tops, person_mother: [9, 10, 11, 1], company_hq: [33, 34, 35, 36] }), { k: 4, poolSize: 40 });
    assert.deepEqual(status(overlap.verdicts(apart)), ['differs', 'not applicable', 'differs']);
  });
});

describe('data and filtering, and the other pools, as objects (summaries and verdicts that flip)', () => {
  test('LLaMA-2-7B/13B from the paper numbers count 835,584 / 1,310,720 FFN neurons (Table 1); a relation list of the paper\'s shape reproduces', () => {
    const dataset = loadDataset(join(process.cwd(), 'data', 'relations'));
    const data = dataAndFiltering.summarise({ dataset, selected: [], models: paperModels(), known: null, skipped: 'not run here', modelTag: 'm' }, {});
    assert.deepEqual(data.neuronCounts.map((r) => [r.model, r.ffn, r.allLinear]), [['LLaMA-2-7B', 835584, 1359872], ['LLaMA-2-13B', 1310720, 2129920]]);
    // Counted here from the files: facts per relation, 50 held-out triples, no shared subject.
    assert.deepEqual(data.relations.map((r) => r.facts), dataset.relations.map((r) => r.relation.samples.length));
    assert.ok(data.relations.every((r) => r.evaTriples === 50 && r.eva === 50 * r.templates));
    assert.equal(data.sharedSubjects, 0);
    const v = dataAndFiltering.verdicts(data);
    assert.deepEqual(v.map((x) => x.status), ['reproduced', data.relations.every((r) => r.facts > 300) ? 'reproduced' : 'differs', 'reproduced', 'reproduced', 'reproduced', 'not applicable']);
    assert.equal(v.at(-1)!.detail, 'not computed: not run here');
  });

  test('the data verdicts flip: a subset, a small relation, other held-out sizes, a shared subject, P^det counted', () => {
    const row = (relation: string, facts: number, evaTriples: number) => ({ relation, facts, subjects: facts, templates: 2, eva2Templates: 2, detTriples: facts - evaTriples, evaTriples, det: 0, eva: 0, eva2: 0 });
    const base = { relations: [row('a', 400, 50), row('b', 301, 50)], sharedSubjects: 0, selected: [], neuronCounts: [], known: null, skipped: 'x', modelTag: 'm' };
    assert.deepEqual(dataAndFiltering.verdicts(base).map((x) => x.status), ['differs', 'reproduced', 'reproduced', 'not applicable']);
    const small = dataAndFiltering.verdicts({ ...base, relations: [row('a', 400, 50), row('b', 150, 40)], sharedSubjects: 1, selected: ['a', 'b'] });
    assert.deepEqual(small.map((x) => x.status), ['not applicable', 'differs', 'differs', 'not applicable']);
    assert.equal(small[1]!.detail, "b has 150 facts in this data (151 short of the paper's threshold)");
    assert.equal(small[2]!.ours, '50/40');
    const known = dataAndFiltering.verdicts({ ...base, known: [{ relation: 'a', total: 10, known: 3 }, { relation: 'b', total: 30, known: 5 }] });
    assert.equal(known.at(-1)!.ours, '8 of 40 (20.0%)');
  });

  test('the filter: one job per relation with every detection prompt, no ablation; shards take whole length-ordered batches, each row once', () => {
    const dataset = loadDataset(join(process.cwd(), 'data', 'relations'), { relations: ['company_ceo', 'person_father', 'star_constellation'] });
    const plan = knownFilter.plan(dataset, {});
    assert.equal(plan.maxNewTokens, 2);
    assert.deepEqual(plan.jobs.map((j) => [j.key['relation'], j.prompts.length, j.ablation]), dataset.relations.map((r) => [r.relation.name, r.det.length, null]));
    const total = dataset.relations.reduce((a, r) => a + r.det.length, 0);
    assert.deepEqual(plan.rows.flat(), Array.from({ length: total }, (_, i) => i));
    // The single run's batches, counted here: every detection prompt ordered by length (characters stand in for tokens), then row; 7 per batch.
    const all = dataset.relations.flatMap((r) => r.det);
    const order = all.map((_, i) => i).sort((a, b) => all[a]!.text.length - all[b]!.text.length || a - b);
    const batches = Array.from({ length: Math.ceil(total / 7) }, (_, b) => order.slice(7 * b, 7 * b + 7));
    const shards = [0, 1, 2].map((index) => knownFilter.shardPlan(plan, { index, count: 3 }, (t) => t.length, 7));
    const seen = shards.flatMap((sp) => sp.rows.flat()).sort((a, b) => a - b);
    assert.deepEqual(seen, Array.from({ length: total }, (_, i) => i), 'every row in exactly one shard');
    for (const sp of shards) {
      const rows = new Set(sp.rows.flat());
      // Whole batches only: a batch's rows are all in this shard or none are.
      for (const b of batches) assert.ok(b.every((r) => rows.has(r)) || b.every((r) => !rows.has(r)));
      sp.jobs.forEach((j, ji) => assert.deepEqual(j.prompts, sp.rows[ji]!.map((r) => all[r]!)));
    }
    assert.throws(() => knownFilter.shardPlan(plan, { index: 0, count: total }, (t) => t.length, 7), /at most \d+ shard/);
  });

  test('the filter summary keeps the rows answered correctly; its verdict says when the filter did not run', () => {
    const dataset = loadDataset(join(process.cwd(), 'data', 'relations'), { relations: ['company_ceo', 'person_father'] });
    const plan = knownFilter.plan(dataset, {});
    const results = plan.jobs.map((j, ji) => ({ key: j.key, outputs: j.prompts.map((_, i) => `o${ji}.${i}`), correct: j.prompts.map((_, i) => i % 3 === ji), accuracy: NaN }));
    const known = knownFilter.summarise(plan, results, { model: { name: 'hand', dir: '', sha256: '', storageDtype: 'float32' }, dataHash: '', seed: 0, backend: '', version: '', createdAt: '' });
    known.relations.forEach((r, ji) => {
      assert.deepEqual(r.known, Array.from({ length: r.total }, (_, i) => i).filter((i) => i % 3 === ji));
      assert.equal(r.outputs[4], `o${ji}.4`);
    });
    assert.throws(() => knownFilter.summarise(plan, results.slice(1), known.provenance), /not those of this plan/);
    assert.equal(knownFilter.verdicts([{ total: 10, known: 3 }, { total: 30, known: 5 }], 'm')[0]!.ours, '8 of 40 (20.0%)');
    assert.equal(knownFilter.verdicts(null, 'm', 'no tokenizer')[0]!.detail, 'not computed: no tokenizer');
  });

  const inter = (pool: PoolName, dropPercent: number[][]): InterResult => ({
    schema: 'rsn-inter/1',
    provenance: { model: { name: 'hand', dir: '', sha256: '', storageDtype: 'float32' }, dataHash: '', seed: 0, backend: '', version: '', createdAt: '' },
    k: 4,
    pool,
    set: 'eva',
    relations: ['a', 'b'],
    original: [1, 1],
    accuracy: dropPercent.map((row) => row.map((d) => 1 - d / 100)),
    dropPercent,
  });
  const faint = [[10, 30], [20, 5]];
  const near = [[45, 10], [5, 40]];
  const pools = { ffn: inter('ffn', [[50, 10], [5, 40]]), attn: inter('attn', faint), down: inter('down', faint), up: inter('up', [[5, 1], [2, 4]]), all: inter('all', near), gate: inter('gate', near) };
  const sizes = { ffn: 30, attn: 40, down: 10, up: 10, all: 70, gate: 10 };

  test('other pools: diagonal and off-diagonal means, contrast and diagonal maxima, counted by hand', () => {
    const r = otherPools.summarise({ results: pools, sizes }, {});
    assert.deepEqual(r.pools.map((p) => [p.pool, p.meanDiagonal, p.meanOffDiagonal, p.contrast, p.diagonalMax]), [
      ['ffn', 45, 7.5, 37.5, 2], ['attn', 7.5, 25, -17.5, 0], ['down', 7.5, 25, -17.5, 0], ['up', 4.5, 1.5, 3, 2], ['all', 42.5, 7.5, 35, 2], ['gate', 42.5, 7.5, 35, 2],
    ]);
    assert.deepEqual(otherPools.verdicts(r).map((v) => v.status), ['reproduced', 'reproduced', 'reproduced', 'reproduced']);
  });

  test('other pools: a clearer gate pool flips the FFN claims; without ffn there is nothing to compare', () => {
    const r = otherPools.summarise({ results: { ...pools, gate: inter('gate', [[90, 0], [0, 90]]) }, sizes }, {});
    const v = otherPools.verdicts(r);
    assert.deepEqual(v.map((x) => x.status), ['differs', 'reproduced', 'reproduced', 'differs']);
    assert.equal(v[0]!.detail, 'gate is clearer than ffn (by 52.5 points)');
    assert.deepEqual(otherPools.verdicts(otherPools.summarise({ results: { attn: pools.attn }, sizes }, {})).map((x) => x.status), ['not applicable']);
  });
});

describe('the neutral sentences of the perplexity experiment', () => {
  test("the world's own sentences first, else Table 8's template × each distinct object of the known P^det", () => {
    const dataset = loadDataset(join(process.cwd(), 'data', 'relations'), { relations: ['company_ceo', 'person_father'] });
    const det = dataset.relations[0]!.det;
    // Known: prompts 0, 1 and one more with the object of prompt 0 (the objects are listed once each).
    const again = det.findIndex((p, i) => i > 1 && p.object === det[0]!.object);
    const knownIdx = again > 0 ? [0, 1, again] : [0, 1];
    const known = {
      schema: 'rsn-known/1', provenance: {}, maxNewTokens: 2,
      relations: [{ name: 'company_ceo', total: det.length, known: knownIdx, outputs: [] }, { name: 'person_father', total: 0, known: [], outputs: [] }],
    } as unknown as KnownFacts;
    const objects = [...new Set(knownIdx.map((i) => det[i]!.object))];
    const s = neutralSentences(dataset, known, { neutralSentences: { person_father: ['A sentence.'] } });
    assert.deepEqual(s['company_ceo'], objects.map((o) => `The major shift in strategy was attributed to the leadership of ${o}.`));
    assert.deepEqual(s['person_father'], ['A sentence.']);
    assert.deepEqual(neutralSentences(dataset, known, null)['person_father'], []);
  });
});

describe('error categories (App. J, Table 4)', () => {
  test('errorCategory: repeat of the prompt or subject, "The …", "A.", other', () => {
    const p = "Panasonic Corporation's CEO is";
    const subject = 'Panasonic Corporation';
    // A repeat: the output is the start of the prompt (with its leading space, any case)…
    assert.equal(errorCategory(" Panasonic Corporation's CEO", p, subject), 'repeat');
    assert.equal(errorCategory(' panasonic', p, subject), 'repeat');
    // … or starts with the subject and goes on.
    assert.equal(errorCategory(' Panasonic Corporation is a', p, subject), 'repeat');
    assert.equal(errorCategory(' Miles Davis is', 'Miles Davis plays the', 'Miles Davis'), 'repeat');
    // "The" as a word, in any case; not a word that merely begins with t-h-e.
    assert.equal(errorCategory(' The company', p, subject), 'the');
    assert.equal(errorCategory('the', p, subject), 'the');
    assert.equal(errorCategory(' THE', p, subject), 'the');
    assert.equal(errorCategory(' Theodore', p, subject), 'other');
    assert.equal(errorCategory(' Them', p, subject), 'other');
    // "A." as an answer start; "A" alone too; "Apple", "An" and "A " something are not.
    assert.equal(errorCategory(' A. Smith', p, subject), 'a.');
    assert.equal(errorCategory(' A.', p, subject), 'a.');
    assert.equal(errorCategory(' A', p, subject), 'a.');
    assert.equal(errorCategory(' Apple', p, subject), 'other');
    assert.equal(errorCategory(' An engineer', p, subject), 'other');
    assert.equal(errorCategory(' A man', p, subject), 'other');
    // Anything else, and nothing at all.
    assert.equal(errorCategory(' Kazuhiro Tsuga', p, subject), 'other');
    assert.equal(errorCategory('', p, subject), 'other');
    assert.equal(errorCategory('   ', p, subject), 'other');
    // The repeat check comes first: "The" repeating a prompt that starts with "The" is a repeat.
    assert.equal(errorCategory(' The CEO', 'The CEO of Sony is', 'Sony'), 'repeat');
  });

  test('errorCategories: shares per relation from the flips, the subject cut from the prompt', () => {
    const flip = (prompt: string, after: string) => ({ prompt, object: 'x', before: ' x', after });
    const sets = (flips: ReturnType<typeof flip>[]) => ({ eva: { original: 1, randomMean: 1, randomSd: 0, random: [1], relation: 0, flips } });
    const intra: IntraResult = {
      schema: 'rsn-intra/1',
      provenance: { model: { name: 'hand', dir: '', sha256: '', storageDtype: 'float32' }, dataHash: '', seed: 0, backend: '', version: '', createdAt: '' },
      k: 1,
      pool: 'ffn',
      randomSeeds: 1,
      relations: [
        {
          name: 'r1',
          sets: sets([
            flip("Panasonic Corporation's CEO is", " Panasonic Corporation's"), // repeat (prompt start)
            flip('Miles Davis plays the', ' Miles Davis is a'), // repeat: only through the subject cut at " plays"
            flip("Apple's CEO is", ' The company'), // the
            flip("Apple's CEO is", ' A. Smith'), // a.
            flip('Sony is headquartered in the city of', ' Paris'), // other
          ]),
        },
        { name: 'r2', sets: sets([]) },
      ],
    };
    const res = errorCategories(intra);
    assert.deepEqual(res.map((r) => [r.relation, r.flips]), [['r1', 5], ['r2', 0]]);
    assert.deepEqual(res[0]!.shares, { repeat: 0.4, the: 0.2, 'a.': 0.2, other: 0.2 });
    for (const v of Object.values(res[1]!.shares)) assert.ok(Number.isNaN(v), 'no flips: shares undefined, not 0');
    // Another prompt set is read from its own flips (none here).
    assert.equal(errorCategories(intra, 'det')[0]!.flips, 0);
  });
});

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
    intra = await p.run(intraRelation, { k, randomSeeds: 3, detLimit: 60, sets: ['eva', 'det'] });
    inter = await p.run(interRelation, { k });
    sweep = await p.run(kSweep, { ks: [0, Math.round(k / 3), k] });
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
    });
  });

  // ------------------------------------------------------------------ independent counts

  /** The top-k of a relation in the FFN pool by the test's own sort of its AP array: (−AP, index). */
  const ownTop = (ranking: Ranking, relation: string, k: number): number[] => {
    const ap = ranking.relations.find((r) => r.name === relation)!.ap;
    const ffn: number[] = [];
    for (let i = 0; i < ranking.space.size; i++) if (['mlp.gate', 'mlp.up', 'mlp.down'].includes(ranking.space.neuron(i).site)) ffn.push(i);
    return ffn.sort((a, b) => ap[b]! - ap[a]! || a - b).slice(0, k);
  };

  /** Whether each prompt is answered correctly (2 greedy tokens, prefix check) with `neurons` zeroed. */
  const memo = new Map<string, boolean[]>();
  const correctWith = async (ranking: Ranking, prompts: readonly Prompt[], neurons: readonly number[]): Promise<boolean[]> => {
    const key = JSON.stringify([prompts.map((q) => q.text), neurons]);
    const hit = memo.get(key);
    if (hit) return hit;
    const byPoint = new Map<string, number[]>();
    for (const idx of neurons) {
      const nn = ranking.space.neuron(idx);
      const point = hookPointName(nn.layer, nn.site);
      byPoint.set(point, [...(byPoint.get(point) ?? []), nn.unit]);
    }
    const interventions: Intervention[] = [...byPoint].map(([point, units]) => ({ point, op: 'zero', units }));
    const tok = p.model.tokenizer!;
    const out: boolean[] = [];
    for (let s = 0; s < prompts.length; s += 64) {
      const batch = prompts.slice(s, s + 64);
      const { tokens } = await p.model.generate(batch.map((q) => tok.encode(q.text)), { maxNewTokens: 2, hooks: { interventions } });
      tokens.forEach((t, b) => out.push(isCorrectAnswer(tok.decode(t), batch[b]!.object)));
    }
    memo.set(key, out);
    return out;
  };
  const evaPrompts = (name: string) => p.dataset.relations.find((r) => r.relation.name === name)!.eva;
  const count = (xs: readonly boolean[]) => xs.filter(Boolean).length;

  test("inter-relation restricted to one relation: its row and column of the full matrix (to a near-tie prompt), the rest NaN", async () => {
    const ctx = await p.context();
    const only = 'person_father';
    const plan = interRelation.plan(ctx, { k, involving: only });
    const n = inter.relations.length;
    assert.equal(plan.jobs.length, n + (2 * n - 1), 'every original, the row and the column');
    const part = interRelation.summarise(ctx, plan, await p.evaluate(plan.jobs));
    const f = inter.relations.indexOf(only);
    part.accuracy.forEach((row, i) => row.forEach((a, j) => {
      if (i !== f && j !== f) return assert.ok(Number.isNaN(a) && Number.isNaN(part.dropPercent[i]![j]!), `cell ${i},${j} is left out`);
      // Another batch composition than the full matrix's: a near-tie answer may flip, by one prompt at most.
      const prompts = plan.jobs.find((x) => x.key['evaluated'] === inter.relations[i])!.prompts.length;
      assert.ok(Math.abs(a - inter.accuracy[i]![j]!) * prompts <= 1 + 1e-9, `${inter.relations[i]} with ${inter.relations[j]} zeroed: ${a} vs ${inter.accuracy[i]![j]}`);
    }));
    assert.throws(() => interRelation.plan(ctx, { k, involving: 'nope' }), /involving: "nope" is not one of the relations/);
  });

  test('inter-relation accuracies and drops, and intra-relation flips, equal correct answers counted here, prompt by prompt', async () => {
    const ranking = await p.ranking();
    const names = inter.relations;
    // Batch composition differs between the library's run (all jobs, sorted by length) and ours
    // (one relation's prompts at a time), and padding changes float rounding: a near-tie answer
    // may flip. Allow that in at most one cell, by at most one prompt.
    let offByOne = 0;
    for (const [i, evaluated] of names.entries()) {
      const prompts = evaPrompts(evaluated);
      const n = prompts.length;
      const orig = count(await correctWith(ranking, prompts, []));
      assert.ok(orig > 0, `${evaluated}: some prompts answered`);
      for (const [j, zeroed] of names.entries()) {
        const acc = count(await correctWith(ranking, prompts, ownTop(ranking, zeroed, k)));
        const libCorrect = Math.round(inter.accuracy[i]![j]! * n);
        const libOrig = Math.round(inter.original[i]! * n);
        assert.ok(Math.abs(inter.accuracy[i]![j]! * n - libCorrect) < 1e-6, 'accuracy is a count over n prompts');
        if (libCorrect !== acc || libOrig !== orig) {
          offByOne++;
          assert.ok(Math.abs(libCorrect - acc) <= 1 && Math.abs(libOrig - orig) <= 1, `${evaluated} with ${zeroed} zeroed: library ${libOrig}→${libCorrect}, counted ${orig}→${acc} of ${n}`);
          continue;
        }
        // drop % = (correct before − correct after) / correct before × 100, from our counts.
        assert.ok(Math.abs(inter.dropPercent[i]![j]! - ((orig - acc) / orig) * 100) < 1e-9, `${evaluated} with ${zeroed} zeroed: drop ${inter.dropPercent[i]![j]} vs ${((orig - acc) / orig) * 100}`);
        if (i === j) {
          // intraRelation's flips on P^eva: exactly the prompts right before and wrong with the own top-k zeroed.
          const before = await correctWith(ranking, prompts, []);
          const afterOwn = await correctWith(ranking, prompts, ownTop(ranking, zeroed, k));
          const flipped = prompts.filter((_, pi) => before[pi] && !afterOwn[pi]).map((q) => q.text);
          const ir = intra.relations.find((r) => r.name === evaluated)!.sets['eva']!;
          const got = ir.flips.map((f) => f.prompt);
          const differ = got.filter((x) => !flipped.includes(x)).length + flipped.filter((x) => !got.includes(x)).length;
          if (differ === 0) {
            assert.deepEqual(got, flipped, `${evaluated}: intra flips, in prompt order`);
            assert.ok(Math.abs(ir.relation * n - acc) < 1e-6 && Math.abs(ir.original * n - orig) < 1e-6, `${evaluated}: intra accuracies`);
          } else {
            offByOne++; // intra ran in its own batches: the same near-tie allowance
            assert.ok(differ <= 1, `${evaluated}: intra flips ${JSON.stringify(got)} vs counted ${JSON.stringify(flipped)}`);
          }
        }
      }
    }
    assert.ok(offByOne <= 1, `${offByOne} cells differ from the counts made here`);
    // The own relation's neurons hurt: some diagonal drop is positive on the organism.
    assert.ok(names.some((_, i) => inter.dropPercent[i]![i]! > 0));
  });

  test('cumulativity: |T| and #affected equal the prompts counted here for every range', async () => {
    const ranking = await p.ranking();
    const cumKs = [0, 5, Math.round(k / 3), k, 3 * k];
    const cum: CumulativityResult = await p.run(cumulativity, { sweep: await p.run(kSweep, { ks: cumKs }) });
    assert.deepEqual(cum.ranges, [[5, Math.round(k / 3)], [Math.round(k / 3), k], [k, 3 * k]]);
    let offByOne = 0;
    const total: number[][] = [];
    const affected: number[][] = [];
    for (const [ri, name] of cum.relations.entries()) {
      const prompts = evaPrompts(name);
      total.push([]);
      affected.push([]);
      for (const [i, [ka, kb]] of cum.ranges.entries()) {
        // T: correct with the top-ka zeroed, wrong with the top-kb zeroed.
        const atA = await correctWith(ranking, prompts, ownTop(ranking, name, ka));
        const atB = await correctWith(ranking, prompts, ownTop(ranking, name, kb));
        const T = prompts.filter((_, pi) => atA[pi] && !atB[pi]);
        // #affected: prompts of T that are also wrong with only ranks ka+1 … kb zeroed.
        const range = ownTop(ranking, name, kb).slice(ka);
        assert.equal(range.length, kb - ka);
        const inRange = T.length ? await correctWith(ranking, T, range) : [];
        const aff = inRange.filter((c) => !c).length;
        total[ri]!.push(T.length);
        affected[ri]!.push(aff);
        if (cum.total[ri]![i] !== T.length || cum.affected[ri]![i] !== aff) {
          offByOne++;
          assert.ok(Math.abs(cum.total[ri]![i]! - T.length) <= 1 && Math.abs(cum.affected[ri]![i]! - aff) <= 1, `${name} ${ka}–${kb}: library ${cum.total[ri]![i]}/${cum.affected[ri]![i]}, counted ${T.length}/${aff}`);
        }
      }
    }
    assert.ok(offByOne <= 1, `${offByOne} (relation, range) cells differ from the counts made here`);
    // The test must exercise something: prompts flip in some range, and some of them are affected.
    assert.ok(total.flat().some((t) => t > 0), `every T is empty: ${JSON.stringify(total)}`);
    assert.ok(affected.flat().some((a) => a > 0), `nothing affected: ${JSON.stringify(affected)}`);
    // Micro and macro from our counts (paper §E6: 1 − Σaffected/Σtotal; mean over relations with T ≠ ∅).
    if (offByOne === 0) {
      cum.ranges.forEach((_, i) => {
        const t = total.reduce((a, r) => a + r[i]!, 0);
        const f = affected.reduce((a, r) => a + r[i]!, 0);
        if (t > 0) assert.ok(Math.abs(cum.micro[i]! - (1 - f / t)) < 1e-12, `micro ${i}`);
        const per = total.flatMap((r, ri) => (r[i]! > 0 ? [1 - affected[ri]![i]! / r[i]!] : []));
        if (per.length) assert.ok(Math.abs(cum.macro[i]! - per.reduce((a, b) => a + b, 0) / per.length) < 1e-12, `macro ${i}`);
      });
    }
  });
  test('the experiment as data: plan → evaluate → summary gives the accuracies and flips counted here from the answers; evaluate is cached by content, and a changed intervention is another entry', async () => {
    const ctx = await p.context();
    const opts = { k, randomSeeds: 3, detLimit: 60, sets: ['eva', 'det'] as ('eva' | 'det')[] };
    const plan = intraRelation.plan(ctx, opts);
    // The plan selects each relation's top-k and k random neurons per seed, and runs every set under nothing, own and each random.
    for (const r of RELATIONS) assert.deepEqual(Array.from(plan.own[r]!.neurons), Array.from(topNeurons(ctx.ranking, r, k)));
    assert.equal(plan.random.length, 3);
    assert.equal(plan.jobs.length, RELATIONS.length * 2 * (2 + 3));
    const results = await p.evaluate(plan.jobs, 'test');
    // Each job's answers graded here with the 2-token check, then counted per relation, set and condition.
    const graded = results.map((r, i) => plan.jobs[i]!.prompts.map((q, pi) => isCorrectAnswer(r.outputs[pi]!, q.object)));
    const byKey = (relation: string, set: string, condition: string) => graded[plan.jobs.findIndex((j) => j.key['relation'] === relation && j.key['set'] === set && j.key['condition'] === condition)]!;
    const share = (xs: boolean[]) => xs.filter(Boolean).length / xs.length;
    const summary = intraRelation.summarise(ctx, plan, results);
    for (const r of summary.relations) {
      for (const set of opts.sets) {
        const s = r.sets[set]!;
        assert.equal(s.original, share(byKey(r.name, set, 'original')), `${r.name} ${set} original`);
        assert.equal(s.relation, share(byKey(r.name, set, 'relation')), `${r.name} ${set} relation`);
        const random = [0, 1, 2].map((seed) => share(byKey(r.name, set, `random${seed}`)));
        assert.ok(Math.abs(s.randomMean - random.reduce((a, b) => a + b, 0) / 3) < 1e-12, `${r.name} ${set} random mean`);
        const before = byKey(r.name, set, 'original');
        const after = byKey(r.name, set, 'relation');
        assert.deepEqual(s.flips.map((f) => f.prompt), plan.jobs.find((j) => j.key['relation'] === r.name && j.key['set'] === set)!.prompts.filter((_, i) => before[i] && !after[i]).map((q) => q.text));
      }
    }
    // The one-call form runs the same jobs: its result is this summary.
    assert.deepEqual(intra.relations, summary.relations);
    // Same jobs: read back, not recomputed (the stage file exists and holds equal results).
    const again = await p.evaluate(intraRelation.plan(ctx, opts).jobs, 'test');
    assert.deepEqual(again, results);
    assert.equal(jobsDigest(intraRelation.plan(ctx, opts).jobs), jobsDigest(plan.jobs));
    // Another intervention (scaling instead of zeroing) is another key, and gives other answers somewhere.
    const scaled = intraRelation.plan(ctx, { ...opts, ablate: { op: 'scale', factor: 3 } });
    assert.notEqual(jobsDigest(scaled.jobs), jobsDigest(plan.jobs));
    const scaledResults = await p.evaluate(scaled.jobs, 'test');
    assert.notDeepEqual(scaledResults.map((r) => r.outputs), results.map((r) => r.outputs));
    // One neuron more or less is another key too.
    const moved = plan.jobs.map((j, i) => (i === 1 && j.ablation ? { ...j, ablation: { ...j.ablation, neurons: Array.from(j.ablation.neurons).slice(1) } } : j));
    assert.notEqual(jobsDigest(moved), jobsDigest(plan.jobs));
    // A summary refuses results that are not its plan's.
    assert.throws(() => intraRelation.summarise(ctx, plan, results.slice(1)), /not those of this plan/);
    assert.throws(() => intraRelation.summarise(ctx, plan, scaledResults.slice().reverse()), /not those of this plan/);
  });

  test('each experiment plans its jobs: sizes, the quick-mode reduction and the capped ks', async () => {
    const ctx = await p.context();
    const R = RELATIONS.length;
    const full = intraRelation.plan(ctx, { k, randomSeeds: 5, detLimit: 400, sets: ['eva', 'det'] });
    assert.equal(full.jobs.length, R * 2 * (2 + 5));
    const quick = intraRelation.plan(ctx, { k, randomSeeds: 5, detLimit: 400, sets: ['eva', 'det'], quick: true });
    assert.equal(quick.randomSeeds, 3);
    assert.equal(quick.jobs.length, R * 2 * (2 + 3));
    assert.ok(quick.jobs.every((j) => j.key['set'] !== 'det' || j.prompts.length <= 50));
    const known = await p.known();
    const most = Math.max(...known.relations.map((r) => r.known.length));
    assert.ok(most > 50, `the organism's P^det must exceed the quick limit for this check (largest: ${most})`);
    assert.ok(full.jobs.some((j) => j.key['set'] === 'det' && j.prompts.length > 50));
    assert.equal(interRelation.plan(ctx, { k }).jobs.length, R * (R + 1));
    const pool = ctx.space.poolIndices('ffn').length;
    const sweepPlan = kSweep.plan(ctx, { ks: [0, 10, pool + 5, 10 * pool] });
    assert.deepEqual(sweepPlan.ks, [0, 10, pool]);
    assert.equal(sweepPlan.jobs.length, R * 3 * R);
    assert.deepEqual(kSweep.plan(ctx, { ks: [0, 7], quick: true }).ks, QUICK_KS.map((x) => Math.min(x, pool)).filter((x, i, a) => a.indexOf(x) === i));
    const sentences = { company_ceo: Array.from({ length: 30 }, (_, i) => `sentence ${i}`), person_father: [] };
    const ppl = perplexity.plan(ctx, { sentences, k, maxSentences: 20 });
    assert.deepEqual(ppl.relations, ['company_ceo']);
    assert.deepEqual(ppl.jobs.map((j) => j.sentences.length), [20, 20]);
    assert.deepEqual(perplexity.plan(ctx, { sentences, k, maxSentences: 20, quick: true }).jobs.map((j) => j.sentences.length), [10, 10]);
  });

  test('each verdict flips where its criterion does, on hand-made results', async () => {
    const ctx = await p.context();
    const pool = ctx.space.poolIndices('ffn').length;
    // Intra: four relations, each at original 0.9 and random 0.8 ± 0.01; `dropped` of them at 0.5 with their own top-k zeroed.
    const intraWith = (dropped: number, kk = 10): IntraResult => ({
      ...intra,
      k: kk,
      relations: ['a', 'b', 'c', 'd'].map((name, i) => {
        const set = { original: 0.9, randomMean: 0.8, randomSd: 0.01, random: [0.79, 0.81], relation: i < dropped ? 0.5 : 0.8, flips: [] };
        return { name, sets: { eva: set, det: set } };
      }),
    });
    const status = (v: { status: string }[], i: number) => v[i]!.status;
    assert.equal(status(intraRelation.verdicts(intraWith(3), ctx), 0), 'reproduced'); // 3/4 relations: P^det criterion holds
    assert.equal(status(intraRelation.verdicts(intraWith(2), ctx), 0), 'differs');
    assert.equal(status(intraRelation.verdicts(intraWith(3), ctx), 1), 'reproduced'); // more than half on P^eva
    assert.equal(status(intraRelation.verdicts(intraWith(2), ctx), 1), 'differs');
    assert.equal(status(intraRelation.verdicts(intraWith(4, pool), ctx), 0), 'not applicable'); // k = the whole pool
    assert.equal(status(intraRelation.verdicts(intraWith(0), ctx), 2), 'differs'); // random costs 10 points > 5
    // Inter: three relations; the diagonal is its row's maximum in `diag` rows.
    const interWith = (diag: number): InterResult => {
      const names = ['a', 'b', 'c'];
      const dropPercent = names.map((_, i) => names.map((__, j) => (i === j ? (i < diag ? 50 : 5) : 10)));
      return { ...inter, relations: names, original: [1, 1, 1], accuracy: dropPercent.map((r) => r.map((d) => 1 - d / 100)), dropPercent };
    };
    assert.equal(status(interRelation.verdicts(interWith(2), ctx), 0), 'reproduced');
    assert.equal(status(interRelation.verdicts(interWith(1), ctx), 0), 'differs');
    assert.equal(status(interRelation.verdicts(interWith(1), ctx), 1), 'not applicable'); // person_* relations absent
    // k-sweep: own accuracy falling with k for `falling` of four relations.
    const sweepWith = (falling: number): SweepResult => ({
      ...sweep,
      ks: [0, 10, 20, 30],
      poolSize: 1000,
      relations: ['a', 'b', 'c', 'd'],
      accuracy: [0, 1, 2, 3].map((r) => [0, 1, 2, 3].map((ki) => [0, 1, 2, 3].map((j) => (j === r && r < falling ? 1 - 0.2 * ki : 0.9)))),
    });
    assert.equal(status(kSweep.verdicts(sweepWith(3), ctx, { k: 20 }), 0), 'reproduced');
    assert.equal(status(kSweep.verdicts(sweepWith(2), ctx, { k: 20 }), 0), 'differs');
    assert.equal(status(kSweep.verdicts(sweepWith(3), ctx, { k: 20 }), 1), 'reproduced'); // others flat, own drops
    assert.equal(status(kSweep.verdicts(sweepWith(0), ctx, { k: 20 }), 1), 'differs');
    // Cumulativity: macro rising or falling over three ranges of five prompts each.
    const cumWith = (macro: number[]): CumulativityResult => ({
      schema: 'rsn-cumulativity/1', provenance: intra.provenance, ranges: [[10, 50], [50, 200], [200, 500]], relations: ['a'],
      total: [[5, 5, 5]], affected: [macro.map((m) => Math.round(5 * (1 - m)))], macro, micro: macro,
    });
    assert.equal(status(cumulativity.verdicts(cumWith([0.2, 0.6, 0.8]), ctx), 0), 'reproduced');
    assert.equal(status(cumulativity.verdicts(cumWith([0.8, 0.6, 0.2]), ctx), 0), 'differs');
    assert.equal(status(cumulativity.verdicts(cumWith([0.2, 0.6, 0.8]), ctx), 2), 'not applicable'); // no range beyond 10k
    // Perplexity: no systematic increase unless every relation rises or the geometric mean ratio exceeds 1.1.
    const pplWith = (after: number[]): PerplexityResult => ({
      schema: 'rsn-perplexity/1', provenance: intra.provenance, k: 10,
      relations: after.map((a, i) => ({ name: `r${i}`, sentences: 5, before: 10, after: a })),
    });
    assert.equal(status(perplexity.verdicts(pplWith([9, 11]), ctx), 0), 'reproduced');
    assert.equal(status(perplexity.verdicts(pplWith([11, 12]), ctx), 0), 'differs');
    assert.equal(status(perplexity.verdicts(pplWith([9, 11]), ctx), 1), 'not applicable'); // not LLaMA-2-7B
  });
});

