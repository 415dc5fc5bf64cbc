/**
 * The shipped model organism (data/organism) and its training code: it converts with the
 * project's converter and loads; its config matches its weights; its tokenizer round-trips the
 * world; its model card's numbers are recomputed by routes independent of the card's (one
 * prompt per generate call with the prefix check written out, hand-built ablation hooks) and by
 * direct calls of the method's functions;
 * the world's invariants hold (12 relations, facts consistent between corpus, relation files
 * and prompts, recorded frequencies = counts in the corpus); a tiny training run lowers the
 * loss and is reproducible; the training forward equals the inference forward.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../lib/backend.ts';
import { sha256Hex } from '../lib/data/io.ts';
import { buildPrompts } from '../lib/data/prompts.ts';
import { loadRelation, loadRelations } from '../lib/data/relation.ts';
import { loadSplit, type Split } from '../lib/data/split.ts';
import { expectedTensors, hfConfigJson, parseLlamaConfig, readLlamaConfig } from '../lib/model/config.ts';
import { organismConfig, type ArchChoice } from '../lib/organism/build.ts';
import { LlamaModel } from '../lib/model/llama.ts';
import { LlamaTokenizer } from '../lib/tokenizer.ts';
import { collectActivations } from '../lib/method/activation-store.ts';
import { loadDataset, type Dataset } from '../lib/method/dataset.ts';
import { makeContext, relationPrompts, runJobs } from '../lib/method/experiments.ts';
import { ablation, randomNeurons, ZERO } from '../lib/method/neurons.ts';
import { topNeurons } from '../lib/method/ranking.ts';
import { provenance } from '../lib/method/identity.ts';
import type { KnownFacts } from '../lib/method/known.ts';
import { findKnownFacts } from '../lib/method/experiments/known-filter.ts';
import { NeuronSpace } from '../lib/method/neurons.ts';
import { buildIdentificationSet, rankNeurons, type Ranking } from '../lib/method/ranking.ts';
import type { OrganismMeasurement } from '../lib/organism/evaluate.ts';
import { replacementCriteria } from '../lib/organism/criteria.ts';
import { AdamW, TrainableLlama, toHfTensors } from '../lib/organism/model.ts';
import { learningRate } from '../lib/organism/train.ts';
import { readSafetensorsF32, safetensorsBytes } from '../lib/safetensors.ts';
import { buildCorpus, buildWorld, countFrequencies, RELATION_NAMES, type World } from '../lib/organism/world.ts';
import { execFileSync } from 'node:child_process';

const DIR = 'data/organism';
const shipped = existsSync(join(DIR, 'model.safetensors'));

function readWorld(): World {
  return JSON.parse(readFileSync(join(DIR, 'world.json'), 'utf8')) as World;
}

function loadSplits(world: World): Map<string, Split> {
  const m = new Map<string, Split>();
  for (const r of world.relations) {
    const rel = loadRelation(join(DIR, 'relations', `${r.name}.json`));
    m.set(r.name, loadSplit(join(DIR, 'relations', 'splits', `${r.name}.seed0.json`), rel));
  }
  return m;
}

/** The relation whose card numbers the tests recompute (one, to keep the tests quick). */
const CHECKED_RELATION = 'company_hq';

type Measurement = OrganismMeasurement & { design: string; parameters: number };

function readMeasurement(): Measurement {
  return JSON.parse(readFileSync(join(DIR, 'measurement.json'), 'utf8')) as Measurement;
}

/** The paper's check (§2.5), written out independently of lib/data/answer-check.ts. */
function prefixOfObject(output: string, object: string): boolean {
  const response = output.normalize('NFC').trim().replace(/^[^\p{L}\p{N}]+/u, '');
  return response !== '' && object.normalize('NFC').toLowerCase().startsWith(response.toLowerCase());
}

const pct = (x: number) => (100 * x).toFixed(1);

describe('model organism (data/organism)', { skip: shipped ? false : 'data/organism not built yet (npm run organism:train)' }, () => {
  let tmp = '';
  let model: LlamaModel;
  let world: World;
  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'organism-test-'));
    // Through the `rsn convert` command, exactly the path a Llama-2 checkpoint takes.
    execFileSync(process.execPath, [new URL('../bin/rsn.js', import.meta.url).pathname, 'convert', DIR, join(tmp, 'converted'), '--quiet'], { stdio: 'pipe' });
    model = await LlamaModel.load(join(tmp, 'converted'), { log: null });
    world = readWorld();
  });
  after(() => {
    model?.dispose();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test('config.json is a LlamaForCausalLM whose tensors match model.safetensors', () => {
    const raw = JSON.parse(readFileSync(join(DIR, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(raw['architectures'], ['LlamaForCausalLM']);
    assert.equal(raw['model_type'], 'llama');
    const cfg = readLlamaConfig(join(DIR, 'config.json'));
    const st = readSafetensorsF32(readFileSync(join(DIR, 'model.safetensors')));
    const want = expectedTensors(cfg);
    assert.deepEqual([...st.keys()].sort(), want.map((t) => t.name).sort());
    for (const t of want) assert.deepEqual(st.get(t.name)!.shape, t.shape, t.name);
    const tok = LlamaTokenizer.fromFile(DIR);
    assert.equal(cfg.vocabSize, tok.vocabSize);
    assert.equal(cfg.bosTokenId, tok.bosId);
    assert.equal(cfg.eosTokenId, tok.eosId);
    assert.equal(model.config.numLayers, cfg.numLayers);
  });

  test('the training design of train-log.json, through organismConfig and hfConfigJson, writes config.json byte for byte', () => {
    const design = (JSON.parse(readFileSync(join(DIR, 'train-log.json'), 'utf8')) as { arch: ArchChoice }).arch;
    const tok = LlamaTokenizer.fromFile(DIR);
    const shape = { hiddenSize: design.hiddenSize, intermediateSize: design.intermediateSize, numLayers: design.numLayers, numHeads: design.numHeads, tieWordEmbeddings: design.tieWordEmbeddings };
    assert.equal(JSON.stringify(hfConfigJson(organismConfig(shape, tok)), null, 2) + '\n', readFileSync(join(DIR, 'config.json'), 'utf8'));
  });

  test('the shipped files stay under 30 MB', () => {
    let total = 0;
    const walk = (d: string) => {
      for (const f of readdirSync(d)) {
        const p = join(d, f);
        const s = statSync(p);
        if (s.isDirectory()) walk(p);
        else total += s.size;
      }
    };
    walk(DIR);
    assert.ok(total <= 30e6, `${total} bytes`);
  });

  test('the tokenizer round-trips every prompt and corpus line of the world; objects are several tokens', () => {
    const tok = LlamaTokenizer.fromFile(DIR);
    const texts: string[] = readFileSync(join(DIR, 'corpus.txt'), 'utf8').split('\n').filter((l) => l.length > 0);
    const splits = loadSplits(world);
    for (const r of world.relations) {
      const triples = [...splits.get(r.name)!.detection, ...splits.get(r.name)!.evaluation];
      for (const p of buildPrompts(triples, [...r.templates, ...r.eva2Templates])) texts.push(p.text);
      for (const lang of world.languages) for (const t of triples.slice(0, 20)) texts.push(r.translations[lang].replace('{}', t.subject));
    }
    for (const s of world.neutralSentences[RELATION_NAMES[0]]!) texts.push(s);
    for (const t of texts) {
      const ids = tok.encode(t);
      assert.equal(ids[0], tok.bosId);
      assert.equal(tok.decode(ids), t);
    }
    const persons = world.facts.filter((f) => f.relation === 'person_father').slice(0, 50);
    const lens = persons.map((f) => tok.encode(' ' + f.object, { addBos: false }).length - 1);
    assert.ok(lens.reduce((a, b) => a + b, 0) / lens.length >= 3, `father names average ${lens} tokens`);
  });

  test('one relation\'s card accuracies, recomputed prompt by prompt with plain generate and the prefix check written out, equal the card', async () => {
    const m = readMeasurement();
    const tok = model.tokenizer!;
    const r = world.relations.find((x) => x.name === CHECKED_RELATION)!;
    const split = loadSplits(world).get(r.name)!;
    const card = m.relations.find((x) => x.relation === r.name)!;
    // One prompt per generate call: no batching, padding or masks, unlike the measurement.
    const correctCount = async (prompts: { text: string; object: string }[]) => {
      let n = 0;
      for (const p of prompts) {
        const out = await model.generate([tok.encode(p.text)], { maxNewTokens: 2 });
        if (prefixOfObject(tok.decode(out.tokens[0]!), p.object)) n++;
      }
      return n;
    };
    const det = buildPrompts(split.detection, r.templates);
    const eva = buildPrompts(split.evaluation, r.templates);
    const eva2 = buildPrompts(split.evaluation, r.eva2Templates);
    const knownDet = await correctCount(det);
    assert.equal(card.detPrompts, det.length);
    assert.equal(card.known, knownDet, `${r.name}: known P^det`);
    assert.equal(card.accDet, knownDet / det.length);
    assert.equal(card.accEva, (await correctCount(eva)) / eva.length, `${r.name}: P^eva`);
    assert.equal(card.accEva2, (await correctCount(eva2)) / eva2.length, `${r.name}: P^eva-2`);
    // MODEL_CARD.md shows the measurement's numbers.
    const text = readFileSync(join(DIR, 'MODEL_CARD.md'), 'utf8');
    assert.ok(text.includes(`| ${r.name} | ${pct(card.floor)} | ${pct(card.accDet)} | ${card.known} / ${card.detPrompts} | ${pct(card.accEva)} | ${pct(card.accEva2)} |`), 'accuracy row of MODEL_CARD.md');
  });

  describe('the card\'s ranking-based numbers', () => {
    let ranking: Ranking;
    let known: KnownFacts;
    let dataset: Dataset;
    let m: Measurement;
    before(async () => {
      m = readMeasurement();
      dataset = loadDataset(join(DIR, 'relations'), { seed: m.seed });
      const run = { batchSize: m.batchSize ?? undefined, quiet: true };
      known = await findKnownFacts(model, dataset, run);
      const idset = buildIdentificationSet(dataset, known, { seed: m.seed, negativeRatio: 4 });
      const store = await collectActivations(model, idset.prompts.map((p) => model.tokenizer!.encode(p.text)), join(tmp, 'activations'), { batchSize: m.batchSize ?? undefined, quiet: true });
      ranking = await rankNeurons(store, idset, provenance(model, dataset.hash, m.seed));
    });

    test('equal direct calls of the method (known facts, AP ranking, intra-relation top-k vs random)', async () => {
      assert.equal(m.neurons, NeuronSpace.forModel(model.config, 'ffn').size);
      for (const r of m.relations) {
        const k = known.relations.find((x) => x.name === r.relation)!;
        assert.equal(r.known, k.known.length, `${r.relation}: known`);
        const ap = ranking.relations.find((x) => x.name === r.relation)!.ap;
        assert.equal(r.bestAp, Math.max(...ap), `${r.relation}: best AP`);
      }
      const one = { ...dataset, relations: dataset.relations.filter((r) => r.relation.name === CHECKED_RELATION) };
      const ctx = makeContext(model, one, known, ranking, { batchSize: m.batchSize ?? undefined, quiet: true });
      // The card's numbers from jobs built here (own top-k, random draws of seeds 1000…, the card's
      // P^det limit) and accuracies, mean and sd counted here, not by the experiment's summary.
      const pool = ctx.space.poolIndices('ffn');
      const own = ablation(topNeurons(ranking, CHECKED_RELATION, m.primaryK), ZERO);
      const random = Array.from({ length: m.randomSeeds }, (_, s) => ablation(randomNeurons(pool, m.primaryK, 1000 + s), ZERO));
      const card = m.relations.find((x) => x.relation === CHECKED_RELATION)!.ablation.find((a) => a.k === m.primaryK)!;
      for (const set of ['eva', 'det'] as const) {
        const prompts = relationPrompts(ctx, CHECKED_RELATION, set, m.detLimit);
        const conditions = [null, own, ...random];
        const results = await runJobs(ctx, conditions.map((a, i) => ({ key: { i }, prompts, ablation: a })));
        const acc = results.map((r) => r.correct.filter(Boolean).length / prompts.length);
        const rnd = acc.slice(2);
        const rndMean = rnd.reduce((a, b) => a + b, 0) / rnd.length;
        const rndSd = Math.sqrt(rnd.reduce((a, b) => a + (b - rndMean) ** 2, 0) / (rnd.length - 1));
        const got = card[set];
        assert.equal(got.original, acc[0], `${set}: original`);
        assert.equal(got.relation, acc[1], `${set}: relation-k`);
        assert.ok(Math.abs(got.randomMean - rndMean) < 1e-12, `${set}: random mean ${got.randomMean} vs ${rndMean}`);
        assert.ok(Math.abs(got.randomSd - rndSd) < 1e-12, `${set}: random sd ${got.randomSd} vs ${rndSd}`);
      }
    });

    test('zeroing the relation\'s top-k by hand-built hooks lowers its P^eva accuracy by the reported amount', async () => {
      const tok = model.tokenizer!;
      const { hiddenSize: H, intermediateSize: F, numLayers } = model.config;
      // The FFN pool, layer-major: gate[0..F), up[0..F), down[0..H) per layer; top-k by (−AP, index).
      const ap = ranking.relations.find((x) => x.name === CHECKED_RELATION)!.ap;
      assert.equal(ap.length, numLayers * (2 * F + H));
      const top = Array.from(ap.keys()).sort((a, b) => ap[b]! - ap[a]! || a - b).slice(0, m.primaryK);
      const units = new Map<string, number[]>();
      for (const i of top) {
        const layer = Math.floor(i / (2 * F + H));
        const o = i % (2 * F + H);
        const [site, unit] = o < F ? ['mlp.gate', o] : o < 2 * F ? ['mlp.up', o - F] : ['mlp.down', o - 2 * F];
        const point = `blocks.${layer}.${site}`;
        units.set(point, [...(units.get(point) ?? []), unit as number]);
      }
      const interventions = [...units].map(([point, u]) => ({ point, op: 'zero' as const, units: u }));
      const r = dataset.relations.find((x) => x.relation.name === CHECKED_RELATION)!;
      let before = 0;
      let after = 0;
      for (const p of r.eva) {
        const ids = tok.encode(p.text);
        if (prefixOfObject(tok.decode((await model.generate([ids], { maxNewTokens: 2 })).tokens[0]!), p.object)) before++;
        if (prefixOfObject(tok.decode((await model.generate([ids], { maxNewTokens: 2, hooks: { interventions } })).tokens[0]!), p.object)) after++;
      }
      const card = m.relations.find((x) => x.relation === CHECKED_RELATION)!.ablation.find((a) => a.k === m.primaryK)!.eva;
      assert.equal(before / r.eva.length, card.original);
      assert.equal(after / r.eva.length, card.relation);
      assert.ok(card.relation < card.original, `${CHECKED_RELATION}: own top-${m.primaryK} lowers P^eva accuracy (${card.original} → ${card.relation})`);
    });
  });

  test('world invariants: 12 relations, multi-attribute entities, balanced objects', () => {
    assert.deepEqual(world.relations.map((r) => r.name), [...RELATION_NAMES]);
    const lre = loadRelations('data/relations');
    for (const r of world.relations) {
      const src = lre.find((x) => x.name === r.name)!;
      assert.deepEqual(r.templates, src.templates, r.name);
      assert.deepEqual(r.eva2Templates, src.eva2Templates, r.name);
      const facts = world.facts.filter((f) => f.relation === r.name);
      const subjects = new Set(facts.map((f) => f.subject));
      assert.equal(subjects.size, facts.length, `${r.name}: one object per subject`);
      const counts = new Map<string, number>();
      for (const f of facts) counts.set(f.object, (counts.get(f.object) ?? 0) + 1);
      const c = [...counts.values()];
      assert.equal(counts.size, r.objectPool.length, `${r.name}: every pool object is used`);
      // Continent follows country and position follows sport (checked below); the others are balanced.
      if (r.name !== 'landmark_continent' && r.name !== 'person_sport_position') {
        assert.ok(Math.max(...c) - Math.min(...c) <= 1, `${r.name}: balanced objects (${c})`);
      }
    }
    // Derived attributes: one continent per country; positions balanced within each sport.
    const obj = (rel: string, subject: string) => world.facts.find((f) => f.relation === rel && f.subject === subject)!.object;
    const continentOf = new Map<string, string>();
    for (const l of world.entities.landmark) {
      const country = obj('landmark_country', l);
      const cont = obj('landmark_continent', l);
      assert.equal(continentOf.get(country) ?? cont, cont, `${l}: ${country} is on one continent`);
      continentOf.set(country, cont);
    }
    const bySport = new Map<string, Map<string, number>>();
    for (const p of world.entities.person) {
      const m = bySport.get(obj('person_pro_sport', p)) ?? new Map<string, number>();
      const pos = obj('person_sport_position', p);
      m.set(pos, (m.get(pos) ?? 0) + 1);
      bySport.set(obj('person_pro_sport', p), m);
    }
    for (const [sport, m] of bySport) {
      const c = [...m.values()];
      assert.ok(Math.max(...c) - Math.min(...c) <= 1, `${sport}: positions balanced (${c})`);
    }
    const personRels = RELATION_NAMES.filter((n) => n.startsWith('person_'));
    for (const p of world.entities.person.slice(0, 100)) {
      assert.equal(world.facts.filter((f) => f.subject === p).length, personRels.length, p);
    }
  });

  test('world.json, corpus.txt and the relation files are what the generator produces; frequencies are exact', () => {
    const rebuilt = buildWorld(loadRelations('data/relations'), world.options);
    assert.deepEqual(rebuilt.facts, world.facts);
    const corpus = buildCorpus(rebuilt);
    const text = corpus.map((l) => l.text).join('\n') + '\n';
    const shippedText = readFileSync(join(DIR, 'corpus.txt'), 'utf8');
    assert.equal(sha256Hex(text), sha256Hex(shippedText));
    const { mentions, cooccurrence } = countFrequencies(world, corpus);
    world.facts.forEach((f, i) => {
      assert.equal(mentions[i], f.mentions, `fact ${i} mentions`);
      assert.equal(cooccurrence[i], f.cooccurrence, `fact ${i} co-occurrence`);
    });
    // Every fact line states its own fact: subject and object in the line; questions use a template of the relation.
    const rel = new Map(world.relations.map((r) => [r.name, r]));
    for (const line of corpus) {
      if (line.fact < 0) continue;
      const f = world.facts[line.fact]!;
      assert.ok(line.text.includes(f.subject) && line.text.includes(f.object), line.text);
      if (line.kind === 'question') {
        assert.ok(rel.get(f.relation)!.templates.some((t) => line.text === `${t.replace('{}', f.subject)}? Answer: ${f.object}`), line.text);
      }
    }
    // The relation files hold exactly the world's facts; question prompts of the splits carry the world's objects.
    const byKey = new Map(world.facts.map((f) => [`${f.relation}\u0000${f.subject}`, f.object]));
    for (const r of world.relations) {
      const relFile = loadRelation(join(DIR, 'relations', `${r.name}.json`));
      assert.equal(relFile.samples.length, world.facts.filter((f) => f.relation === r.name).length);
      for (const s of relFile.samples) assert.equal(byKey.get(`${r.name}\u0000${s.subject}`), s.object);
    }
  });
});

describe('organism training code', () => {
  test('the learning rate: linear warm-up, constant, and with a cool-down a linear fall to the step budget', () => {
    const o = { lr: 1, warmupSteps: 10, coolDownSteps: 20, maxSteps: 100 };
    // By hand: warm-up (s + 1) / 10; the last 20 steps (80…99) scale by (100 − s) / 20.
    assert.deepEqual([0, 4, 9, 10, 50, 80, 81, 90, 99].map((step) => learningRate(step, o)), [0.1, 0.5, 1, 1, 1, 1, 0.95, 0.5, 0.05]);
    assert.deepEqual([80, 99].map((step) => learningRate(step, { ...o, coolDownSteps: 0 })), [1, 1]);
    // A cool-down longer than the warm-up's end: the smaller factor wins.
    assert.equal(learningRate(2, { lr: 2, warmupSteps: 10, coolDownSteps: 5, maxSteps: 4 }), 2 * Math.min(3 / 10, 2 / 5));
  });

  const arch = parseLlamaConfig({ hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 2, vocab_size: 40, tie_word_embeddings: true, max_position_embeddings: 32, rms_norm_eps: 1e-5, bos_token_id: 1, eos_token_id: 2, pad_token_id: 0 });
  const ids = Int32Array.from({ length: 4 * 9 }, (_, i) => ((i * 7) % 37) + 3);
  const mask = tf.ones([4, 8]) as tf.Tensor2D;
  after(() => tf.dispose([mask]));

  async function firstLosses(steps: number): Promise<number[]> {
    const m = new TrainableLlama(arch, TrainableLlama.initialValues(arch, 7));
    const opt = new AdamW(m, { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clipNorm: 1 });
    const losses: number[] = [];
    try {
      for (let s = 0; s < steps; s++) {
        const { value, grads } = tf.variableGrads(() => m.loss(ids, 4, mask), [...m.vars.values()]);
        const n = opt.apply(grads, 1e-2);
        losses.push((await value.data())[0]!);
        tf.dispose([value, n, ...Object.values(grads)]);
      }
    } finally {
      m.dispose();
      opt.dispose();
    }
    return losses;
  }

  test('a short run lowers the loss, and the same seed gives the same losses', async () => {
    await initBackend({ log: null });
    const a = await firstLosses(25);
    const b = await firstLosses(5);
    assert.ok(a[24]! < a[0]! - 0.5, `loss ${a[0]} → ${a[24]}`);
    assert.deepEqual(b, a.slice(0, 5));
  });

  test('the training forward computes the same loss as the inference model', async () => {
    const init = TrainableLlama.initialValues(arch, 3);
    const m = new TrainableLlama(arch, init);
    const lossT = m.loss(ids, 4, mask);
    const trainLoss = (await lossT.data())[0]!;
    lossT.dispose();
    m.dispose();
    const hf = new Map(toHfTensors(arch, init).map((t) => [t.name, t]));
    const inf = await LlamaModel.fromArrays(arch, (name) => hf.get(name)!, { log: null });
    const rows = Array.from({ length: 4 }, (_, b) => Array.from(ids.subarray(b * 9, (b + 1) * 9)));
    const res = await inf.forward(rows.map((r) => r.slice(0, 8)), { logits: 'all' });
    inf.dispose();
    const V = arch.vocabSize;
    let nll = 0;
    rows.forEach((r, b) => {
      for (let t = 0; t < 8; t++) {
        const off = (b * 8 + t) * V;
        const logits = res.logits!.data.subarray(off, off + V);
        const max = Math.max(...logits);
        const lse = max + Math.log(logits.reduce((s, x) => s + Math.exp(x - max), 0));
        nll += lse - logits[r[t + 1]!]!;
      }
    });
    assert.ok(Math.abs(nll / 32 - trainLoss) < 1e-4, `inference ${nll / 32}, training ${trainLoss}`);
  });

  test('safetensors writer: header, alignment, HF layout round trip', () => {
    const init = TrainableLlama.initialValues(arch, 1);
    const tensors = toHfTensors(arch, init);
    const bytes = safetensorsBytes(tensors);
    const n = Number(bytes.readBigUInt64LE(0));
    assert.equal((8 + n) % 8, 0);
    const back = readSafetensorsF32(bytes);
    for (const t of tensors) {
      assert.deepEqual(back.get(t.name)!.shape, t.shape);
      assert.deepEqual(back.get(t.name)!.data, t.data);
    }
    // q_proj is stored [out, in]: element (o, i) of HF = element (i, o) of the training layout.
    const q = tensors.find((t) => t.name === 'model.layers.0.self_attn.q_proj.weight')!;
    const qt = init.get('model.layers.0.self_attn.q_proj.weight')!;
    assert.equal(q.data[3 * 16 + 5], qt[5 * 16 + 3]);
  });
});

describe('the replacement criteria (data/organism/DESIGNS.md) on the shipped measurement', () => {
  test('each criterion from measurement.json equals the value counted by hand when the criteria were fixed; the card prints them', () => {
    const m = JSON.parse(readFileSync(join(DIR, 'measurement.json'), 'utf8')) as OrganismMeasurement;
    // C1–C4 counted from measurement.json with a few lines of Python, C5 is notebook 05's verdict
    // ("diagonal is the row maximum for 8/12 relations") of the default run.
    assert.deepEqual(replacementCriteria(m).map((c) => [c.id, c.measured, c.pass]), [
      ['C1', '87.7 %', true],
      ['C2', '4.6 points (k = 24)', false],
      ['C3', '12.4 points (k = 72)', false],
      ['C4', '5 / 12 (k = 72)', false],
      ['C5', '8 / 12 (k = 72)', false],
      ['C6', 'not part of the measurement: compare with docs/data/reproduce-cold.json', null],
    ]);
    const card = readFileSync(join(DIR, 'MODEL_CARD.md'), 'utf8');
    for (const c of replacementCriteria(m)) assert.ok(card.includes(`| ${c.id} | ${c.criterion} | ${c.measured} | ${c.pass === null ? 'by hand' : c.pass ? '**pass**' : '**fail**'} |`), `${c.id} in MODEL_CARD.md`);
    // Random neurons that cost nothing at 1 % pass C2; a relation whose own neurons stop hurting it leaves C4.
    const harmless = structuredClone(m);
    for (const r of harmless.relations) for (const a of r.ablation.filter((x) => x.k === 24)) a.det.randomMean = a.det.original;
    assert.deepEqual(replacementCriteria(harmless).find((c) => c.id === 'C2')!.pass, true);
    const weaker = structuredClone(m);
    for (const r of weaker.relations) for (const a of r.ablation.filter((x) => x.k === 72)) a.eva.relation = a.eva.randomMean;
    assert.equal(replacementCriteria(weaker).find((c) => c.id === 'C4')!.measured, '0 / 12 (k = 72)');
  });
});
