/**
 * The views of an intra-relation result (notebooks 08, 11, 13) on hand-built results: each summary
 * value worked out by hand, and each verdict's status flipping between a result that meets its
 * criterion and one that does not.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Prompt } from '../lib/data/prompts.ts';
import { RELATION_SCHEMA } from '../lib/data/relation.ts';
import type { Dataset, RelationSet } from '../lib/method/dataset.ts';
import {
  answerKindsTable,
  eva2Table,
  eva2Templates,
  factFrequency,
  factFrequencyTable,
  flipCategories,
  flipCategoriesTable,
  frequencyMeasure,
  type FactFrequencies,
  type IntraResult,
  type IntraSetResult,
} from '../lib/method/experiments.ts';
import { KNOWN_SCHEMA, type KnownFacts } from '../lib/method/known.ts';

type Flip = IntraSetResult['flips'][number];

const provenance = { model: { name: 'hand', dir: '', sha256: '', storageDtype: 'float32' as const }, dataHash: '', seed: 0, backend: '', version: '', createdAt: '' };

function set(original: number, randomMean: number, randomSd: number, relation: number, flips: Flip[] = []): IntraSetResult {
  return { original, randomMean, randomSd, random: [randomMean], relation, flips };
}

function intraOf(relations: IntraResult['relations']): IntraResult {
  return { schema: 'rsn-intra/1', provenance, k: 7, pool: 'ffn', randomSeeds: 3, relations };
}

const flip = (prompt: string, after: string): Flip => ({ prompt, object: 'x', before: ' x', after });

describe('eva2Templates (Fig. 8)', () => {
  // r1: P^eva-2 62.5 % → 25 %, random 50 % ± 5 (below by > 2 sd); r2: 75 % → 62.5 %, random 87.5 % ± 12.5 (not below).
  const base = (r2Eva2Relation: number, r2EvaOriginal: number) =>
    intraOf([
      { name: 'r1', sets: { eva: set(0.75, 0.75, 0, 0.5), eva2: set(0.625, 0.5, 0.05, 0.25) } },
      { name: 'r2', sets: { eva: set(r2EvaOriginal, 0.875, 0, 0.5), eva2: set(0.75, 0.875, 0.125, r2Eva2Relation) } },
      { name: 'r3', sets: { eva: set(1, 1, 0, 1) } },
    ]);

  test('summary: accuracies in %, relations without P^eva-2 skipped, and the table keeps its columns', () => {
    const s = eva2Templates.summarise(base(0.625, 0.875), {});
    assert.deepEqual(s.skipped, ['r3']);
    assert.deepEqual([s.k, s.randomSeeds], [7, 3]);
    assert.deepEqual(s.rows.map((r) => [r.relation, r.evaOriginal, r.evaRelation, r.eva2Original, r.eva2Random, r.eva2Relation, r.belowRandom]), [
      ['r1', 75, 50, 62.5, 50, 25, true],
      ['r2', 87.5, 50, 75, 87.5, 62.5, false],
    ]);
    assert.deepEqual(eva2Table(s)[1], { relation: 'r2', 'eva original': 87.5, 'eva relation': 50, 'eva-2 original': 75, 'eva-2 random': 87.5, 'eva-2 relation': 62.5 });
  });

  test('a drop for every relation is reproduced; a drop for 1 of 2 is not', () => {
    const [drop, shift] = eva2Templates.verdicts(eva2Templates.summarise(base(0.625, 0.875), {}));
    assert.equal(drop!.ours, 'a drop for 2/2 relations; mean 68.8 % → 43.8 %');
    assert.equal(drop!.status, 'reproduced');
    assert.match(drop!.detail!, /random-7 gives 68\.8 %, and the relation's neurons are below random by > 2 sd for 1\/2\)$/);
    // (|62.5 − 75| + |75 − 87.5|) / 2 = 12.5 points: more than the 10 allowed.
    assert.equal(shift!.ours, 'mean |P^eva-2 − P^eva| original accuracy 12.5 points');
    assert.equal(shift!.status, 'differs');
    const [noDrop, smallShift] = eva2Templates.verdicts(eva2Templates.summarise(base(0.875, 0.75), {}));
    assert.equal(noDrop!.ours, 'a drop for 1/2 relations; mean 68.8 % → 56.3 %');
    assert.equal(noDrop!.status, 'differs');
    // (12.5 + 0) / 2 = 6.25 points.
    assert.equal(smallShift!.status, 'reproduced');
    assert.equal(smallShift!.detail, '+6.25 points (tolerance 10 points)');
  });
});

describe('flipCategories (Table 4)', () => {
  // company_ceo: 2 repeats, 1 "The", 1 other; r2: 1 repeat, 3 "A."; r3: no flips.
  const ceo = [
    flip("Sony's CEO is", ' Sony'),
    flip("Sony's CEO is", " Sony's CEO"),
    flip("Sony's CEO is", ' The company'),
    flip("Sony's CEO is", ' Paris'),
  ];
  const r2 = [flip('Bo plays the', ' Bo'), flip('Bo plays the', ' A.'), flip('Bo plays the', ' A. B'), flip('Bo plays the', ' A')];
  const repeats = [flip("Kim's CEO is", ' Kim'), flip("Kim's CEO is", ' Kim is'), flip("Kim's CEO is", ' Kim'), flip("Kim's CEO is", ' Kim')];
  const intra = (extra: IntraResult['relations']) =>
    intraOf([
      { name: 'company_ceo', sets: { eva: set(1, 1, 0, 0, ceo) } },
      { name: 'r2', sets: { eva: set(1, 1, 0, 0, r2) } },
      { name: 'r3', sets: { eva: set(1, 1, 0, 1) } },
      ...extra,
    ]);

  test('summary: the shares per relation, and the table with the paper\'s Table 4 beside ours', () => {
    const s = flipCategories.summarise(intra([]), { set: 'eva' });
    assert.deepEqual(s.relations.map((r) => [r.relation, r.flips]), [['company_ceo', 4], ['r2', 4], ['r3', 0]]);
    assert.deepEqual(s.relations[0]!.shares, { repeat: 0.5, the: 0.25, 'a.': 0, other: 0.25 });
    assert.deepEqual(s.relations[1]!.shares, { repeat: 0.25, the: 0, 'a.': 0.75, other: 0 });
    const table = flipCategoriesTable(s);
    assert.deepEqual(table[0], {
      relation: 'company_ceo', flips: 4, 'repeat %': 50, '"The" %': 25, '"A." %': 0, 'other %': 25,
      'paper flips': 23, 'paper repeat': 47.8, 'paper "The"': 8.7, 'paper "A."': 34.8,
    });
    assert.deepEqual(table[2], {
      relation: 'r3', flips: 0, 'repeat %': null, '"The" %': null, '"A." %': null, 'other %': null,
      'paper flips': null, 'paper repeat': null, 'paper "The"': null, 'paper "A."': null,
    });
  });

  test('repeat largest for most relations with flips is reproduced; for half of them it is not', () => {
    const [most, pooled] = flipCategories.verdicts(flipCategories.summarise(intra([]), {}));
    assert.equal(most!.paper, 'repeat largest for 11 of 12 relations (person_sport_position: "A.")');
    assert.equal(most!.ours, 'repeat largest for 1/2 relations with flips');
    assert.equal(most!.status, 'differs');
    // Table 4: Σ flips × repeat % / 100 = 143.921 of 269 flips = 53.5 %; ours (2 + 1) / 8 = 37.5 %, 16 points off.
    assert.equal(pooled!.paper, '53.5 % of 269 flips');
    assert.equal(pooled!.ours, '37.5 % of 8 flips ("The" 12.5 %, "A." 37.5 %, other 12.5 %)');
    assert.equal(pooled!.status, 'differs');
    const [most2, pooled2] = flipCategories.verdicts(flipCategories.summarise(intra([{ name: 'r4', sets: { eva: set(1, 1, 0, 0, repeats) } }]), {}));
    assert.equal(most2!.ours, 'repeat largest for 2/3 relations with flips');
    assert.equal(most2!.status, 'reproduced');
    // (2 + 1 + 4) / 12 = 58.3 %.
    assert.equal(pooled2!.ours, '58.3 % of 12 flips ("The" 8.3 %, "A." 25.0 %, other 8.3 %)');
    assert.equal(pooled2!.status, 'reproduced');
  });

  test('answer kinds: whose object a deactivated output starts', () => {
    const rel = (name: string, objects: string[]): RelationSet => ({
      relation: { schema: RELATION_SCHEMA, name, language: 'en', templates: [], eva2Templates: [], notes: [], samples: objects.map((o) => ({ subject: 's', object: o })), file: '', sha256: '' },
      split: { relation: name, relationSha256: '', seed: 0, evalTriples: 0, evaluation: [], detection: [] },
      det: [],
      eva: [],
      eva2: [],
    });
    const dataset: Dataset = { dir: '', seed: 0, hash: '', relations: [rel('a', ['Paris', 'Rome']), rel('b', ['Piano', 'Guitar'])] };
    const hand = intraOf([
      { name: 'a', sets: { eva: set(1, 1, 0, 0, [flip('p', ' Rome'), flip('p', ' "Pia'), flip('p', ' Guit'), flip('p', ' x')]) } },
      { name: 'b', sets: { eva: set(1, 1, 0, 1) } },
    ]);
    assert.deepEqual(answerKindsTable(hand, dataset), [
      { relation: 'a', flips: 4, "same relation's object %": 25, "another relation's object %": 50, 'most frequent other relation': 'b (2)' },
      { relation: 'b', flips: 0, "same relation's object %": null, "another relation's object %": null, 'most frequent other relation': '' },
    ]);
  });
});

describe('factFrequency (App. E)', () => {
  // Every relation: 4 known P^det facts s1–s4, s3 and s4 lost. cooccurrence 6, 10 | 2, 6 → dif (8 − 4) / 4 = 1;
  // mentions 1, 1 | 3, 5 → dif (1 − 4) / 4 = −0.75.
  const names = ['r0', 'r1', 'r2', 'r3', 'r4'];
  const prompt = (relation: string, i: number): Prompt => ({ relation, row: i, subject: `${relation}-s${i + 1}`, object: 'o', templateIndex: 0, template: '{}', text: `${relation} s${i + 1}?` });
  const dets = (name: string) => [0, 1, 2, 3].map((i) => prompt(name, i));
  const all = [...names, 'rx'];
  const dataset: Dataset = {
    dir: '',
    seed: 0,
    hash: '',
    relations: all.map((name) => ({
      relation: { schema: RELATION_SCHEMA, name, language: 'en', templates: [], eva2Templates: [], notes: [], samples: [], file: '', sha256: '' },
      split: { relation: name, relationSha256: '', seed: 0, evalTriples: 0, evaluation: [], detection: [] },
      det: dets(name),
      eva: [],
      eva2: [],
    })),
  };
  const known: KnownFacts = { schema: KNOWN_SCHEMA, provenance, maxNewTokens: 2, relations: all.map((name) => ({ name, total: 4, known: [0, 1, 2, 3], outputs: [] })) };
  const co = [6, 10, 2, 6];
  const me = [1, 1, 3, 5];
  const facts: FactFrequencies[] = all.flatMap((name) => dets(name).map((p, i) => ({ relation: name, subject: p.subject, object: p.object, cooccurrence: co[i]!, mentions: me[i]! })));
  const lostOf = (name: string) => dets(name).slice(2).map((p) => ({ prompt: p.text, object: 'o', before: ' o', after: ' z' }));
  // rx loses nothing: no sensitive facts, so it is left out of the comparison.
  const intra = intraOf(all.map((name) => ({ name, sets: { det: set(1, 1, 0, 0.5, name === 'rx' ? [] : lostOf(name)) } })));
  const input = (relations: string[], detLimit?: number) => ({
    intra: { ...intra, relations: intra.relations.filter((r) => relations.includes(r.name)) },
    dataset: dataset,
    known: known,
    detLimit: detLimit,
    facts: facts,
  });

  test('summary: group sizes, mean frequencies, dif; the P^det limit; the relations left out', () => {
    const s = factFrequency.summarise(input(['r0', 'rx']), { frequency: 'cooccurrence' });
    assert.deepEqual(factFrequencyTable(s)[0], { relation: 'r0', resilient: 2, sensitive: 2, 'mean freq resilient': 8, 'mean freq sensitive': 4, dif: 1 });
    assert.deepEqual(s.tested.map((r) => r.relation), ['r0']);
    assert.deepEqual(s.excluded, ['rx (no sensitive facts)']);
    assert.ok(Number.isNaN(s.rows![1]!.dif));
    assert.equal(factFrequency.summarise(input(['r0']), { frequency: 'mentions' }).rows![0]!.dif, -0.75);
    // The first 3 facts only: resilient 6, 10; sensitive 2 → dif (8 − 2) / 2 = 3.
    assert.equal(factFrequency.summarise(input(['r0'], 3), { frequency: 'cooccurrence' }).rows![0]!.dif, 3);
    assert.throws(() => frequencyMeasure('subject'), /use "cooccurrence" or "mentions"/);
  });

  test('resilient facts more frequent for 5/5 relations is reproduced; for 0/5 it is not', () => {
    const yes = factFrequency.summarise(input(all), { frequency: 'cooccurrence' });
    // Five equal differences of +1: ranks 3 each, W+ = 15; two of the 32 sign patterns are as extreme, p = 0.0625.
    assert.deepEqual([yes.test!.n, yes.test!.wPlus, yes.test!.wMinus, yes.test!.p], [5, 15, 0, 0.0625]);
    const [more, wilcoxon] = factFrequency.verdicts(yes);
    assert.equal(more!.paper, '9/12 relations (7B), 10/11 (13B)');
    assert.equal(more!.ours, '5/5 relations (cooccurrence)');
    assert.equal(more!.status, 'reproduced');
    assert.equal(more!.detail, 'criterion: ≥ 3/4 of the relations with both groups (paper 7B: 9/12 = 75 %); excluded: rx (no sensitive facts)');
    assert.equal(wilcoxon!.paper, 'p = 0.11 (7B), 0.03 (13B)');
    assert.equal(wilcoxon!.ours, 'p = 0.063 over 5 relations (W+ 15, W− 0; exact)');
    assert.equal(wilcoxon!.status, 'reproduced');
    const no = factFrequency.verdicts(factFrequency.summarise(input(all), { frequency: 'mentions' }));
    assert.deepEqual(no.map((v) => [v.ours, v.status]), [
      ['0/5 relations (mentions)', 'differs'],
      ['p = 0.063 over 5 relations (W+ 0, W− 15; exact)', 'differs'],
    ]);
    // Four relations only: p = 2/16 = 0.125 > 0.11, so the test alone differs.
    const four = factFrequency.verdicts(factFrequency.summarise(input(['r0', 'r1', 'r2', 'r3']), { frequency: 'cooccurrence' }));
    assert.deepEqual(four.map((v) => v.status), ['reproduced', 'differs']);
  });

  test('without frequencies both claims are not applicable, saying why', () => {
    const s = factFrequency.summarise({ ...input(all), facts: null, noFacts: 'no world here' }, { frequency: 'cooccurrence' });
    const vs = factFrequency.verdicts(s);
    assert.deepEqual(vs.map((v) => [v.status, v.ours, v.paper]), [
      ['not applicable', null, 'p = 0.11 (7B), 0.03 (13B); 3 / 2 exceptions'],
      ['not applicable', null, 'p = 0.11 (7B), 0.03 (13B); 3 / 2 exceptions'],
    ]);
    assert.match(vs[0]!.detail!, /^no pretraining frequencies \(no world here; /);
    // Relations without any facts: the first claim is not applicable, the test has nothing to test.
    const none = factFrequency.verdicts(factFrequency.summarise(input(['rx']), { frequency: 'cooccurrence' }));
    assert.deepEqual(none.map((v) => v.status), ['not applicable', 'not applicable']);
  });
});
