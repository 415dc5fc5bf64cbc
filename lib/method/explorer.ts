/**
 * Looking at one neuron of one relation, beyond the paper's aggregate numbers: its token-mean
 * activations on the relation's positives and negatives (the very values its AP was computed
 * from, read back from the pipeline's kept activation store), its AP and rank, the prompts that
 * drive it most, and what zeroing it alone does to the relation's answers.
 *
 * Nothing here re-collects activations or re-implements AP: the values come from the store the
 * ranking was computed from, the positives and negatives from buildIdentificationSet with the
 * ranking's own seed and ratio, AP from averagePrecision, and answers from runJobs.
 */
import { ConfigError } from '../errors.ts';
import { averagePrecision } from '../stats/average-precision.ts';
import { promptsHash, type ActivationStore } from './activation-store.ts';
import { relationPrompts, runJobs, type Context, type Job, type PromptSetName } from './jobs.ts';
import { requireTokenizer, type KnownFacts } from './known.ts';
import type { Dataset } from './dataset.ts';
import type { ModelRunner } from '../model/runner.ts';
import { ablation, POOLS, type Neuron, type NeuronSite, type NeuronSpace, type PoolName } from './neurons.ts';
import { buildIdentificationSet, topNeurons, type Ranking } from './ranking.ts';

/**
 * What the explorer reads: the known facts, the ranking and the activation store it was computed
 * from (a Pipeline is one).
 */
export interface RankedRun {
  readonly model: ModelRunner;
  readonly dataset: Dataset;
  known(): Promise<KnownFacts>;
  ranking(): Promise<Ranking>;
  activations(): ActivationStore | null;
  activationsDir(): string;
  rankingDir(): string;
}

/** "layer:site:unit", e.g. "2:mlp.up:17": how the explorer names a neuron (parseNeuron reads it back). */
export function neuronLabel(space: NeuronSpace, index: number): string {
  const n = space.neuron(index);
  return `${n.layer}:${n.site}:${n.unit}`;
}

function siteNamed(space: NeuronSpace, text: string): NeuronSite | undefined {
  return space.sites.find((s) => s === text || s === `mlp.${text}` || s === `attn.${text}`);
}

/**
 * A neuron named by the `neuron` parameter: "layer:site:unit" ("2:mlp.up:17", "2:up:17") or
 * "layer:unit", where unit counts the layer's neurons of `pool` in the space's site order
 * (for the FFN pool: gate units, then up, then down). Returns the global index.
 */
export function parseNeuron(space: NeuronSpace, text: string, pool: PoolName = 'ffn'): number {
  space.poolIndices(pool); // throws, naming the missing sites, when the space does not record this pool
  const layerBlocks = (layer: number) => space.blocks.filter((b) => b.layer === layer && POOLS[pool].includes(b.site));
  const example = () => {
    const blocks = layerBlocks(0);
    let at = 0;
    const parts = blocks.map((b) => `${b.site} ${at}–${(at += b.width) - 1}`);
    return `"layer:unit" (layer 0–${space.numLayers - 1}; unit 0–${at - 1} counts the layer's ${pool} neurons: ${parts.join(', ')}) or "layer:site:unit" (site one of ${space.sites.join(', ')}, e.g. "1:${space.sites[0]}:0")`;
  };
  const bad = (why: string): never => {
    throw new ConfigError(`parameter neuron = ${JSON.stringify(text)}: ${why}; expected ${example()}`, undefined, 'neuron');
  };
  const parts = text.trim().split(':');
  if (parts.length !== 2 && parts.length !== 3) bad('not a neuron name');
  const int = (s: string, what: string) => (/^\d+$/.test(s.trim()) ? Number(s) : bad(`${what} "${s}" is not a non-negative integer`));
  const layer = int(parts[0]!, 'layer');
  if (layer >= space.numLayers) bad(`layer ${layer} does not exist (the model has ${space.numLayers})`);
  if (parts.length === 3) {
    const site = siteNamed(space, parts[1]!.trim()) ?? bad(`site "${parts[1]}" is not recorded in this neuron space`);
    const unit = int(parts[2]!, 'unit');
    const block = space.blocks.find((b) => b.layer === layer && b.site === site)!;
    if (unit >= block.width) bad(`${site} has ${block.width} units`);
    return block.offset + unit;
  }
  let unit = int(parts[1]!, 'unit');
  for (const b of layerBlocks(layer)) {
    if (unit < b.width) return b.offset + unit;
    unit -= b.width;
  }
  return bad(`layer ${layer} has fewer ${pool} neurons`);
}

/** 1-based rank of a neuron in a relation's ranking within `pool`, by (−AP, index) as topNeurons orders them. */
export function rankOf(ranking: Ranking, relation: string, index: number, pool: PoolName = 'ffn'): number {
  const ap = relationAp(ranking, relation);
  const members = ranking.space.poolIndices(pool);
  if (!members.includes(index)) throw new ConfigError(`neuron ${neuronLabel(ranking.space, index)} is not in the ${pool} pool`, undefined, 'neuron');
  let rank = 1;
  for (const i of members) if (ap[i]! > ap[index]! || (ap[i] === ap[index] && i < index)) rank++;
  return rank;
}

function relationAp(ranking: Ranking, relation: string): Float32Array {
  const r = ranking.relations.find((x) => x.name === relation);
  if (!r) throw new ConfigError(`relation "${relation}" is not in this ranking (it has ${ranking.relations.map((x) => x.name).join(', ')})`, undefined, 'relation');
  return r.ap;
}

/** The neuron a notebook parameter names, or the relation's top neuron in `pool` when the text is empty. */
export function pickNeuron(ranking: Ranking, relation: string, text: string, pool: PoolName = 'ffn'): number {
  return text.trim() === '' ? topNeurons(ranking, relation, 1, pool)[0]! : parseNeuron(ranking.space, text, pool);
}

export interface ProfilePrompt {
  /** Row of the prompt in the identification set (and the activation store). */
  index: number;
  activation: number;
  relation: string;
  /** Its label in this relation's AP: a positive, a sampled negative, or not in the task. */
  role: 'positive' | 'negative' | 'unused';
  text: string;
  object: string;
}

export interface NeuronProfile {
  relation: string;
  index: number;
  neuron: Neuron;
  label: string;
  /** AP recomputed here from the stored activations (averagePrecision, sklearn's definition). */
  ap: number;
  /** The AP the ranking holds for this neuron (float32). */
  rankingAp: number;
  /** 1-based rank in the pool; poolSize neurons in all. */
  rank: number;
  poolSize: number;
  /** Share of positives among the labelled prompts: the AP of a neuron that knows nothing. */
  chance: number;
  /** Token-mean activations of the relation's positives and negatives, in identification-set order. */
  positives: Float32Array;
  negatives: Float32Array;
  /** Activations of every stored prompt (every relation's known P^det), by relation. */
  byRelation: { relation: string; values: number[] }[];
  /** The stored prompts that activate the neuron most, highest first. */
  top: ProfilePrompt[];
}

/**
 * One neuron's activations, AP and top prompts for a relation, from the pipeline's ranking and
 * its kept activation store (computed by `pipeline.ranking()` if needed).
 */
export async function neuronProfile(pipeline: RankedRun, relation: string, index: number, opts: { top?: number; pool?: PoolName } = {}): Promise<NeuronProfile> {
  const pool = opts.pool ?? 'ffn';
  const ranking = await pipeline.ranking();
  const known = await pipeline.known();
  const store = pipeline.activations();
  if (!store) throw new ConfigError(`no kept activation store at ${pipeline.activationsDir()}; it was removed after the ranking was made. Delete the ranking (${pipeline.rankingDir()}) and run pipeline.ranking() again to collect it`, pipeline.activationsDir());
  const idset = buildIdentificationSet(pipeline.dataset, known, { seed: ranking.provenance.seed, negativeRatio: ranking.negativeRatio });
  const tok = requireTokenizer(pipeline.model);
  // The store's rows must be this identification set's prompts, in this order, or the labels below would be wrong.
  if (store.numPrompts !== idset.prompts.length || store.meta.promptsSha256 !== promptsHash(idset.prompts.map((p) => tok.encode(p.text)))) {
    throw new ConfigError(`${store.dir}: the activation store does not hold this ranking's identification prompts (${store.numPrompts} stored, ${idset.prompts.length} expected)`, store.dir);
  }
  const task = idset.tasks.find((t) => t.name === relation);
  if (!task) throw new ConfigError(`relation "${relation}" is not in the dataset ${pipeline.dataset.dir}`, pipeline.dataset.dir, 'relation');
  const column = store.readRange(index, index + 1);
  const positives = Float32Array.from(task.positives, (i) => column[i]!);
  const negatives = Float32Array.from(task.negatives, (i) => column[i]!);
  const ap = averagePrecision([...positives, ...negatives], [...positives.map(() => 1), ...negatives.map(() => 0)]);
  const role = new Map<number, ProfilePrompt['role']>();
  for (const i of task.positives) role.set(i, 'positive');
  for (const i of task.negatives) role.set(i, 'negative');
  const byRelation = pipeline.dataset.relations.map((r) => ({ relation: r.relation.name, values: [] as number[] }));
  idset.prompts.forEach((p, i) => byRelation.find((b) => b.relation === p.relation)!.values.push(column[i]!));
  const order = idset.prompts.map((_, i) => i).sort((a, b) => column[b]! - column[a]! || a - b);
  const top = order.slice(0, opts.top ?? 15).map((i) => ({ index: i, activation: column[i]!, relation: idset.prompts[i]!.relation, role: role.get(i) ?? 'unused', text: idset.prompts[i]!.text, object: idset.prompts[i]!.object }));
  return {
    relation,
    index,
    neuron: ranking.space.neuron(index),
    label: neuronLabel(ranking.space, index),
    ap,
    rankingAp: relationAp(ranking, relation)[index]!,
    rank: rankOf(ranking, relation, index, pool),
    poolSize: ranking.space.poolIndices(pool).length,
    chance: positives.length / (positives.length + negatives.length),
    positives,
    negatives,
    byRelation,
    top,
  };
}

export interface AnswerChange {
  prompt: string;
  object: string;
  before: string;
  after: string;
}

export interface SingleNeuronSetResult {
  prompts: number;
  original: number;
  ablated: number;
  /** Right before, wrong with the neuron ablated. */
  lost: AnswerChange[];
  /** Wrong before, right with the neuron ablated. */
  gained: AnswerChange[];
  /** Answers that changed at all (also wrong → another wrong answer). */
  changed: number;
}

export interface SingleNeuronResult {
  relation: string;
  index: number;
  label: string;
  sets: Partial<Record<PromptSetName, SingleNeuronSetResult>>;
}

/** Accuracy of a relation's prompt sets before and after ablating one neuron (the context's way, zeroing by default), with the answers that changed. */
export async function singleNeuronAblation(ctx: Context, relation: string, index: number, opts: { sets?: PromptSetName[]; detLimit?: number } = {}): Promise<SingleNeuronResult> {
  const sets = opts.sets ?? ['eva', 'det'];
  const ablated = ablation([index], ctx.ablate);
  const jobs: Job[] = sets.flatMap((set) => {
    const prompts = relationPrompts(ctx, relation, set, opts.detLimit);
    return [
      { key: { set, condition: 'original' }, prompts, ablation: null },
      { key: { set, condition: 'ablated' }, prompts, ablation: ablated },
    ];
  });
  const res = await runJobs(ctx, jobs, `neuron ${neuronLabel(ctx.space, index)}`);
  const out: SingleNeuronResult['sets'] = {};
  sets.forEach((set, si) => {
    const before = res[2 * si]!;
    const after = res[2 * si + 1]!;
    const prompts = jobs[2 * si]!.prompts;
    const change = (i: number): AnswerChange => ({ prompt: prompts[i]!.text, object: prompts[i]!.object, before: before.outputs[i]!, after: after.outputs[i]! });
    const idx = prompts.map((_, i) => i);
    out[set] = {
      prompts: prompts.length,
      original: before.accuracy,
      ablated: after.accuracy,
      lost: idx.filter((i) => before.correct[i] && !after.correct[i]).map(change),
      gained: idx.filter((i) => !before.correct[i] && after.correct[i]).map(change),
      changed: idx.filter((i) => before.outputs[i] !== after.outputs[i]).length,
    };
  });
  return { relation, index, label: neuronLabel(ctx.space, index), sets: out };
}

/** One relation of another ranking, compared with `relation`'s top-k of this one. */
export interface TopKAgreement {
  other: string;
  /** How many of the other relation's top-k are also in this relation's top-k. */
  shared: number;
  otherTop: string;
  ownTop: string;
  /** The largest |AP difference| over the FFN pool. */
  largestApDifference: number;
  positives: [number, number];
}

/**
 * How far `relation`'s top-k in `ranking` agrees with each of `others` in `otherRanking` (e.g. a
 * copied relation against its source, ranked on other data): shared top-k neurons, the top
 * neuron of each, and the largest AP difference over the FFN pool.
 */
export function topKAgreement(ranking: Ranking, relation: string, otherRanking: Ranking, others: readonly string[], k: number): TopKAgreement[] {
  const find = (r: Ranking, name: string) => {
    const rel = r.relations.find((x) => x.name === name);
    if (!rel) throw new ConfigError(`relation "${name}" is not in the ranking (${r.relations.map((x) => x.name).join(', ')})`, undefined, 'relation');
    return rel;
  };
  const own = find(ranking, relation);
  const mine = topNeurons(ranking, relation, k);
  const mineSet = new Set(mine);
  const pool = ranking.space.poolIndices('ffn');
  return others.map((o) => {
    const theirs = topNeurons(otherRanking, o, k);
    const rel = find(otherRanking, o);
    return {
      other: o,
      shared: Array.from(theirs).filter((i) => mineSet.has(i)).length,
      otherTop: neuronLabel(otherRanking.space, theirs[0]!),
      ownTop: neuronLabel(ranking.space, mine[0]!),
      largestApDifference: Array.from(pool).reduce((m, i) => Math.max(m, Math.abs(own.ap[i]! - rel.ap[i]!)), 0),
      positives: [own.numPositives, rel.numPositives],
    };
  });
}
