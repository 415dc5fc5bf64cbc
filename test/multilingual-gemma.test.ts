/**
 * Notebooks 09 and 14 as objects: the multilingual plan (its size, the quick-mode reduction and the
 * translated prompts) on the bundled organism with four relations, the multilingual summary on
 * hand-set job accuracies, and the verdicts of both on hand-made results, each flipping where its
 * criterion does.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convertCheckpoint } from '../weights-converter/convert.ts';
import { Pipeline } from '../lib/runs/pipeline.ts';
import {
  capK,
  gemma,
  gemmaLayerTable,
  multilingual,
  readTranslations,
  type Context,
  type GemmaInput,
  type GemmaParams,
  type IntraResult,
  type IntraSetResult,
  type LayersResult,
  type MultilingualResult,
  type MultilingualRow,
  type SweepResult,
  type TranslationsFile,
} from '../lib/method/experiments.ts';
import { PAPER_NUMBERS_FILE, parsePaperNumbers } from '../lib/method/paper-numbers.ts';
import type { Provenance } from '../lib/method/identity.ts';

const organism = process.env['RSN_TEST_ORGANISM'] ?? new URL('../data/organism', import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), 'rsn-multilingual-gemma-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

const RELATIONS = ['company_ceo', 'landmark_country', 'person_father', 'person_mother'];
const provenance: Provenance = { model: { name: 'hand', dir: '', sha256: '', storageDtype: 'float32' }, dataHash: '', seed: 0, backend: '', version: '', createdAt: '' };
const statuses = (v: { status: string }[]) => v.map((x) => x.status);

describe('the multilingual plan on the organism', () => {
  let p: Pipeline;
  let ctx: Context;
  let k: number;
  let world: TranslationsFile;
  before(async () => {
    await convertCheckpoint({ inputDir: organism, outputDir: join(work, 'model'), dtype: 'float32' });
    p = await Pipeline.open({ modelDir: join(work, 'model'), dataDir: join(organism, 'relations'), cacheDir: join(work, 'cache'), relations: RELATIONS, run: { batchSize: 128, quiet: true } });
    ctx = await p.context();
    k = capK(ctx, 20);
    world = readTranslations(join(organism, 'world.json'))!;
  });
  after(() => p?.dispose());

  test('per relation English and each translated language; original, relation-k and each random-k per set', () => {
    const R = RELATIONS.length;
    const full = multilingual.plan(ctx, { k, randomSeeds: 5, languages: ['de', 'zh'], world });
    assert.equal(full.sets.length, R * 3);
    assert.equal(full.jobs.length, R * 3 * (2 + 5));
    assert.deepEqual(full.languages, ['en', 'de', 'zh']);
    assert.equal(full.missing, null);
    const ceo = ctx.dataset.relations.find((r) => r.relation.name === 'company_ceo')!;
    const de = full.sets.find((s) => s.relation === 'company_ceo' && s.language === 'de')!;
    // The translated set: one prompt per evaluation triple, the German template with the subject and no answer suffix.
    assert.equal(de.prompts.length, ceo.split.evaluation.length);
    const first = ceo.split.evaluation[0]!;
    assert.equal(de.prompts[0]!.text, `Der CEO von ${first.subject} ist`);
    assert.equal(de.prompts[0]!.object, first.object);
    assert.equal(full.sets.find((s) => s.relation === 'company_ceo' && s.language === 'en')!.prompts, ceo.eva);
    // Each set's relation-k ablation is that relation's, whatever the language.
    const own = full.jobs.filter((j) => j.key['condition'] === 'relation' && j.key['relation'] === 'person_father');
    assert.equal(own.length, 3);
    const neurons = own.map((j) => Array.from(j.ablation!.neurons));
    assert.equal(neurons[0]!.length, k);
    assert.deepEqual(neurons[1], neurons[0]);
    assert.deepEqual(neurons[2], neurons[0]);

    const quick = multilingual.plan(ctx, { k, randomSeeds: 5, languages: ['de', 'zh'], world, quick: true });
    assert.equal(quick.randomSeeds, 3);
    assert.equal(quick.jobs.length, R * 3 * (2 + 3));
    assert.equal(multilingual.plan(ctx, { k, randomSeeds: 2, languages: ['de'], world, quick: true }).jobs.length, R * 2 * (2 + 2));
  });

  test('a language a relation has no translation for is left out; no world: no jobs, the verdicts say why', () => {
    const partial: TranslationsFile = {
      note: '',
      relations: world.relations.map((r) => (r.name === 'person_mother' ? { name: r.name, translations: { de: r.translations['de']! } } : r)),
    };
    const plan = multilingual.plan(ctx, { k, randomSeeds: 1, languages: ['de', 'ja'], world: partial });
    assert.equal(plan.sets.length, 3 * 3 + 2);
    assert.ok(!plan.sets.some((s) => s.relation === 'person_mother' && s.language === 'ja'));
    const none = multilingual.plan(ctx, { k, randomSeeds: 3, languages: ['de'], world: null, missing: 'no world here' });
    assert.deepEqual([none.sets.length, none.jobs.length], [0, 0]);
    const result = multilingual.summarise(ctx, none, []);
    const v = multilingual.verdicts(result, ctx);
    assert.deepEqual(statuses(v), ['not applicable', 'not applicable']);
    assert.match(v[0]!.detail!, /no world here/);
  });

  test('the summary: per set the original and relation-k accuracy and the mean of the random-k draws', () => {
    const plan = multilingual.plan(ctx, { k, randomSeeds: 3, languages: ['de'], world });
    const acc: Record<string, number> = { original: 0.75, relation: 0.25, random0: 0.25, random1: 0.5, random2: 0.75 };
    const results = plan.jobs.map((j) => ({ key: j.key, outputs: [], correct: [], accuracy: acc[j.key['condition'] as string]! }));
    const result = multilingual.summarise(ctx, plan, results);
    assert.equal(result.rows.length, RELATIONS.length * 2);
    const row = result.rows.find((r) => r.relation === 'landmark_country' && r.language === 'de')!;
    assert.deepEqual([row.original, row.relation_k, row.random], [0.75, 0.25, 0.5]);
    assert.equal(row.prompts, ctx.dataset.relations.find((r) => r.relation.name === 'landmark_country')!.split.evaluation.length);
    assert.throws(() => multilingual.summarise(ctx, plan, results.slice(1)), /not those of this plan/);
  });
});

describe('the translations file', () => {
  test('no file: null; a file that is not JSON or has no relations with translations is refused, naming the file and the field', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rsn-translations-'));
    try {
      assert.equal(readTranslations(join(dir, 'none.json')), null);
      const file = join(dir, 'world.json');
      const cases: [string, RegExp][] = [
        ['{"relations": [', /world\.json: not readable JSON/],
        ['{"note": "x"}', /world\.json: field "relations" must be an array of \{ name, translations \}/],
        ['{"relations": [{"name": "a", "translations": {"de": 3}}]}', /world\.json: relations\[0\] must have a string "name" and "translations" mapping a language to its template/],
      ];
      for (const [text, message] of cases) {
        writeFileSync(file, text);
        assert.throws(() => readTranslations(file), (e: Error) => e.name === 'DataError' && message.test(e.message), text);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the multilingual verdicts on hand-made results', () => {
  const row = (relation: string, language: string, original: number, relation_k: number, random = original): MultilingualRow => ({ relation, language, original, relation_k, random, prompts: 50 });
  const result = (rows: MultilingualRow[]): MultilingualResult => ({ schema: 'rsn-multilingual/1', provenance, k: 10, randomSeeds: 3, languages: ['en', 'de', 'zh'], missing: null, rows });

  test('accuracy lower outside English: every other language below English, or not', () => {
    const lower = result([row('a', 'en', 0.9, 0.5), row('a', 'de', 0.5, 0.2), row('a', 'zh', 0.2, 0.1)]);
    const v = multilingual.verdicts(lower, {} as Context);
    assert.equal(v[0]!.status, 'reproduced');
    assert.equal(v[0]!.ours, 'en 90 %; de 50 %, zh 20 %');
    assert.equal(v[0]!.paper, 'lower in de/es/fr, poor in zh/ja');
    const deHigher = result([row('a', 'en', 0.9, 0.5), row('a', 'de', 0.95, 0.2), row('a', 'zh', 0.2, 0.1)]);
    assert.equal(multilingual.verdicts(deHigher, {} as Context)[0]!.status, 'differs');
  });

  test('a drop in at least 2/3 of the non-English cells with original accuracy > 0, or not', () => {
    const en = row('a', 'en', 0.9, 0.1);
    // Three cells with original > 0 (the zero cell does not count): two drop = 2/3.
    const two = result([en, row('a', 'de', 0.6, 0.3, 0.5), row('b', 'de', 0.6, 0.6), row('a', 'zh', 0.4, 0.1, 0.4), row('b', 'zh', 0, 0)]);
    const v = multilingual.verdicts(two, {} as Context);
    assert.equal(v[1]!.status, 'reproduced');
    assert.equal(v[1]!.ours, 'a drop in 2/3 non-English cells (below the random-k mean in 2/3)');
    const one = result([en, row('a', 'de', 0.6, 0.3), row('b', 'de', 0.6, 0.6), row('a', 'zh', 0.4, 0.5), row('b', 'zh', 0, 0)]);
    assert.equal(multilingual.verdicts(one, {} as Context)[1]!.status, 'differs');
    // No cell with accuracy above 0: nothing to drop.
    assert.equal(multilingual.verdicts(result([en, row('a', 'de', 0, 0), row('a', 'zh', 0, 0)]), {} as Context)[1]!.status, 'differs');
  });
});

describe('the Gemma-7B verdicts on hand-made results', () => {
  const share = (relation: string, middleShare: number, peakLayer: number) =>
    ({ relation, middleShare, firstQuarterShare: 0, lastQuarterShare: 1 - middleShare, peakLayer, peakInMiddle: peakLayer === 1 || peakLayer === 2 });
  // 4 layers: the middle is layers 1–2, a uniform share of 0.5.
  const layers = (a: [number, number], b: [number, number]): LayersResult => ({
    k: 10, numLayers: 4, relations: ['a', 'b'], counts: [[0, 5, 3, 2], [1, 2, 6, 1]], middle: [1, 2], shares: [share('a', ...a), share('b', ...b)],
  });
  const set = (original: number, relation: number): IntraSetResult => ({ original, randomMean: 0.8, randomSd: 0.01, random: [0.79, 0.8, 0.81], relation, flips: [] });
  /** Four relations, `dropped` of them at 0.3 on P^det with their own top-k zeroed (random 0.8 ± 0.01). */
  const intra = (dropped: number): IntraResult => ({
    schema: 'rsn-intra/1', provenance, k: 10, pool: 'ffn', randomSeeds: 3,
    relations: ['a', 'b', 'c', 'd'].map((name, i) => ({ name, sets: { det: set(0.9, i < dropped ? 0.3 : 0.8), eva: set(0.9, 0.8) } })),
  });
  /** ks 0, 10, 100 of 1000 (1 % = 10): at k = 10 each relation's own accuracy falls from 0.9 to `ownAt10`, the other's from 0.8 to 0.78. */
  const sweep = (ownAt10: number): SweepResult => ({
    schema: 'rsn-ksweep/1', provenance, ks: [0, 10, 100], poolSize: 1000, relations: ['a', 'b'], ownCorrect: [],
    accuracy: [
      [[0.9, 0.8], [ownAt10, 0.78], [0.1, 0.1]],
      [[0.8, 0.9], [0.78, ownAt10], [0.1, 0.1]],
    ],
  });
  const good: GemmaInput = { layers: layers([0.8, 1], [0.8, 2]), intra: intra(3), sweep: sweep(0.3) };
  const onGemma: GemmaParams = { model: { family: 'gemma', numLayers: 28, hiddenSize: 3072 } };
  const run = (input: GemmaInput, params = onGemma) => gemma.verdicts(gemma.summarise(input, params));

  test('on Gemma: each claim reproduced on results that meet its criterion', () => {
    const v = run(good);
    assert.deepEqual(statuses(v), ['reproduced', 'reproduced', 'reproduced']);
    assert.equal(v[0]!.ours, '80.0 % of the top-10 in layers 1–2 (uniform 50 %); peak in the middle for 2/2 relations');
    assert.equal(v[1]!.ours, 'P^det: 3/4 relations below random by > 2 sd; mean 42.5 % (relation-k) vs 80.0 % (random-k)');
    assert.equal(v[2]!.ours, 'at k = 10 (1.00 % of the pool): own accuracy −60.0 points, others −2.0 points');
    assert.equal(v[2]!.paper, 'own first; all fall beyond ≈ 10k (Figs. 14–15)');
  });

  test('on Gemma: each claim differs where its criterion fails', () => {
    // Layers: the middle share below uniform; or above it with most peaks outside the middle.
    assert.equal(run({ ...good, layers: layers([0.4, 1], [0.4, 2]) })[0]!.status, 'differs');
    assert.equal(run({ ...good, layers: layers([0.8, 0], [0.8, 3]) })[0]!.status, 'differs');
    // Intra: 2 of 4 relations below random is under 3/4.
    assert.equal(run({ ...good, intra: intra(2) })[1]!.status, 'differs');
    // Sweep: the others drop 2 points; an own drop of 4 points is not more than 5 above that, one of 8 is.
    assert.equal(run({ ...good, sweep: sweep(0.86) })[2]!.status, 'differs');
    assert.equal(run({ ...good, sweep: sweep(0.82) })[2]!.status, 'reproduced');
  });

  test('on another family every claim is not applicable, with our numbers still shown', () => {
    const v = run(good, { model: { family: 'llama', numLayers: 4, hiddenSize: 64 } });
    assert.deepEqual(statuses(v), ['not applicable', 'not applicable', 'not applicable']);
    assert.match(v[0]!.detail!, /^not Gemma \(llama, 4 layers, hidden 64\)/);
    assert.match(String(v[1]!.ours), /^P\^det: 3\/4/);
  });

  test("Fig. 13's table: the layer counts, each relation's middle share and peak layer", () => {
    assert.deepEqual(gemmaLayerTable(good.layers)[1], { relation: 'b', L0: 1, L1: 2, L2: 6, L3: 1, 'middle share': 0.8, 'peak layer': 2 });
  });
});

test('a damaged multilingual or gemma section of the paper numbers is refused, naming the field', () => {
  const good = JSON.parse(readFileSync(PAPER_NUMBERS_FILE, 'utf8')) as Record<string, Record<string, unknown>>;
  const noLower = structuredClone(good);
  noLower['multilingual']!['lowerThanEnglish'] = [];
  assert.throws(() => parsePaperNumbers(noLower), /multilingual\.lowerThanEnglish/);
  const noK = structuredClone(good);
  delete noK['gemma']!['allRelationsFallBeyondK'];
  assert.throws(() => parsePaperNumbers(noK), /gemma\.allRelationsFallBeyondK/);
});
