/**
 * Identification (paper §3): for every relation, AP of each neuron's token-mean activation as a
 * classifier of "the prompt expresses r", positives = P^det(r), negatives = 4 × as many drawn
 * from the other relations' P^det; neurons ranked by AP, descending.
 */
import { mkdirSync, readFileSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Prompt } from '../data/prompts.ts';
import { sha256Hex } from '../data/io.ts';
import { writeThroughStagingSync } from '../data/staging.ts';
import { seal, unseal } from '../data/sealed-json.ts';
import { CheckpointError, ConfigError } from '../errors.ts';
import { computeNeuronAp, topK, type ApProgress, type RelationTask } from '../stats/ap-engine.ts';
import { sampleNegatives } from '../rng.ts';
import type { ActivationStore } from './activation-store.ts';
import type { Dataset } from './dataset.ts';
import type { Provenance } from './identity.ts';
import { knownPrompts, type KnownFacts } from './known.ts';
import { NeuronSpace, type PoolName, type NeuronSite } from './neurons.ts';

export interface IdentificationSet {
  /** Every relation's known detection prompts, concatenated in relation order: the rows of the activation store. */
  prompts: Prompt[];
  tasks: (RelationTask & { positives: number[]; negatives: number[]; negativesWanted: number })[];
  seed: number;
  negativeRatio: number;
}

export function buildIdentificationSet(dataset: Dataset, known: KnownFacts, opts: { seed?: number; negativeRatio?: number } = {}): IdentificationSet {
  const seed = opts.seed ?? dataset.seed;
  const ratio = opts.negativeRatio ?? 4;
  const prompts: Prompt[] = [];
  const ranges: [number, number][] = [];
  for (const r of dataset.relations) {
    const p = knownPrompts(dataset, known, r.relation.name);
    ranges.push([prompts.length, prompts.length + p.length]);
    prompts.push(...p);
  }
  const tasks = dataset.relations.map((r, ri) => {
    const [s, e] = ranges[ri]!;
    const positives = Array.from({ length: e - s }, (_, i) => s + i);
    const others: number[] = [];
    ranges.forEach(([os, oe], oi) => {
      if (oi !== ri) for (let i = os; i < oe; i++) others.push(i);
    });
    const wanted = ratio * positives.length;
    // With few known facts there may be fewer other-relation prompts than 4×; use them all and
    // record it, since the chance AP is then above 0.2.
    const negatives = sampleNegatives(others, Math.min(wanted, others.length), seed * 1000 + ri).sort((a, b) => a - b);
    return { name: r.relation.name, positives, negatives, negativesWanted: wanted };
  });
  return { prompts, tasks, seed, negativeRatio: ratio };
}

/** Negatives per positive in the identification set (paper §3). */
export const PAPER_NEGATIVE_RATIO = 4;

/**
 * The identification set the paper ranks with, refusing relations the model knows no fact of
 * (they have no positives, so no AP): what the pipeline and `rsn collect` both rank from.
 */
export function rankableIdentificationSet(dataset: Dataset, known: KnownFacts, seed: number): IdentificationSet {
  const idset = buildIdentificationSet(dataset, known, { seed, negativeRatio: PAPER_NEGATIVE_RATIO });
  const empty = idset.tasks.filter((t) => t.positives.length === 0).map((t) => t.name);
  if (empty.length) throw new ConfigError(`no known detection prompts for ${empty.join(', ')}: the model answers none correctly, so these relations cannot be ranked; leave them out (relations option)`, undefined, 'relations');
  return idset;
}

export const RANKING_SCHEMA = 'rsn-ranking/1';

export interface RelationRanking {
  name: string;
  numPositives: number;
  numNegatives: number;
  /** AP of every neuron of the space, by global index. */
  ap: Float32Array;
}

export interface Ranking {
  schema: typeof RANKING_SCHEMA;
  provenance: Provenance;
  space: NeuronSpace;
  includeBos: boolean;
  negativeRatio: number;
  relations: RelationRanking[];
}

export async function rankNeurons(
  store: ActivationStore,
  idset: IdentificationSet,
  prov: Provenance,
  opts: { workers?: number; onProgress?: (p: ApProgress) => void } = {},
): Promise<Ranking> {
  const part = await rankNeuronRange(store, idset, prov, [0, store.space.size], opts);
  return { schema: RANKING_SCHEMA, provenance: part.provenance, space: part.space, includeBos: part.includeBos, negativeRatio: part.negativeRatio, relations: part.relations };
}

/** AP of the neurons [start, end) of a store's space only: `ap[j]` is neuron start + j. */
export interface RankingPart extends Omit<Ranking, 'schema'> {
  neurons: [number, number];
}

/**
 * AP of the neurons [start, end) for every relation: a slice of rankNeurons' result, so a model
 * too large for one process can be ranked in neuron ranges and the slices put together. Each
 * neuron's AP depends on its own column only.
 */
export async function rankNeuronRange(
  store: ActivationStore,
  idset: IdentificationSet,
  prov: Provenance,
  neurons: [number, number],
  opts: { workers?: number; onProgress?: (p: ApProgress) => void } = {},
): Promise<RankingPart> {
  if (!store.complete || store.numPrompts !== idset.prompts.length || store.meta.promptStart !== 0) {
    throw new ConfigError(`${store.dir}: the activation store holds ${store.numPrompts} prompts from ${store.meta.promptStart}, the identification set has ${idset.prompts.length}; collect activations for this set first`, store.dir);
  }
  const [start, end] = neurons;
  if (!(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start < end && end <= store.space.size)) {
    throw new ConfigError(`neuron range ${start}:${end} must be non-empty and lie inside 0:${store.space.size} (the store's ${store.space.size} neurons)`, undefined, 'neurons');
  }
  const source = { numPrompts: store.numPrompts, numNeurons: end - start, getChunk: (s: number, e: number) => store.readRange(start + s, start + e) };
  const results = await computeNeuronAp(source, idset.tasks, { workers: opts.workers, onProgress: opts.onProgress });
  return {
    provenance: prov,
    space: store.space,
    includeBos: store.meta.includeBos,
    negativeRatio: idset.negativeRatio,
    neurons: [start, end],
    relations: results.map((r) => ({ name: r.name, numPositives: r.numPositives, numNegatives: r.numNegatives, ap: Float32Array.from(r.ap) })),
  };
}

function relationRanking(r: Ranking, relation: string): RelationRanking {
  const rr = r.relations.find((x) => x.name === relation);
  if (!rr) throw new ConfigError(`relation "${relation}" is not in this ranking (it has ${r.relations.map((x) => x.name).join(', ')})`, undefined, 'relation');
  return rr;
}

/** The top-k neurons of `relation` within `pool`, as global indices, by (−AP, index). */
export function topNeurons(r: Ranking, relation: string, k: number, pool: PoolName | readonly NeuronSite[] = 'ffn'): Int32Array {
  const ap = relationRanking(r, relation).ap;
  const members = r.space.poolIndices(pool);
  if (!Number.isInteger(k) || k < 0 || k > members.length) {
    throw new RangeError(`k = ${k} is impossible: the ${typeof pool === 'string' ? pool : pool.join('+')} pool of this model has ${members.length} neurons`);
  }
  const sub = new Float64Array(members.length);
  for (let i = 0; i < members.length; i++) sub[i] = ap[members[i]!]!;
  return Int32Array.from(topK(sub, k), (i) => members[i]!);
}

/** Neurons ranked k_a+1 … k_b (1-based ranks) of a relation, for the cumulativity test. */
export function rankRange(r: Ranking, relation: string, ka: number, kb: number, pool: PoolName = 'ffn'): Int32Array {
  return topNeurons(r, relation, kb, pool).slice(ka);
}

export function saveRanking(r: Ranking, dir: string, csvTop = 50000): void {
  writeThroughStagingSync(dir, (tmp) => {
    mkdirSync(tmp, { recursive: true });
    for (const rel of r.relations) {
      writeFileSync(join(tmp, `${rel.name}.ap.f32`), new Uint8Array(rel.ap.buffer, rel.ap.byteOffset, rel.ap.byteLength));
      const top = topNeurons(r, rel.name, Math.min(csvTop, r.space.poolIndices(r.space.sites).length), r.space.sites);
      const lines = ['rank,index,layer,site,unit,ap'];
      const list: { rank: number; index: number; layer: number; site: string; unit: number; ap: number }[] = [];
      top.forEach((idx, i) => {
        const n = r.space.neuron(idx);
        lines.push(`${i + 1},${idx},${n.layer},${n.site},${n.unit},${rel.ap[idx]!.toPrecision(9)}`);
        list.push({ rank: i + 1, index: idx, layer: n.layer, site: n.site, unit: n.unit, ap: Number(rel.ap[idx]!.toPrecision(9)) });
      });
      writeFileSync(join(tmp, `${rel.name}.csv`), lines.join('\n') + '\n');
      writeFileSync(join(tmp, `${rel.name}.json`), JSON.stringify({ relation: rel.name, provenance: r.provenance, numPositives: rel.numPositives, numNegatives: rel.numNegatives, ranked: list }));
    }
    const meta = {
      schema: r.schema,
      provenance: r.provenance,
      space: r.space.describe(),
      includeBos: r.includeBos,
      negativeRatio: r.negativeRatio,
      relations: r.relations.map((x) => ({
        name: x.name,
        numPositives: x.numPositives,
        numNegatives: x.numNegatives,
        file: `${x.name}.ap.f32`,
        sha256: sha256Hex(new Uint8Array(x.ap.buffer, x.ap.byteOffset, x.ap.byteLength)),
        csv: `${x.name}.csv`,
        json: `${x.name}.json`,
      })),
    };
    writeFileSync(join(tmp, 'ranking.json'), JSON.stringify(seal(meta), null, 1));
    rmSync(dir, { recursive: true, force: true });
  });
}

export function loadRanking(dir: string): Ranking {
  const file = join(dir, 'ranking.json');
  if (!existsSync(file)) throw new CheckpointError(`${dir}: no ranking.json; not a saved ranking`, file);
  type Meta = {
    schema: string; provenance: Provenance; space: Parameters<typeof NeuronSpace.fromDescription>[0]; includeBos: boolean; negativeRatio: number;
    relations: { name: string; numPositives: number; numNegatives: number; file: string; sha256: string }[];
  };
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new CheckpointError(`${file}: not a readable ranking (${(e as Error).message})`, file);
  }
  const meta = unseal(raw, file) as unknown as Meta;
  if (meta?.schema !== RANKING_SCHEMA) throw new CheckpointError(`${file}: field "schema" is ${JSON.stringify(meta?.schema)}, expected "${RANKING_SCHEMA}"`, file);
  if (!Array.isArray(meta.relations)) throw new CheckpointError(`${file}: field "relations" must be an array`, file);
  let space: NeuronSpace;
  try {
    space = NeuronSpace.fromDescription(meta.space);
  } catch (e) {
    throw new CheckpointError(`${file}: field "space" is not a neuron space (${(e as Error).message})`, file);
  }
  return {
    schema: RANKING_SCHEMA,
    provenance: meta.provenance,
    space,
    includeBos: meta.includeBos,
    negativeRatio: meta.negativeRatio,
    relations: meta.relations.map((x, i) => {
      if (typeof x?.file !== 'string' || typeof x.sha256 !== 'string' || typeof x.name !== 'string') {
        throw new CheckpointError(`${file}: field "relations[${i}]" needs string name, file and sha256`, file);
      }
      const path = join(dir, x.file);
      if (!existsSync(path)) throw new CheckpointError(`${path}: missing (listed in ${file})`, path);
      const buf = readFileSync(path);
      if (buf.length !== space.size * 4) throw new CheckpointError(`${path}: ${buf.length} bytes, expected ${space.size * 4}`, path);
      if (sha256Hex(buf) !== x.sha256) throw new CheckpointError(`${path}: contents do not match the checksum in ${file}`, path);
      return { name: x.name, numPositives: x.numPositives, numNegatives: x.numNegatives, ap: new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length)) };
    }),
  };
}
