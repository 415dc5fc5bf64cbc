/**
 * The known-facts filter as files, for runs split over processes or machines: a shard writes
 * `known-shard.json` into its own directory; merging the shards (or running with one shard)
 * writes `known.json`, the same KnownFacts the single-process filter returns, plus the settings
 * it was made with, which the next stage checks.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalJson, writeFileAtomic } from '../data/io.ts';
import { seal, unseal } from '../data/sealed-json.ts';
import { writeThroughStagingSync } from '../data/staging.ts';
import { CheckpointError, ConfigError } from '../errors.ts';
import type { ModelRunner } from '../model/runner.ts';
import type { GradedAnswer } from '../method/accuracy.ts';
import type { Dataset } from '../method/dataset.ts';
import type { RunOptions } from '../method/generation.ts';
import { modelIdentity, provenance, type Provenance } from '../method/identity.ts';
import { assembleKnownFacts, KNOWN_SCHEMA, relationSizes, type KnownFacts } from '../method/known.ts';
import { KNOWN_BATCH_SIZE, runFilterShard } from '../method/experiments/known-filter.ts';
import { checkShardSet, mergedEngine, shardName, type MergeOptions, type ShardSpec } from '../shard-spec.ts';

export const KNOWN_FILE = 'known.json';
export const KNOWN_SHARD_FILE = 'known-shard.json';
export const KNOWN_SHARD_SCHEMA = 'rsn-known-shard/1';

/** Everything besides model and data that changes which facts the filter keeps. */
export interface KnownSettings {
  relations: string[];
  seed: number;
  batchSize: number;
  maxNewTokens: number;
}

export function knownSettings(dataset: Dataset, run: RunOptions = {}): KnownSettings {
  return { relations: dataset.relations.map((r) => r.relation.name), seed: dataset.seed, batchSize: run.batchSize ?? KNOWN_BATCH_SIZE, maxNewTokens: run.maxNewTokens ?? 2 };
}

/** known.json: the KnownFacts plus the settings that made them. */
export type KnownFile = KnownFacts & { settings: KnownSettings };

interface KnownShardFile {
  schema: typeof KNOWN_SHARD_SCHEMA;
  provenance: Provenance;
  settings: KnownSettings;
  shard: ShardSpec;
  /** Name and number of detection prompts of each relation: rows are numbered across them in this order. */
  relations: { name: string; total: number }[];
  rows: number[];
  outputs: string[];
  correct: boolean[];
}

/** What must agree between a file on disk and the run that wants to reuse or merge it. */
/** With `engine`, the numeric engine is part of it (a shard is only reused by the same engine). */
function identityOf(p: Provenance, settings: KnownSettings, engine = true): string {
  return canonicalJson({ model: p.model.sha256, data: p.dataHash, settings, ...(engine ? { engine: p.backend } : {}) });
}

function readJson(file: string, what: string): Record<string, unknown> {
  if (!existsSync(file)) throw new CheckpointError(`${file}: missing (${what})`, file);
  try {
    return unseal(JSON.parse(readFileSync(file, 'utf8')), file);
  } catch (e) {
    if (e instanceof CheckpointError) throw new CheckpointError(`${e.message}; run it again`, file);
    throw new CheckpointError(`${file}: not readable JSON (${(e as Error).message}); the shard is damaged, run it again`, file);
  }
}

function readShard(dir: string): KnownShardFile {
  const file = join(dir, KNOWN_SHARD_FILE);
  const s = readJson(file, 'not a known-facts shard, or its shard did not finish') as unknown as KnownShardFile;
  const bad = (field: string, want: string): never => {
    throw new CheckpointError(`${file}: field "${field}" must be ${want}; the shard is damaged, run it again`, file);
  };
  if (s.schema !== KNOWN_SHARD_SCHEMA) bad('schema', `"${KNOWN_SHARD_SCHEMA}"`);
  if (!Number.isInteger(s.shard?.index) || !Number.isInteger(s.shard?.count)) bad('shard', '{index, count}');
  if (!Array.isArray(s.rows) || !Array.isArray(s.outputs) || !Array.isArray(s.correct) || s.outputs.length !== s.rows.length || s.correct.length !== s.rows.length) bad('rows/outputs/correct', 'arrays of one length');
  if (!Array.isArray(s.relations)) bad('relations', 'an array');
  if (typeof s.provenance?.model?.sha256 !== 'string' || typeof s.provenance.dataHash !== 'string') bad('provenance', 'a provenance record with model and dataHash');
  const total = s.relations.reduce((a, r) => a + (Number.isInteger(r?.total) ? r.total : NaN), 0);
  if (!s.rows.every((r, i) => Number.isInteger(r) && r >= 0 && r < total && (i === 0 || r > s.rows[i - 1]!))) bad('rows', `ascending distinct prompt numbers below ${total}`);
  if (!s.correct.every((c) => typeof c === 'boolean')) bad('correct', 'booleans');
  return s;
}

/**
 * Read a complete known-facts directory (known.json). With `expect`, refuse facts made for
 * another model, data or settings, naming what differs.
 */
export function readKnownFacts(dir: string, expect?: { model: string; dataHash: string; relations: readonly string[]; seed: number }): KnownFile {
  const file = join(dir, KNOWN_FILE);
  if (!existsSync(file) && existsSync(join(dir, KNOWN_SHARD_FILE))) {
    throw new ConfigError(`${dir}: holds one shard of the known facts, not all of them; merge the shards first (rsn merge DIR… --out DIR)`, file, 'known');
  }
  const k = readJson(file, 'not a known-facts directory: run `rsn known` first') as unknown as KnownFile;
  if (k.schema !== KNOWN_SCHEMA) throw new CheckpointError(`${file}: field "schema" is ${JSON.stringify(k.schema)}, expected "${KNOWN_SCHEMA}"`, file);
  if (!Array.isArray(k.relations) || typeof k.settings !== 'object' || k.settings === null) throw new CheckpointError(`${file}: fields "relations" and "settings" are required`, file);
  k.relations.forEach((r, ri) => {
    const ok = Number.isInteger(r?.total) && Array.isArray(r.outputs) && r.outputs.length === r.total && Array.isArray(r.known) && r.known.every((i, j) => Number.isInteger(i) && i >= 0 && i < r.total && (j === 0 || i > r.known[j - 1]!));
    if (!ok) throw new CheckpointError(`${file}: relations[${ri}] must hold "total", one output per prompt and ascending distinct "known" indices below total`, file);
  });
  if (expect) {
    const diff: string[] = [];
    if (k.provenance?.model?.sha256 !== expect.model) diff.push(`model ${k.provenance?.model?.name} (${String(k.provenance?.model?.sha256).slice(0, 12)}) ≠ the model given (${expect.model.slice(0, 12)})`);
    if (k.provenance?.dataHash !== expect.dataHash) diff.push('the data (its hash) differs');
    if (canonicalJson(k.settings.relations) !== canonicalJson(expect.relations)) diff.push(`relations ${k.settings.relations?.join(',')} ≠ ${expect.relations.join(',')}`);
    if (k.settings.seed !== expect.seed) diff.push(`seed ${k.settings.seed} ≠ ${expect.seed}`);
    if (diff.length) throw new ConfigError(`${file}: these known facts were made for another run (${diff.join('; ')})`, file, 'known');
  }
  return k;
}

/**
 * Run shard `shard` of the filter into `outDir` (known-shard.json; known.json when there is
 * one shard). A finished shard for the same model, data and settings is left as it is; a
 * file there for anything else is refused, not overwritten.
 */
export async function runKnownStage(model: ModelRunner, dataset: Dataset, shard: ShardSpec, outDir: string, run: RunOptions = {}, log: (line: string) => void = () => {}): Promise<{ file: string; reused: boolean }> {
  const settings = knownSettings(dataset, run);
  const whole = shard.count === 1;
  const file = join(outDir, whole ? KNOWN_FILE : KNOWN_SHARD_FILE);
  const prov = provenance(model, dataset.hash, dataset.seed);
  const want = identityOf(prov, settings);
  if (existsSync(file)) {
    let found: { provenance: Provenance; settings: KnownSettings; shard?: ShardSpec } | null = null;
    try {
      found = whole ? readKnownFacts(outDir) : readShard(outDir);
    } catch (e) {
      log(`[rsn] known: ${file} is unusable (${(e as Error).message}); filtering again`);
    }
    if (found) {
      const same = identityOf(found.provenance, found.settings) === want && (whole || canonicalJson(found.shard) === canonicalJson(shard));
      if (!same) throw new ConfigError(`${file}: known facts for another model, data, settings or shard are already there; choose another --out`, file, 'out');
      log(`[rsn] known: ${whole ? 'the filter' : shardName(shard)} is already done (${file}); nothing to do`);
      return { file, reused: true };
    }
  }
  const part = await runFilterShard(model, dataset, shard, run);
  mkdirSync(outDir, { recursive: true });
  if (whole) {
    const answers = new Map(part.rows.map((row, k) => [row, part.answers[k]!]));
    const known: KnownFile = { ...assembleKnownFacts(relationSizes(dataset), answers, prov, settings.maxNewTokens), settings };
    writeFileAtomic(file, JSON.stringify(seal(known)));
  } else {
    const body: KnownShardFile = {
      schema: KNOWN_SHARD_SCHEMA,
      provenance: prov,
      settings,
      shard,
      relations: relationSizes(dataset),
      rows: part.rows,
      outputs: part.answers.map((a) => a.output),
      correct: part.answers.map((a) => a.correct),
    };
    writeFileAtomic(file, JSON.stringify(seal(body)));
  }
  log(`[rsn] known: ${whole ? 'the filter' : shardName(shard)} graded ${part.rows.length} of ${part.totalRows} detection prompts → ${file}`);
  return { file, reused: false };
}

/** True when `dir` holds a shard of the known-facts filter. */
export function isKnownShardDir(dir: string): boolean {
  return existsSync(join(dir, KNOWN_SHARD_FILE));
}

/**
 * Merge the shards of one filter run into `outDir`/known.json (written to a temp directory
 * and renamed). Refuses shards of another model, data or settings, missing or repeated shards
 * and damaged files, naming the shard's directory. An `outDir` already holding these very
 * facts is left as it is.
 */
export function mergeKnownShards(dirs: readonly string[], outDir: string, log: (line: string) => void = () => {}, opts: MergeOptions = {}): { file: string; reused: boolean } {
  const shards = dirs.map((d) => {
    try {
      return readShard(d);
    } catch (e) {
      throw new CheckpointError(`known-facts shard ${d}: ${(e as Error).message}`, d);
    }
  });
  const first = shards[0]!;
  const label = (i: number) => `${dirs[i]} (${shardName(shards[i]!.shard)})`;
  shards.forEach((s, i) => {
    if (identityOf(s.provenance, s.settings, false) !== identityOf(first.provenance, first.settings, false) || canonicalJson(s.relations) !== canonicalJson(first.relations)) {
      throw new ConfigError(`${label(i)} was made with another model, data or settings than ${label(0)} (model ${s.provenance.model.name}, settings ${canonicalJson(s.settings)} vs ${canonicalJson(first.settings)})`, dirs[i], 'shards');
    }
  });
  checkShardSet(shards.map((s) => s.shard), label);
  const answers = new Map<number, GradedAnswer>();
  const owner = new Map<number, number>();
  shards.forEach((s, i) => {
    s.rows.forEach((row, k) => {
      const prev = owner.get(row);
      if (prev !== undefined) throw new ConfigError(`${label(prev)} and ${label(i)} both hold detection prompt ${row} (overlapping shards)`, dirs[i], 'shards');
      owner.set(row, i);
      answers.set(row, { output: s.outputs[k]!, correct: s.correct[k]! });
    });
  });
  const backend = mergedEngine(shards.map((s) => s.provenance.backend), label, opts);
  const prov: Provenance = { ...first.provenance, backend, createdAt: new Date().toISOString(), shards: first.shard.count };
  const known: KnownFile = { ...assembleKnownFacts(first.relations, answers, prov, first.settings.maxNewTokens), settings: first.settings };
  const file = join(outDir, KNOWN_FILE);
  if (existsSync(outDir)) {
    const existing = existsSync(file) ? readKnownFacts(outDir) : null;
    if (existing && identityOf(existing.provenance, existing.settings) === identityOf(prov, first.settings) && canonicalJson(existing.relations) === canonicalJson(known.relations)) {
      log(`[rsn] merge: ${file} already holds these known facts; nothing to do`);
      return { file, reused: true };
    }
    throw new ConfigError(`${outDir}: already exists; merge into a new directory`, outDir, 'out');
  }
  writeThroughStagingSync(outDir, (tmp) => writeFileAtomic(join(tmp, KNOWN_FILE), JSON.stringify(seal(known))), log);
  log(`[rsn] merge: ${shards.length} known-facts shards → ${file}`);
  return { file, reused: false };
}

/** The identity of a model as `readKnownFacts` expects it. */
export function knownExpectation(model: ModelRunner, dataset: Dataset): { model: string; dataHash: string; relations: string[]; seed: number } {
  return { model: modelIdentity(model).sha256, dataHash: dataset.hash, relations: dataset.relations.map((r) => r.relation.name), seed: dataset.seed };
}
