/**
 * AP ranking from a store made by `rsn collect` (its identification.json says which rows are
 * positives and negatives of which relation), over all neurons or, for models too large for one
 * process, a neuron range. A range writes `ranking-part.json` and the AP slices; merging the
 * parts that tile the whole space gives the saved ranking a single run gives.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalJson, sha256Hex, writeFileAtomic } from '../data/io.ts';
import { writeThroughStagingSync } from '../data/staging.ts';
import { seal, unseal } from '../data/sealed-json.ts';
import { CheckpointError, ConfigError } from '../errors.ts';
import type { ApProgress } from '../stats/ap-engine.ts';
import { ActivationStore } from '../method/activation-store.ts';
import { identificationSetOf, readIdentification, storeFingerprint } from './activation-shards.ts';
import { LIB_VERSION, type Provenance } from '../method/identity.ts';
import { NeuronSpace } from '../method/neurons.ts';
import { loadRanking, rankNeuronRange, RANKING_SCHEMA, saveRanking, type Ranking, type RankingPart } from '../method/ranking.ts';

export const RANKING_PART_FILE = 'ranking-part.json';
export const RANKING_PART_SCHEMA = 'rsn-ranking-part/1';

interface RankingPartFile {
  schema: typeof RANKING_PART_SCHEMA;
  provenance: Provenance;
  space: ReturnType<NeuronSpace['describe']>;
  includeBos: boolean;
  negativeRatio: number;
  neurons: [number, number];
  relations: { name: string; numPositives: number; numNegatives: number; file: string; sha256: string }[];
}

/** What must agree between parts of one ranking, and between a ranking and a re-run of it. */
function rankingIdentity(p: Provenance): string {
  return canonicalJson({ model: p.model?.sha256, data: p.dataHash, seed: p.seed, includeBos: p['includeBos'], negativeRatio: p['negativeRatio'], activations: p['activations'] });
}

/** The ranking's provenance: the store's model and data, and the store's contents, so a re-run can tell it is the same ranking. */
function rankingProvenance(store: ActivationStore, collected: Provenance): Provenance {
  return {
    model: store.meta.model,
    dataHash: collected.dataHash,
    seed: collected.seed,
    backend: collected.backend,
    version: LIB_VERSION,
    createdAt: new Date().toISOString(),
    includeBos: store.meta.includeBos,
    negativeRatio: collected['negativeRatio'],
    activations: storeFingerprint(store),
  };
}

export interface RankStageOptions {
  /** Only neurons [start, end) (a ranking part); default all. */
  neurons?: [number, number];
  workers?: number;
  onProgress?: (p: ApProgress) => void;
  log?: (line: string) => void;
}

/** The neuron count of a store, read from its meta.json (for splitting a ranking into ranges before opening). */
export function storeNeuronCount(storeDir: string): number {
  return ActivationStore.open(storeDir, { verify: false }).space.size;
}

/**
 * Rank the neurons of the store in `storeDir` into `outDir`: a saved ranking (the pipeline's
 * format) for all neurons, a ranking part for a range. A finished output of the same store and
 * range is left as it is; anything else there is refused.
 */
export async function rankStoreDir(storeDir: string, outDir: string, opts: RankStageOptions = {}): Promise<{ reused: boolean }> {
  const log = opts.log ?? (() => {});
  const ident = readIdentification(storeDir);
  if (ident.shard.count !== 1) {
    throw new ConfigError(`${storeDir}: holds shard ${ident.shard.index}/${ident.shard.count} of the activations (prompts ${ident.promptRange.join('–')}); merge the shards first (rsn merge DIR… --out DIR)`, storeDir, 'store');
  }
  const store = ActivationStore.open(storeDir);
  const prov = rankingProvenance(store, ident.provenance);
  const whole = opts.neurons === undefined || (opts.neurons[0] === 0 && opts.neurons[1] === store.space.size);
  const neurons: [number, number] = opts.neurons ?? [0, store.space.size];
  if (existsSync(outDir)) {
    let same = false;
    try {
      if (whole) same = rankingIdentity(loadRanking(outDir).provenance) === rankingIdentity(prov);
      else {
        const part = readPart(outDir);
        same = rankingIdentity(part.file.provenance) === rankingIdentity(prov) && canonicalJson(part.file.neurons) === canonicalJson(neurons);
      }
    } catch {
      same = false;
    }
    if (!same) throw new ConfigError(`${outDir}: already exists and is not this ranking; rank into a new directory`, outDir, 'out');
    log(`[rsn] rank: ${outDir} already holds this ranking; nothing to do`);
    return { reused: true };
  }
  const t0 = performance.now();
  const part = await rankNeuronRange(store, identificationSetOf(ident), prov, neurons, { workers: opts.workers, onProgress: opts.onProgress });
  if (whole) saveRanking(toRanking(part), outDir);
  else savePart(part, outDir);
  log(`[rsn] rank: neurons ${neurons[0]}–${neurons[1]} of ${store.space.size}, ${part.relations.length} relations, ${((performance.now() - t0) / 1000).toFixed(1)} s → ${outDir}`);
  return { reused: false };
}

function toRanking(part: RankingPart): Ranking {
  return { schema: RANKING_SCHEMA, provenance: part.provenance, space: part.space, includeBos: part.includeBos, negativeRatio: part.negativeRatio, relations: part.relations };
}

function savePart(part: RankingPart, dir: string): void {
  writeThroughStagingSync(dir, (tmp) => {
    const relations = part.relations.map((r) => {
      const bytes = new Uint8Array(r.ap.buffer, r.ap.byteOffset, r.ap.byteLength);
      const file = `${r.name}.ap.f32`;
      writeFileAtomic(join(tmp, file), bytes);
      return { name: r.name, numPositives: r.numPositives, numNegatives: r.numNegatives, file, sha256: sha256Hex(bytes) };
    });
    const body: RankingPartFile = { schema: RANKING_PART_SCHEMA, provenance: part.provenance, space: part.space.describe(), includeBos: part.includeBos, negativeRatio: part.negativeRatio, neurons: part.neurons, relations };
    writeFileAtomic(join(tmp, RANKING_PART_FILE), JSON.stringify(seal(body), null, 1));
  });
}

function readPart(dir: string): { file: RankingPartFile; ap: Float32Array[] } {
  const path = join(dir, RANKING_PART_FILE);
  if (!existsSync(path)) throw new CheckpointError(`${path}: missing; not a ranking part (rsn rank --neurons a:b) or it did not finish`, path);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new CheckpointError(`${path}: not readable JSON (${(e as Error).message})`, path);
  }
  const f = unseal(raw, path) as unknown as RankingPartFile;
  if (f?.schema !== RANKING_PART_SCHEMA) throw new CheckpointError(`${path}: field "schema" is ${JSON.stringify(f?.schema)}, expected "${RANKING_PART_SCHEMA}"`, path);
  if (!Array.isArray(f.neurons) || f.neurons.length !== 2 || !Array.isArray(f.relations)) throw new CheckpointError(`${path}: fields "neurons" ([start, end]) and "relations" are required`, path);
  const width = f.neurons[1] - f.neurons[0];
  const ap = f.relations.map((r) => {
    const file = join(dir, r.file);
    if (!existsSync(file)) throw new CheckpointError(`${file}: missing (listed in ${path})`, file);
    const buf = readFileSync(file);
    if (buf.length !== width * 4) throw new CheckpointError(`${file}: ${buf.length} bytes, expected ${width * 4} for neurons ${f.neurons.join('–')}`, file);
    if (sha256Hex(buf) !== r.sha256) throw new CheckpointError(`${file}: contents do not match the checksum in ${path}`, file);
    return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
  });
  return { file: f, ap };
}

/** True when `dir` holds a ranking part. */
export function isRankingPartDir(dir: string): boolean {
  return existsSync(join(dir, RANKING_PART_FILE));
}

/**
 * Put ranking parts that tile the neuron space together into one saved ranking in `outDir`:
 * parts of another store, damaged parts, gaps and overlaps are refused, naming the part.
 */
export function mergeRankingParts(dirs: readonly string[], outDir: string, log: (line: string) => void = () => {}): { reused: boolean } {
  const parts = dirs.map((d) => {
    try {
      return { dir: d, ...readPart(d) };
    } catch (e) {
      throw new CheckpointError(`ranking part ${d}: ${(e as Error).message}`, d);
    }
  });
  const first = parts[0]!;
  const names = (p: RankingPartFile) => canonicalJson(p.relations.map((r) => [r.name, r.numPositives, r.numNegatives]));
  const label = (p: { dir: string; file: RankingPartFile }) => `${p.dir} (neurons ${p.file.neurons[0]}–${p.file.neurons[1]})`;
  for (const p of parts) {
    if (rankingIdentity(p.file.provenance) !== rankingIdentity(first.file.provenance) || names(p.file) !== names(first.file) || canonicalJson(p.file.space) !== canonicalJson(first.file.space)) {
      throw new ConfigError(`${label(p)} ranks another store, relations or neuron space than ${label(first)}`, p.dir, 'parts');
    }
  }
  const space = NeuronSpace.fromDescription(first.file.space);
  const ordered = [...parts].sort((a, b) => a.file.neurons[0] - b.file.neurons[0]);
  let expect = 0;
  let prev: (typeof parts)[number] | null = null;
  for (const p of ordered) {
    const [s, e] = p.file.neurons;
    if (s > expect) throw new ConfigError(`neurons ${expect}–${s} are missing: no part covers them (the part after the gap is ${label(p)})`, p.dir, 'parts');
    if (s < expect) throw new ConfigError(`${label(prev!)} and ${label(p)} overlap`, p.dir, 'parts');
    expect = e;
    prev = p;
  }
  if (expect !== space.size) throw new ConfigError(`neurons ${expect}–${space.size} are missing: no part covers them`, undefined, 'parts');
  const prov: Provenance = { ...first.file.provenance, createdAt: new Date().toISOString(), parts: parts.length };
  if (existsSync(outDir)) {
    let same = false;
    try {
      same = rankingIdentity(loadRanking(outDir).provenance) === rankingIdentity(prov);
    } catch {
      same = false;
    }
    if (!same) throw new ConfigError(`${outDir}: already exists and is not this ranking; merge into a new directory`, outDir, 'out');
    log(`[rsn] merge: ${outDir} already holds this ranking; nothing to do`);
    return { reused: true };
  }
  const ranking: Ranking = {
    schema: RANKING_SCHEMA,
    provenance: prov,
    space,
    includeBos: first.file.includeBos,
    negativeRatio: first.file.negativeRatio,
    relations: first.file.relations.map((r, ri) => {
      const ap = new Float32Array(space.size);
      for (const p of ordered) ap.set(p.ap[ri]!, p.file.neurons[0]);
      return { name: r.name, numPositives: r.numPositives, numNegatives: r.numNegatives, ap };
    }),
  };
  saveRanking(ranking, outDir);
  log(`[rsn] merge: ${parts.length} ranking parts → ${outDir}`);
  return { reused: false };
}
