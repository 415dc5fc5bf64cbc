/**
 * Measurements of an organism candidate (shared/design/organism.md), through the same
 * inference path every other experiment uses (LlamaModel.generate / forward with hooks):
 *
 * - accuracy per relation on P^det, P^eva, P^eva-2 (greedy 2 tokens, paper's prefix check);
 * - recall with each whole MLP layer / attention layer zeroed;
 * - random-ablation curve (1 / 3 / 10 % of FFN neurons);
 * - per relation: FFN neurons ranked by AP (token mean over the prompt incl. BOS; positives =
 *   the relation's correctly answered P^det prompts, negatives = 4× as many from the other
 *   relations), top-k zeroed vs k random neurons, own relation vs the others.
 */
import { isCorrectAnswer } from '../data/answer-check.ts';
import { buildPrompts } from '../data/prompts.ts';
import type { Split } from '../data/split.ts';
import { mulberry32, shuffled } from '../data/rng.ts';
import { hookPointName } from '../model/hooks.ts';
import { pooledBatch } from '../method/activation-store.ts';
import { greedyRows } from '../method/generation.ts';
import { NeuronSpace } from '../method/neurons.ts';
import type { LlamaModel } from '../model/llama.ts';
import type { LlamaTokenizer } from '../tokenizer.ts';
import { computeNeuronApSync, topK } from '../stats/ap-engine.ts';
import { sampleNegatives } from '../stats/rng.ts';
import type { World } from './world.ts';

export interface OrgPrompt {
  relation: string;
  subject: string;
  object: string;
  templateIndex: number;
  text: string;
  ids: number[];
}

export interface PromptSets {
  det: Map<string, OrgPrompt[]>;
  eva: Map<string, OrgPrompt[]>;
  eva2: Map<string, OrgPrompt[]>;
}

export function buildPromptSets(world: World, tok: LlamaTokenizer, splits: Map<string, Split>): PromptSets {
  const sets: PromptSets = { det: new Map(), eva: new Map(), eva2: new Map() };
  for (const r of world.relations) {
    const split = splits.get(r.name);
    if (!split) throw new Error(`no split for ${r.name}`);
    const mk = (triples: Split['detection'], templates: string[]) =>
      buildPrompts(triples, templates).map((p) => ({ relation: r.name, subject: p.subject, object: p.object, templateIndex: p.templateIndex, text: p.text, ids: tok.encode(p.text) }));
    sets.det.set(r.name, mk(split.detection, r.templates));
    sets.eva.set(r.name, mk(split.evaluation, r.templates));
    sets.eva2.set(r.name, mk(split.evaluation, r.eva2Templates));
  }
  return sets;
}

/** FFN neuron numbering: layer-major, within a layer gate[0..F), up[0..F), down[0..H). */
/** One evaluation row: a prompt under an ablation (global FFN neuron indices, or whole hook points zeroed). */
export interface Row {
  prompt: OrgPrompt;
  neurons?: readonly number[];
  /** Hook points whose every unit is zeroed (e.g. a whole MLP or attention layer). */
  zeroPoints?: readonly string[];
}

/**
 * Greedy 2-token answers for many rows, each with its own ablation; returns correctness per row.
 * Rows become masks in the all-sites neuron space so that whole attention outputs can be zeroed
 * too, and run through the method's batched per-row generation.
 */
export async function answerRows(model: LlamaModel, tok: LlamaTokenizer, rows: readonly Row[], batchSize = 256): Promise<boolean[]> {
  const ffn = NeuronSpace.forModel(model.config, 'ffn');
  const all = NeuronSpace.forModel(model.config, 'all');
  // Rows share their neuron lists (one per ablation): translate each list once, so the masks
  // are shared objects too and their grouping by hook point is cached.
  const masks = new Map<readonly (number | string)[], Int32Array>();
  const blockIndices = (point: string) => {
    const b = all.blocks.find((x) => hookPointName(x.layer, x.site) === point);
    if (!b) throw new RangeError(`cannot zero ${point}: not a neuron site of this model`);
    return Array.from({ length: b.width }, (_, u) => b.offset + u);
  };
  const maskOf = (row: Row): Int32Array | null => {
    if (!row.neurons?.length && !row.zeroPoints?.length) return null;
    const key = row.neurons ?? row.zeroPoints!;
    let m = masks.get(key);
    if (!m) {
      const fromNeurons = (row.neurons ?? []).map((n) => {
        const x = ffn.neuron(n);
        return all.indexOf(x.layer, x.site, x.unit);
      });
      m = Int32Array.from([...fromNeurons, ...(row.zeroPoints ?? []).flatMap(blockIndices)]);
      masks.set(key, m);
    }
    return m;
  };
  const tokens = await greedyRows(model, all, rows.map((r) => ({ ids: r.prompt.ids, mask: maskOf(r) })), { maxNewTokens: 2, batchSize, quiet: true });
  return tokens.map((t, i) => isCorrectAnswer(tok.decode(t), rows[i]!.prompt.object));
}

/** Token-mean FFN activations (incl. BOS) of every prompt: [P][N] prompt-major. */
export async function collectActivations(model: LlamaModel, prompts: readonly OrgPrompt[], batchSize = 128): Promise<Float32Array> {
  const space = NeuronSpace.forModel(model.config, 'ffn');
  const out = new Float32Array(prompts.length * space.size);
  for (let s = 0; s < prompts.length; s += batchSize) {
    out.set(await pooledBatch(model, space, prompts.slice(s, s + batchSize).map((p) => p.ids)), s * space.size);
  }
  return out;
}

export interface MeasureOptions {
  /** Fractions of the FFN neurons to zero (default 0.0036, 0.01, 0.03, 0.1). */
  fractions?: number[];
  randomSeeds?: number;
  /** At most this many filtered P^det prompts per relation in the ablation sets (speed). */
  detSample?: number;
  seed?: number;
  log?: (line: string) => void;
}

export interface RelationReport {
  relation: string;
  floor: number;
  accDet: number;
  accEva: number;
  accEva2: number;
  filteredDet: number;
  bestAp: number;
  /** Per fraction: accuracies on P^eva and on the filtered P^det sample. */
  ablation: {
    fraction: number;
    k: number;
    ownEva: number;
    randomEva: number;
    ownDet: number;
    randomDet: number;
    /** Mean accuracy (P^eva) of the other relations with this relation's top-k zeroed, and unablated. */
    othersEva: number;
    othersEvaBase: number;
  }[];
}

export interface OrganismReport {
  neurons: number;
  relations: RelationReport[];
  /** Mean P^det-sample accuracy with MLP layer l / attention layer l zeroed. */
  layerZero: { layer: number; mlp: number; attn: number }[];
  /** Mean P^det-sample accuracy with a random fraction of FFN neurons zeroed (mean over seeds). */
  randomCurve: { fraction: number; acc: number }[];
  /** Relations whose P^eva drop at 3 % exceeds the random drop by ≥ 20 points. */
  passing3pct: number;
  /** The same on the filtered P^det sample. */
  passing3pctDet: number;
  seconds: number;
}

/** Share of the relation's most frequent object: the accuracy of always answering the majority. */
export function majorityShare(world: World, relation: string): number {
  const counts = new Map<string, number>();
  let n = 0;
  for (const f of world.facts) {
    if (f.relation !== relation) continue;
    counts.set(f.object, (counts.get(f.object) ?? 0) + 1);
    n++;
  }
  return n ? Math.max(...counts.values()) / n : NaN;
}

const mean = (xs: readonly number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

export async function measureOrganism(model: LlamaModel, tok: LlamaTokenizer, world: World, sets: PromptSets, opts: MeasureOptions = {}): Promise<OrganismReport> {
  const t0 = Date.now();
  const log = opts.log ?? (() => {});
  const fractions = opts.fractions ?? [0.0036, 0.01, 0.03, 0.1];
  const R = opts.randomSeeds ?? 10;
  const detSample = opts.detSample ?? 150;
  const seed = opts.seed ?? 0;
  const space = NeuronSpace.forModel(model.config, 'ffn');
  const rels = world.relations.map((r) => r.name);

  // 1. Accuracy.
  const base = async (set: Map<string, OrgPrompt[]>) => {
    const all = rels.flatMap((r) => set.get(r)!);
    const ok = await answerRows(model, tok, all.map((prompt) => ({ prompt })));
    const by = new Map<string, boolean[]>();
    all.forEach((p, i) => {
      const l = by.get(p.relation) ?? [];
      l.push(ok[i]!);
      by.set(p.relation, l);
    });
    return by;
  };
  const detOk = await base(sets.det);
  const evaOk = await base(sets.eva);
  const eva2Ok = await base(sets.eva2);
  log(`accuracy done (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  const filtered = new Map<string, OrgPrompt[]>();
  for (const r of rels) filtered.set(r, sets.det.get(r)!.filter((_, i) => detOk.get(r)![i]));
  // Ablation sets: P^eva (all, as the paper) and a sample of the filtered P^det.
  const rng = mulberry32(seed);
  const detS = new Map<string, OrgPrompt[]>();
  for (const r of rels) detS.set(r, shuffled(filtered.get(r)!, rng).slice(0, detSample));
  const allDetS = rels.flatMap((r) => detS.get(r)!);

  // 2. Whole-layer zeroing and the random curve, on the P^det sample.
  const layerZero: OrganismReport['layerZero'] = [];
  {
    const rows: Row[] = [];
    for (let l = 0; l < space.numLayers; l++) {
      const mlp = [`blocks.${l}.mlp.down`];
      const attn = [`blocks.${l}.attn.o`];
      for (const p of allDetS) rows.push({ prompt: p, zeroPoints: mlp });
      for (const p of allDetS) rows.push({ prompt: p, zeroPoints: attn });
    }
    const ok = await answerRows(model, tok, rows);
    const n = allDetS.length;
    for (let l = 0; l < space.numLayers; l++) {
      layerZero.push({ layer: l, mlp: mean(ok.slice(2 * l * n, (2 * l + 1) * n).map(Number)), attn: mean(ok.slice((2 * l + 1) * n, (2 * l + 2) * n).map(Number)) });
    }
  }
  const randomSets = (k: number, s: number) => shuffled(Array.from({ length: space.size }, (_, i) => i), mulberry32(1000 + s * 7919 + k)).slice(0, k);
  const randomCurve: OrganismReport['randomCurve'] = [];
  for (const f of [0.01, 0.03, 0.1]) {
    const k = Math.round(f * space.size);
    const rows: Row[] = [];
    for (let s = 0; s < 3; s++) {
      const neurons = randomSets(k, s);
      for (const p of allDetS) rows.push({ prompt: p, neurons });
    }
    const ok = await answerRows(model, tok, rows);
    randomCurve.push({ fraction: f, acc: mean(ok.map(Number)) });
  }
  log(`layer zeroing and random curve done (${((Date.now() - t0) / 1000).toFixed(0)} s)`);

  // 3. AP ranking on the filtered P^det.
  const apPrompts = rels.flatMap((r) => filtered.get(r)!);
  const acts = apPrompts.length ? await collectActivations(model, apPrompts) : new Float32Array(0);
  const tasks = rels.map((r, ri) => {
    const pos: number[] = [];
    const others: number[] = [];
    apPrompts.forEach((p, i) => (p.relation === r ? pos : others).push(i));
    const want = Math.min(4 * pos.length, others.length);
    return { name: r, positives: pos, negatives: pos.length ? sampleNegatives(others, want, seed + ri) : [] };
  });
  const valid = tasks.filter((t) => t.positives.length > 0);
  const aps = valid.length ? computeNeuronApSync({ data: acts, numPrompts: apPrompts.length, numNeurons: space.size }, valid) : [];
  const apBy = new Map(aps.map((a) => [a.name, a.ap]));
  log(`AP done (${((Date.now() - t0) / 1000).toFixed(0)} s)`);

  // 4. Top-k vs random, own relation and others.
  const reports: RelationReport[] = [];
  const evaAll = rels.flatMap((r) => sets.eva.get(r)!);
  const evaBase = new Map(rels.map((r) => [r, mean(evaOk.get(r)!.map(Number))]));
  const relAbl = new Map<string, RelationReport['ablation']>(rels.map((r) => [r, []]));
  for (const f of fractions) {
    const k = Math.max(1, Math.round(f * space.size));
    const rows: Row[] = [];
    const tags: { rel: string; kind: 'own' | 'rand' | 'other'; set: 'eva' | 'det'; seed?: number }[] = [];
    const push = (prompt: OrgPrompt, neurons: number[], tag: (typeof tags)[number]) => {
      rows.push({ prompt, neurons });
      tags.push(tag);
    };
    const randoms = Array.from({ length: R }, (_, s) => randomSets(k, s));
    for (const r of rels) {
      const ap = apBy.get(r);
      const top = ap ? Array.from(topK(ap, k)) : [];
      for (const p of sets.eva.get(r)!) push(p, top, { rel: r, kind: 'own', set: 'eva' });
      for (const p of detS.get(r)!) push(p, top, { rel: r, kind: 'own', set: 'det' });
      for (const p of evaAll) if (p.relation !== r) push(p, top, { rel: r, kind: 'other', set: 'eva' });
      for (let s = 0; s < R; s++) {
        for (const p of sets.eva.get(r)!) push(p, randoms[s]!, { rel: r, kind: 'rand', set: 'eva', seed: s });
        for (const p of detS.get(r)!) push(p, randoms[s]!, { rel: r, kind: 'rand', set: 'det', seed: s });
      }
    }
    const ok = await answerRows(model, tok, rows);
    for (const r of rels) {
      const sel = (kind: string, set: string) => mean(ok.filter((_, i) => tags[i]!.rel === r && tags[i]!.kind === kind && tags[i]!.set === set).map(Number));
      // Others: mean over the other relations of their P^eva accuracy.
      const otherAcc: number[] = [];
      const otherBase: number[] = [];
      for (const o of rels) {
        if (o === r) continue;
        otherAcc.push(mean(ok.filter((_, i) => tags[i]!.rel === r && tags[i]!.kind === 'other' && rows[i]!.prompt.relation === o).map(Number)));
        otherBase.push(evaBase.get(o)!);
      }
      relAbl.get(r)!.push({ fraction: f, k, ownEva: sel('own', 'eva'), randomEva: sel('rand', 'eva'), ownDet: sel('own', 'det'), randomDet: sel('rand', 'det'), othersEva: mean(otherAcc), othersEvaBase: mean(otherBase) });
    }
    log(`ablation at ${(100 * f).toFixed(2)} % (k = ${k}) done (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  }
  let passing = 0;
  let passingDet = 0;
  for (const r of rels) {
    const ap = apBy.get(r);
    const rep: RelationReport = {
      relation: r,
      floor: majorityShare(world, r),
      accDet: mean(detOk.get(r)!.map(Number)),
      accEva: evaBase.get(r)!,
      accEva2: mean(eva2Ok.get(r)!.map(Number)),
      filteredDet: filtered.get(r)!.length,
      bestAp: ap ? Math.max(...ap) : NaN,
      ablation: relAbl.get(r)!,
    };
    const a3 = rep.ablation.find((a) => Math.abs(a.fraction - 0.03) < 1e-9);
    if (a3 && a3.randomEva - a3.ownEva >= 0.2) passing++;
    if (a3 && a3.randomDet - a3.ownDet >= 0.2) passingDet++;
    reports.push(rep);
  }
  return { neurons: space.size, relations: reports, layerZero, randomCurve, passing3pct: passing, passing3pctDet: passingDet, seconds: (Date.now() - t0) / 1000 };
}

/** A markdown summary of a report. */
export function reportMarkdown(rep: OrganismReport): string {
  const pct = (x: number) => (Number.isFinite(x) ? (100 * x).toFixed(0) : '–');
  const lines: string[] = [];
  lines.push('| relation | floor | acc P^det | acc P^eva | acc P^eva-2 | filtered P^det | best AP | ' + rep.relations[0]!.ablation.map((a) => `${(100 * a.fraction).toFixed(2)} % (k=${a.k}) eva own / rand / others (base)`).join(' | ') + ' |');
  lines.push('|' + '---|'.repeat(7 + rep.relations[0]!.ablation.length));
  for (const r of rep.relations) {
    lines.push(
      `| ${r.relation} | ${pct(r.floor)} | ${pct(r.accDet)} | ${pct(r.accEva)} | ${pct(r.accEva2)} | ${r.filteredDet} | ${r.bestAp.toFixed(2)} | ` +
        r.ablation.map((a) => `${pct(a.ownEva)} / ${pct(a.randomEva)} / ${pct(a.othersEva)} (${pct(a.othersEvaBase)})`).join(' | ') +
        ' |',
    );
  }
  lines.push('');
  lines.push('P^det sample (filtered, so 100 % before ablation): own / random accuracy after zeroing');
  lines.push('');
  lines.push('| relation | ' + rep.relations[0]!.ablation.map((a) => `${(100 * a.fraction).toFixed(2)} %`).join(' | ') + ' |');
  lines.push('|---|' + '---|'.repeat(rep.relations[0]!.ablation.length));
  for (const r of rep.relations) lines.push(`| ${r.relation} | ` + r.ablation.map((a) => `${pct(a.ownDet)} / ${pct(a.randomDet)}`).join(' | ') + ' |');
  lines.push('');
  lines.push('Whole-layer zeroing (mean accuracy on the filtered P^det sample): ' + rep.layerZero.map((l) => `L${l.layer} MLP ${pct(l.mlp)} / attn ${pct(l.attn)}`).join('; '));
  lines.push('');
  lines.push('Random FFN ablation (same sample): ' + rep.randomCurve.map((c) => `${(100 * c.fraction).toFixed(0)} % → ${pct(c.acc)}`).join('; '));
  lines.push('');
  lines.push(`Relations with (own drop − random drop) ≥ 20 points at 3 %: P^eva ${rep.passing3pct} / ${rep.relations.length}, filtered P^det ${rep.passing3pctDet} / ${rep.relations.length}`);
  return lines.join('\n');
}
