/**
 * Pooled activations of the identification set, collected in shards over prompt ranges: each
 * shard is an activation store (resumable, checksummed) of whole batches of the rows the
 * single-process pipeline collects, plus `identification.json`, the identification set and
 * settings it was made for. Merging the shards gives the single run's store, which
 * `rankStoreDir` ranks without the model.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Prompt } from '../data/prompts.ts';
import { writeThroughStaging } from '../data/staging.ts';
import { seal, unseal } from '../data/sealed-json.ts';
import { canonicalJson, sha256Hex, writeFileAtomic } from '../data/io.ts';
import { CheckpointError, ConfigError } from '../errors.ts';
import type { ModelRunner } from '../model/runner.ts';
import { ActivationStore, collectActivations, mergeStores, promptsHash } from '../method/activation-store.ts';
import type { Dataset } from '../method/dataset.ts';
import { provenance, type Provenance } from '../method/identity.ts';
import { requireTokenizer, type KnownFacts } from '../method/known.ts';
import { POOLS, type NeuronSite } from '../method/neurons.ts';
import type { IdentificationSet } from '../method/ranking.ts';
import { identification } from '../method/experiments/identification.ts';
import { checkShardSet, mergedEngine, shardBatchRange, shardName, WHOLE, type MergeOptions, type ShardSpec } from '../shard-spec.ts';

export const IDENTIFICATION_FILE = 'identification.json';
export const IDENTIFICATION_SCHEMA = 'rsn-identification/1';
/** Prompts per forward pass when the caller gives none (collectActivations' default). */
export const COLLECT_BATCH_SIZE = 32;

export interface CollectStageOptions {
  seed?: number;
  /** Record attention sites too (the App. G pools); default the FFN pool, as the pipeline. */
  recordAttention?: boolean;
  includeBos?: boolean;
  dtype?: 'float32' | 'float16';
  batchSize?: number;
  quiet?: boolean;
  log?: (line: string) => void;
}

/** identification.json: what a store's rows are and what it was collected with. */
export interface IdentificationFile {
  schema: typeof IDENTIFICATION_SCHEMA;
  provenance: Provenance;
  settings: { relations: string[]; seed: number; negativeRatio: number; includeBos: boolean; dtype: 'float32' | 'float16'; sites: NeuronSite[]; batchSize: number; known: unknown };
  /** sha256 of the token ids of every prompt (the store's promptsSha256). */
  promptsSha256: string;
  prompts: Prompt[];
  tasks: IdentificationSet['tasks'];
  shard: ShardSpec;
  promptRange: [number, number];
}

/** Everything two shards must share to be parts of one run (not the shard, its range or when it ran). */
/** With `engine`, the numeric engine is part of it (a shard is only resumed or reused by the same engine). */
function runIdentity(f: IdentificationFile, engine = true): string {
  return canonicalJson({ model: f.provenance.model.sha256, data: f.provenance.dataHash, ...(engine ? { backend: f.provenance.backend } : {}), settings: f.settings, prompts: f.promptsSha256, tasks: f.tasks });
}

export function readIdentification(dir: string): IdentificationFile {
  const file = join(dir, IDENTIFICATION_FILE);
  if (!existsSync(file)) throw new CheckpointError(`${file}: missing; not an activation store made by \`rsn collect\` (or its collection never started)`, file);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new CheckpointError(`${file}: not readable JSON (${(e as Error).message})`, file);
  }
  const f = unseal(raw, file) as unknown as IdentificationFile;
  const bad = (field: string, want: string): never => {
    throw new CheckpointError(`${file}: field "${field}" must be ${want}`, file);
  };
  if (f?.schema !== IDENTIFICATION_SCHEMA) bad('schema', `"${IDENTIFICATION_SCHEMA}"`);
  if (!Array.isArray(f.prompts) || !Array.isArray(f.tasks)) bad('prompts/tasks', 'arrays');
  if (!Number.isInteger(f.shard?.index) || !Number.isInteger(f.shard?.count)) bad('shard', '{index, count}');
  if (!Array.isArray(f.promptRange) || f.promptRange.length !== 2) bad('promptRange', '[start, end]');
  if (typeof f.provenance?.model?.sha256 !== 'string') bad('provenance.model', 'a model identity');
  return f;
}

export function identificationSetOf(f: IdentificationFile): IdentificationSet {
  return { prompts: f.prompts, tasks: f.tasks, seed: f.settings.seed, negativeRatio: f.settings.negativeRatio };
}

/**
 * Collect shard `shard` of the identification set's pooled activations into `outDir`. An
 * unfinished store there resumes; a finished one for the same run is left untouched; a store
 * for anything else is refused.
 */
export async function runCollectStage(model: ModelRunner, dataset: Dataset, known: KnownFacts, shard: ShardSpec, outDir: string, opts: CollectStageOptions = {}): Promise<{ store: ActivationStore; reused: boolean }> {
  const log = opts.log ?? (() => {});
  const seed = opts.seed ?? dataset.seed;
  const includeBos = opts.includeBos ?? true;
  const dtype = opts.dtype ?? 'float32';
  const batchSize = opts.batchSize ?? COLLECT_BATCH_SIZE;
  const sites = [...(opts.recordAttention ? POOLS.all : POOLS.ffn)];
  const idset = identification.plan(dataset, known, seed);
  const tok = requireTokenizer(model);
  const tokenized = idset.prompts.map((p) => tok.encode(p.text));
  const promptRange = shardBatchRange(tokenized.length, batchSize, shard, 'known prompts');
  const ident: IdentificationFile = {
    schema: IDENTIFICATION_SCHEMA,
    provenance: provenance(model, dataset.hash, seed, { includeBos, negativeRatio: idset.negativeRatio }),
    settings: { relations: dataset.relations.map((r) => r.relation.name), seed, negativeRatio: idset.negativeRatio, includeBos, dtype, sites, batchSize, known: known.relations.map((r) => [r.name, r.known]) },
    promptsSha256: promptsHash(tokenized),
    prompts: idset.prompts,
    tasks: idset.tasks,
    shard,
    promptRange,
  };
  const identFile = join(outDir, IDENTIFICATION_FILE);
  if (existsSync(identFile)) {
    const found = readIdentification(outDir);
    if (runIdentity(found, false) === runIdentity(ident, false) && found.provenance.backend !== ident.provenance.backend) {
      throw new ConfigError(`${identFile}: these activations were computed with the engine ${found.provenance.backend}, this process computes with ${ident.provenance.backend} (results differ in the last bits); run the shard on a machine of the same kind, or into another --out`, identFile, 'out');
    }
    if (runIdentity(found) !== runIdentity(ident) || canonicalJson(found.shard) !== canonicalJson(shard)) {
      throw new ConfigError(`${identFile}: activations of another run (model, data, known facts, settings or shard) are already there; choose another --out`, identFile, 'out');
    }
    if (existsSync(join(outDir, 'meta.json'))) {
      try {
        const store = ActivationStore.open(outDir);
        if (store.complete) {
          log(`[rsn] collect: ${shard.count > 1 ? shardName(shard) : 'the collection'} is already done (${outDir}, ${store.numPrompts} prompts); nothing to do`);
          return { store, reused: true };
        }
      } catch (e) {
        // collectActivations below reports the damage and collects those rows again.
        if (!(e instanceof CheckpointError)) throw e;
      }
    }
  } else {
    writeFileAtomic(identFile, JSON.stringify(seal(ident)));
  }
  const label = shard.count > 1 ? `${shardName(shard)}, prompts ${promptRange[0]}–${promptRange[1]} of ${tokenized.length}` : `${tokenized.length} prompts`;
  log(`[rsn] collect: ${label} → ${outDir}`);
  const store = await collectActivations(model, tokenized, outDir, { sites, includeBos, dtype, batchSize, promptRange, quiet: opts.quiet, log });
  return { store, reused: false };
}

/** True when `dir` holds an activation store made by `rsn collect`. */
export function isActivationShardDir(dir: string): boolean {
  return existsSync(join(dir, IDENTIFICATION_FILE));
}

/** A fingerprint of a store's contents: its rows' checksums, which the store verifies on open. */
export function storeFingerprint(store: ActivationStore): string {
  return sha256Hex(canonicalJson({ prompts: store.meta.promptsSha256, range: [store.meta.promptStart, store.meta.promptEnd], chunks: store.meta.chunks.map((c) => [c.start, c.end, c.sha256]) }));
}

/**
 * Merge the activation shards of one run into `outDir`: every shard verified (a missing,
 * unfinished or damaged shard is refused, naming it), all made for the same run, together
 * covering every prompt once. An `outDir` already holding this very store is left as it is.
 */
export async function mergeActivationShards(dirs: readonly string[], outDir: string, log: (line: string) => void = () => {}, opts: MergeOptions = {}): Promise<{ store: ActivationStore; reused: boolean }> {
  const idents = dirs.map((d) => {
    try {
      return readIdentification(d);
    } catch (e) {
      throw new CheckpointError(`activation shard ${d}: ${(e as Error).message}`, d);
    }
  });
  const label = (i: number) => `${dirs[i]} (${shardName(idents[i]!.shard)})`;
  const first = idents[0]!;
  idents.forEach((f, i) => {
    if (runIdentity(f, false) !== runIdentity(first, false)) throw new ConfigError(`${label(i)} was collected for another model, data, known facts or settings than ${label(0)}`, dirs[i], 'shards');
  });
  const backend = mergedEngine(idents.map((f) => f.provenance.backend), label, opts);
  checkShardSet(idents.map((f) => f.shard), label);
  const stores = dirs.map((d, i) => {
    let store: ActivationStore;
    try {
      store = ActivationStore.open(d);
    } catch (e) {
      throw new CheckpointError(`${label(i)}: ${(e as Error).message}`, d);
    }
    const m = store.meta;
    if (m.promptStart !== idents[i]!.promptRange[0] || m.promptEnd !== idents[i]!.promptRange[1]) {
      throw new CheckpointError(`${label(i)}: its store holds prompts ${m.promptStart}–${m.promptEnd}, its identification.json says ${idents[i]!.promptRange.join('–')}`, d);
    }
    if (!store.complete) throw new CheckpointError(`${label(i)}: unfinished (${m.completed} of ${m.promptEnd - m.promptStart} prompts); run the shard again to resume it, then merge`, d);
    return store;
  });
  const total = first.prompts.length;
  const ordered = stores.map((s, i) => ({ s, i })).sort((a, b) => a.s.meta.promptStart - b.s.meta.promptStart);
  let expect = 0;
  for (const { s, i } of ordered) {
    if (s.meta.promptStart !== expect) throw new ConfigError(`${label(i)} starts at prompt ${s.meta.promptStart}, expected ${expect}: ${s.meta.promptStart > expect ? 'a gap' : 'an overlap'} between shards`, dirs[i], 'shards');
    expect = s.meta.promptEnd;
  }
  if (expect !== total) throw new ConfigError(`the shards end at prompt ${expect} of ${total}: prompts ${expect}–${total} are missing`, undefined, 'shards');
  const merged: IdentificationFile = { ...first, shard: WHOLE, promptRange: [0, total], provenance: { ...first.provenance, backend, createdAt: new Date().toISOString(), shards: first.shard.count } };
  if (existsSync(outDir)) {
    const reuse = (() => {
      try {
        const f = readIdentification(outDir);
        const store = ActivationStore.open(outDir);
        const concatenated = ordered.map(({ s }) => s.meta.chunks.map((c) => c.sha256));
        const same = runIdentity(f) === runIdentity(merged) && store.complete && store.meta.promptStart === 0 && store.meta.promptEnd === total
          && store.meta.chunks.every((c, ci) => canonicalJson(c.sha256) === canonicalJson(concatenated.flatMap((x) => x[ci] ?? [])));
        return same ? store : null;
      } catch {
        return null;
      }
    })();
    if (reuse) {
      log(`[rsn] merge: ${outDir} already holds this store; nothing to do`);
      return { store: reuse, reused: true };
    }
    throw new ConfigError(`${outDir}: already exists; merge into a new directory`, outDir, 'out');
  }
  await writeThroughStaging(outDir, async (staging) => {
    await mergeStores(ordered.map(({ s }) => s), staging, log);
    writeFileAtomic(join(staging, IDENTIFICATION_FILE), JSON.stringify(seal(merged)));
  }, log);
  log(`[rsn] merge: ${stores.length} activation shards (${total} prompts) → ${outDir}`);
  return { store: ActivationStore.open(outDir, { verify: false }), reused: false };
}
