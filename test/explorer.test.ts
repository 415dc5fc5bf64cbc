/**
 * A relation of one's own (lib/data/own-relation.ts) and the neuron explorer (lib/method/explorer.ts).
 *
 * Plain Node: rsn-relation/1 and LRE files read and converted, malformed files refused with the
 * file and field named, the data folder (base relations + the new one with splits, named by its
 * content, nothing written to the base data or the user's file) and the overlap check, counted
 * here independently.
 *
 * On the bundled organism (converted by the real converter), with the example relation
 * data/examples/landmark_country_copy.json: the explorer's AP of a neuron equals the ranking's
 * (bit for bit, as float32) and that of activations recorded here by a direct forward pass; its
 * positives and negatives are the identification set's; a single-neuron ablation equals answers
 * counted here from model.generate with a hand-built zeroing hook; and that hook changes the
 * forward pass exactly as the library's ablation path does.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convertCheckpoint } from '../weights-converter/convert.ts';
import { buildOwnData, lreRelationName, readOwnRelation, relationOverlaps } from '../lib/data/own-relation.ts';
import { DataError, loadRelations, parseRelation } from '../lib/data/relation.ts';
import { sha256Hex } from '../lib/data/io.ts';
import { isCorrectAnswer } from '../lib/data/answer-check.ts';
import { loadDataset } from '../lib/method/dataset.ts';
import { Pipeline } from '../lib/runs/pipeline.ts';
import { buildIdentificationSet, topNeurons } from '../lib/method/ranking.ts';
import { ablation } from '../lib/method/neurons.ts';
import { relationPrompts, runJobs } from '../lib/method/experiments.ts';
import { neuronLabel, neuronProfile, parseNeuron, pickNeuron, rankOf, singleNeuronAblation } from '../lib/method/explorer.ts';
import { hookPointName, type Intervention } from '../lib/model/hooks.ts';
import { averagePrecision } from '../lib/stats/average-precision.ts';
import { ConfigError } from '../lib/errors.ts';

const root = new URL('../', import.meta.url).pathname;
const organism = process.env['RSN_TEST_ORGANISM'] ?? join(root, 'data', 'organism');
const baseDir = join(organism, 'relations');
const example = join(root, 'data', 'examples', 'landmark_country_copy.json');
const work = mkdtempSync(join(tmpdir(), 'rsn-explorer-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** Write a JSON value as a relation file in the work dir; returns its path. */
function relationFile(name: string, value: unknown): string {
  const path = join(work, name);
  writeFileSync(path, typeof value === 'string' ? value : JSON.stringify(value, null, 1));
  return path;
}

const example$ = () => JSON.parse(readFileSync(example, 'utf8')) as Record<string, unknown> & { samples: { subject: string; object: string }[] };

/** Every file under a folder with its sha256, to show that nothing there changed. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else out[p] = sha256Hex(readFileSync(p));
    }
  };
  walk(dir);
  return out;
}

describe('reading a relation of one\'s own', () => {
  test('rsn-relation/1: the file as is, hashed by its bytes', () => {
    const own = readOwnRelation(example);
    assert.equal(own.format, 'rsn-relation/1');
    assert.equal(own.relation.name, 'landmark_country_copy');
    assert.equal(own.relation.file, example);
    assert.equal(own.relation.sha256, sha256Hex(readFileSync(example)));
    assert.deepEqual(own.bytes, readFileSync(example));
    // The example is landmark_country's facts and templates under another name.
    const source = loadRelations(baseDir).find((r) => r.name === 'landmark_country')!;
    assert.deepEqual([own.relation.templates, own.relation.eva2Templates, own.relation.samples], [source.templates, source.eva2Templates, source.samples]);
  });

  test('LRE format: converted (zero-shot originals dropped), written as rsn-relation/1 that the strict loader reads back', () => {
    const samples = [{ subject: 'Ada Lovelace', object: 'mathematics' }, { subject: 'Pelé', object: 'soccer' }];
    const path = relationFile('lre.json', {
      name: 'person plays pro sport',
      prompt_templates: ['{} plays the sport of', '{} is a professional'],
      prompt_templates_zs: ['{} plays the sport of', 'What sport does {} play? They play', 'What sport does {} play? They play'],
      properties: { relation_type: 'factual', domain_name: 'person', range_name: 'sport', symmetric: false },
      samples,
    });
    const own = readOwnRelation(path);
    assert.equal(own.format, 'lre');
    assert.equal(lreRelationName('person plays pro sport'), 'person_plays_pro_sport');
    const back = parseRelation(new TextDecoder().decode(own.bytes), 'written');
    assert.equal(back.name, 'person_plays_pro_sport');
    assert.deepEqual(back.templates, ['{} plays the sport of', '{} is a professional']);
    assert.deepEqual(back.eva2Templates, ['What sport does {} play? They play']);
    assert.deepEqual(back.samples, samples);
    assert.deepEqual(back.source?.upstream?.properties, { relation_type: 'factual', domain_name: 'person', range_name: 'sport', symmetric: false });
    assert.equal(own.relation.sha256, sha256Hex(own.bytes), 'the relation is hashed by the bytes the data folder will hold');
  });

  test('malformed files: a DataError naming the file and the field, saying what was expected', () => {
    const good = example$();
    const cases: [string, unknown, string, RegExp][] = [
      ['no-templates.json', { ...good, templates: undefined }, 'templates', /field "templates": required field is missing/],
      ['two-slots.json', { ...good, templates: ['{} is in {}'] }, 'templates[0]', /field "templates\[0\]": expected a template with exactly one "\{\}".*\(2 slots\)/],
      ['misspelt.json', { ...good, eva2templates: [] }, 'eva2templates', /field "eva2templates": unknown field/],
      ['bad-object.json', { ...good, samples: [{ subject: 'A', object: ' B' }] }, 'samples[0].object', /field "samples\[0\]\.object": expected a string without leading or trailing whitespace/],
      ['not-json.json', '{"schema": "rsn-relation/1",', '(whole file)', /expected valid JSON/],
      ['neither.json', { name: 'x', samples: [] }, 'schema', /field "schema": expected "rsn-relation\/1" \(or an LRE-format file/],
      ['lre-slot.json', { name: 'x', prompt_templates: ['{} is', 'no slot'], samples: [{ subject: 'a', object: 'b' }] }, 'prompt_templates[1]', /field "prompt_templates\[1\]": expected a template with exactly one "\{\}".*\(0 slots\).*LRE-format/],
      ['lre-extra.json', { name: 'x', prompt_templates: ['{} is'], samples: [], relation: 1 }, 'relation', /field "relation": unknown field \(allowed in an LRE-format file/],
      ['lre-samples.json', { name: 'x', prompt_templates: ['{} is'], samples: [{ subject: 'a' }] }, 'samples[0].object', /field "samples\[0\]\.object": required field is missing/],
    ];
    for (const [file, value, field, message] of cases) {
      const path = relationFile(file, value);
      assert.throws(
        () => readOwnRelation(path),
        (e: unknown) => e instanceof DataError && e.file === path && e.field === field && message.test(e.message) && e.message.startsWith(path),
        `${file}: expected a DataError for field ${field}`,
      );
    }
  });
});

describe('the data folder: base relations + the new one', () => {
  const cacheRoot = join(work, 'own-data');
  const BASE = ['company_ceo', 'landmark_continent', 'landmark_country', 'person_father'];

  test('holds the chosen base relations (committed splits copied byte for byte) and the new one with its own split; loadDataset reads it', () => {
    const before = snapshot(baseDir);
    const exampleHash = sha256Hex(readFileSync(example));
    const d = buildOwnData({ baseDir, relationFile: example, cacheRoot, relations: BASE });
    assert.equal(d.relation, 'landmark_country_copy');
    assert.deepEqual(d.base, BASE);
    assert.deepEqual(d.dropped, []);
    assert.equal(d.reused, false);
    assert.ok(d.dir.startsWith(cacheRoot));
    assert.deepEqual(loadRelations(d.dir).map((r) => r.name), [...BASE, 'landmark_country_copy'].sort());
    for (const name of BASE) {
      assert.deepEqual(readFileSync(join(d.dir, `${name}.json`)), readFileSync(join(baseDir, `${name}.json`)), name);
      assert.deepEqual(readFileSync(join(d.dir, 'splits', `${name}.seed0.json`)), readFileSync(join(baseDir, 'splits', `${name}.seed0.json`)), `${name} split`);
    }
    const ds = loadDataset(d.dir);
    const mine = ds.relations.find((r) => r.relation.name === 'landmark_country_copy')!;
    assert.equal(mine.split.evaluation.length, 50);
    assert.equal(mine.split.detection.length, 200);
    assert.equal([d.evaluation, d.detection].join(), '50,200');
    // The split is landmark_country's (the algorithm depends on the rows and the seed, not the name).
    const theirs = ds.relations.find((r) => r.relation.name === 'landmark_country')!;
    assert.deepEqual(mine.split.evaluation.map((t) => t.row), theirs.split.evaluation.map((t) => t.row));
    // Same inputs: the same folder, reused; the base data and the user's file are untouched.
    const again = buildOwnData({ baseDir, relationFile: example, cacheRoot, relations: BASE });
    assert.deepEqual([again.dir, again.reused], [d.dir, true]);
    assert.deepEqual(snapshot(baseDir), before);
    assert.equal(sha256Hex(readFileSync(example)), exampleHash);
    // Another evaluation size or a changed file: another folder.
    const small = buildOwnData({ baseDir, relationFile: example, cacheRoot, relations: BASE, evalTriples: 20 });
    assert.notEqual(small.dir, d.dir);
    assert.equal(loadDataset(small.dir).relations.find((r) => r.relation.name === 'landmark_country_copy')!.split.evaluation.length, 20);
    const changed = relationFile('changed.json', { ...example$(), samples: example$().samples.slice(0, 120) });
    assert.notEqual(buildOwnData({ baseDir, relationFile: changed, cacheRoot, relations: BASE }).dir, d.dir);
  });

  test('overlaps are counted, and dropOverlapping leaves out exactly the base relation that shares prompts', () => {
    const own = readOwnRelation(example).relation;
    const base = loadRelations(baseDir);
    const overlaps = relationOverlaps(own, base);
    // Counted here: landmark_country has the same 250 (subject, object) rows and the same two templates.
    const source = base.find((r) => r.name === 'landmark_country')!;
    const subjects = new Set(source.samples.map((s) => s.subject));
    assert.deepEqual(overlaps, [{ relation: 'landmark_country', sharedFacts: source.samples.length, sharedPrompts: subjects.size * (source.templates.length + source.eva2Templates.length) }]);
    const d = buildOwnData({ baseDir, relationFile: example, cacheRoot, relations: BASE, dropOverlapping: true });
    assert.deepEqual(d.dropped, ['landmark_country']);
    assert.deepEqual(d.base, ['company_ceo', 'landmark_continent', 'person_father']);
    assert.deepEqual(loadRelations(d.dir).map((r) => r.name), ['company_ceo', 'landmark_continent', 'landmark_country_copy', 'person_father']);
  });

  test('refused: a name the base data already has, too few facts for the split, an unknown base relation, a cache inside the base data', () => {
    const clash = relationFile('clash.json', { ...example$(), name: 'landmark_country' });
    assert.throws(() => buildOwnData({ baseDir, relationFile: clash, cacheRoot }), (e: unknown) => e instanceof DataError && e.file === clash && e.field === 'name' && /not already in the base data/.test(e.message));
    const few = relationFile('few.json', { ...example$(), samples: example$().samples.slice(0, 30) });
    assert.throws(() => buildOwnData({ baseDir, relationFile: few, cacheRoot }), (e: unknown) => e instanceof DataError && e.file === few && e.field === 'samples' && /cannot draw exactly 50 evaluation triples/.test(e.message));
    assert.throws(() => buildOwnData({ baseDir, relationFile: example, cacheRoot, relations: ['company_ceo', 'nope'] }), (e: unknown) => e instanceof DataError && e.field === 'relations' && /unknown base relation\(s\) nope/.test(e.message));
    assert.throws(() => buildOwnData({ baseDir, relationFile: example, cacheRoot: join(baseDir, 'cache') }), (e: unknown) => e instanceof DataError && e.field === 'cacheRoot');
  });
});

describe('the neuron explorer on the organism', () => {
  let p: Pipeline;
  const NAME = 'landmark_country_copy';
  before(async () => {
    await convertCheckpoint({ inputDir: organism, outputDir: join(work, 'model'), dtype: 'float32' });
    const d = buildOwnData({ baseDir, relationFile: example, cacheRoot: join(work, 'organism-data'), relations: ['company_ceo', 'landmark_country', 'person_father', 'star_constellation'], dropOverlapping: true });
    p = await Pipeline.open({ modelDir: join(work, 'model'), dataDir: d.dir, cacheDir: join(work, 'cache'), run: { batchSize: 128, quiet: true } });
  });
  after(() => p?.dispose());

  test('neuron names: every FFN neuron round-trips through its label; "layer:unit" counts gate, up, down; bad names name the parameter', async () => {
    const space = (await p.ranking()).space;
    for (const i of space.poolIndices('ffn')) assert.equal(parseNeuron(space, neuronLabel(space, i)), i);
    const idx = space.indexOf(1, 'mlp.up', 17);
    assert.equal(parseNeuron(space, '1:mlp.up:17'), idx);
    assert.equal(parseNeuron(space, '1:up:17'), idx);
    const gate = space.blocks.find((b) => b.layer === 1 && b.site === 'mlp.gate')!.width;
    assert.equal(parseNeuron(space, `1:${gate + 17}`), idx);
    for (const bad of ['x', `${space.numLayers}:0`, `0:mlp.gate:${gate}`, '0:attn.q:0', '1:-3', '0:99999']) {
      assert.throws(() => parseNeuron(space, bad), (e: unknown) => e instanceof ConfigError && e.field === 'neuron' && e.message.includes(JSON.stringify(bad)), bad);
    }
  });

  test('profile: AP equals the ranking\'s (float32, bit for bit) and rank equals the position in topNeurons; positives and negatives are the identification set\'s', async () => {
    const ranking = await p.ranking();
    const known = await p.known();
    const pool = ranking.space.poolIndices('ffn').length;
    const order = topNeurons(ranking, NAME, pool);
    const rr = ranking.relations.find((r) => r.name === NAME)!;
    const idset = buildIdentificationSet(p.dataset, known, { seed: 0, negativeRatio: 4 });
    const task = idset.tasks.find((t) => t.name === NAME)!;
    assert.equal(pickNeuron(ranking, NAME, ''), order[0]);
    for (const at of [0, 1, 50, Math.floor(pool / 2), pool - 1]) {
      const idx = order[at]!;
      const prof = await neuronProfile(p, NAME, idx, { top: 10 });
      assert.equal(Math.fround(prof.ap), rr.ap[idx], `rank ${at + 1}: explorer AP ${prof.ap}, ranking ${rr.ap[idx]}`);
      assert.equal(prof.rankingAp, rr.ap[idx]);
      assert.equal(prof.rank, at + 1);
      assert.equal(rankOf(ranking, NAME, idx), at + 1);
      assert.equal(prof.positives.length, known.relations.find((r) => r.name === NAME)!.known.length);
      assert.deepEqual([prof.positives.length, prof.negatives.length], [task.positives.length, task.negatives.length]);
      assert.deepEqual([prof.positives.length, prof.negatives.length], [rr.numPositives, rr.numNegatives]);
      assert.equal(prof.chance, rr.numPositives / (rr.numPositives + rr.numNegatives));
      // Every stored prompt appears once in byRelation; the top prompts are the highest values, in order.
      const all = prof.byRelation.flatMap((b) => b.values);
      assert.equal(all.length, idset.prompts.length);
      assert.deepEqual(prof.top.map((t) => t.activation), [...all].sort((a, b) => b - a).slice(0, 10));
      for (const t of prof.top) {
        assert.equal(t.text, idset.prompts[t.index]!.text);
        assert.equal(t.role, task.positives.includes(t.index) ? 'positive' : task.negatives.includes(t.index) ? 'negative' : 'unused');
        assert.equal(t.role === 'positive', t.relation === NAME);
      }
    }
  });

  test('profile: activations equal a direct forward pass with a record hook, and so does the AP', async () => {
    const ranking = await p.ranking();
    const known = await p.known();
    const idx = topNeurons(ranking, NAME, 1)[0]!;
    const prof = await neuronProfile(p, NAME, idx);
    const n = ranking.space.neuron(idx);
    const point = hookPointName(n.layer, n.site);
    const idset = buildIdentificationSet(p.dataset, known, { seed: 0, negativeRatio: 4 });
    const task = idset.tasks.find((t) => t.name === NAME)!;
    const tok = p.model.tokenizer!;
    const direct = async (rows: readonly number[]) => {
      const out: number[] = [];
      for (let s = 0; s < rows.length; s += 64) {
        const batch = rows.slice(s, s + 64).map((i) => tok.encode(idset.prompts[i]!.text));
        const r = await p.model.forward(batch, { logits: 'none', hooks: { record: [{ point, mode: 'mean' }] } });
        const rec = r.records.get(point)!;
        for (let b = 0; b < batch.length; b++) out.push(rec.data[b * rec.shape[1]! + n.unit]!);
      }
      return out;
    };
    const pos = await direct(task.positives);
    const neg = await direct(task.negatives);
    const maxDiff = (a: ArrayLike<number>, b: readonly number[]) => b.reduce((m, x, i) => Math.max(m, Math.abs(x - a[i]!)), 0);
    assert.ok(maxDiff(prof.positives, pos) < 1e-4 && maxDiff(prof.negatives, neg) < 1e-4, `activations differ by ${maxDiff(prof.positives, pos)} / ${maxDiff(prof.negatives, neg)}`);
    const ap = averagePrecision([...pos, ...neg], [...pos.map(() => 1), ...neg.map(() => 0)]);
    assert.ok(Math.abs(ap - prof.ap) < 1e-4, `direct AP ${ap}, explorer ${prof.ap}`);
    assert.ok(prof.ap > 2 * prof.chance, `the top neuron of a relation the model knows is far above chance (AP ${prof.ap}, chance ${prof.chance})`);
  });

  test('zeroing one neuron: the library\'s ablation path equals a hand-built hook, changes the forward, and single-neuron accuracies equal answers counted here', async () => {
    const ranking = await p.ranking();
    const ctx = await p.context();
    const tok = p.model.tokenizer!;
    const idx = topNeurons(ranking, NAME, 1)[0]!;
    const n = ranking.space.neuron(idx);
    const hand: Intervention[] = [{ point: hookPointName(n.layer, n.site), op: 'zero', units: [n.unit] }];
    const prompts = relationPrompts(ctx, NAME, 'eva');
    const ids = prompts.slice(0, 16).map((q) => tok.encode(q.text));
    const plain = (await p.model.forward(ids, { logits: 'last' })).logits!.data;
    const byHand = (await p.model.forward(ids, { logits: 'last', hooks: { interventions: hand } })).logits!.data;
    const byLib = (await p.model.forward(ids, { logits: 'last', hooks: { interventions: ranking.space.interventions(ablation([idx])) } })).logits!.data;
    assert.deepEqual(byLib, byHand);
    assert.ok(plain.some((x, i) => x !== byHand[i]), 'zeroing the neuron changes the logits');

    // Most single neurons change no answer; check on the one of the top 30 that changes most (picked by one batched run), so the comparison below has flips to compare.
    const candidates = Array.from(topNeurons(ranking, NAME, 30));
    const probe = await runJobs(ctx, [{ key: { i: -1 }, prompts, ablation: null }, ...candidates.map((c, i) => ({ key: { i }, prompts, ablation: ablation([c]) }))], 'probe');
    const changes = candidates.map((_, i) => probe[i + 1]!.outputs.filter((o, j) => o !== probe[0]!.outputs[j]).length);
    const chosen = candidates[changes.indexOf(Math.max(...changes))]!;
    assert.ok(Math.max(...changes) > 0, 'some top-30 neuron changes an answer on its own');
    const single = await singleNeuronAblation(ctx, NAME, chosen, { sets: ['eva', 'det'], detLimit: 100 });
    assert.equal(single.label, neuronLabel(ranking.space, chosen));
    const cn = ranking.space.neuron(chosen);
    const zeroChosen: Intervention[] = [{ point: hookPointName(cn.layer, cn.site), op: 'zero', units: [cn.unit] }];
    let nearTies = 0;
    for (const set of ['eva', 'det'] as const) {
      const ps = relationPrompts(ctx, NAME, set, 100);
      const counted = async (interventions: Intervention[]) => {
        const out: string[] = [];
        for (let s = 0; s < ps.length; s += 64) {
          const { tokens } = await p.model.generate(ps.slice(s, s + 64).map((q) => tok.encode(q.text)), { maxNewTokens: 2, hooks: { interventions } });
          out.push(...tokens.map((t) => tok.decode(t)));
        }
        return out;
      };
      const before = await counted([]);
      const after = await counted(zeroChosen);
      const r = single.sets[set]!;
      assert.equal(r.prompts, ps.length);
      const right = (outs: string[]) => outs.map((o, i) => isCorrectAnswer(o, ps[i]!.object));
      const lost = ps.filter((_, i) => right(before)[i] && !right(after)[i]).map((q) => q.text);
      const gained = ps.filter((_, i) => !right(before)[i] && right(after)[i]).map((q) => q.text);
      // Batches are composed differently here (padding changes float rounding), so allow one near-tie answer per set.
      const differ = (a: string[], b: string[]) => a.filter((x) => !b.includes(x)).length + b.filter((x) => !a.includes(x)).length;
      const d = differ(r.lost.map((f) => f.prompt), lost) + differ(r.gained.map((f) => f.prompt), gained);
      nearTies += d;
      assert.ok(d <= 1, `${set}: lost ${JSON.stringify(r.lost.map((f) => f.prompt))} vs ${JSON.stringify(lost)}`);
      const changedHere = before.filter((o, i) => o !== after[i]).length;
      assert.ok(Math.abs(r.changed - changedHere) <= 1, `${set}: ${r.changed} answers changed, counted ${changedHere}`);
      if (d === 0) {
        assert.equal(r.original, right(before).filter(Boolean).length / ps.length);
        assert.equal(r.ablated, right(after).filter(Boolean).length / ps.length);
        assert.ok(Math.abs(r.ablated - r.original - (gained.length - lost.length) / ps.length) < 1e-12);
      }
      if (set === 'eva') assert.ok(r.changed > 0, 'the chosen neuron changes some P^eva answer');
      if (set === 'det') assert.ok(r.original >= 0.98, `known P^det is answered correctly (${r.original})`);
    }
    assert.ok(nearTies <= 1, `${nearTies} answers differ from the counts made here`);
  });
});
