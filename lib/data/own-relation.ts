/**
 * A relation of one's own, studied next to a base dataset: read the user's relation file
 * (`rsn-relation/1`, or the LRE format of Hernandez et al.: name, prompt_templates,
 * prompt_templates_zs, properties, samples), and build a data folder that holds the chosen base
 * relations plus the new one, with splits, that `loadDataset` / `Pipeline.open` read like any
 * other.
 *
 * The folder lives in a cache root and is named by a hash of everything in it, so the same
 * inputs give the same folder (and the same pipeline cache), a changed file gives a new one,
 * and neither the base data nor the user's file is ever written to.
 *
 * Overlap check: a relation's negatives are the other relations' prompts, so a base relation
 * that shares prompt texts with the new one would put the very same prompt among both the
 * positives and the negatives. Overlaps are reported, and `dropOverlapping` leaves such base
 * relations out.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join, relative, resolve, isAbsolute } from 'node:path';
import { formatJson, sha256Hex } from './io.ts';
import { writeThroughStagingSync } from './staging.ts';
import { fillTemplate } from './prompts.ts';
import { DataError, loadRelations, parseRelation, RELATION_SCHEMA, SUBJECT_SLOT, validateRelation, type Relation, type RelationData } from './relation.ts';
import { DEFAULT_EVAL_TRIPLES, formatSplit, splitFileName, splitRelation, subjectKey } from './split.ts';

/** Version of the folder layout; part of the folder's hash, so a changed layout never reuses an old folder. */
export const OWN_DATA_VERSION = 'rsn-own-data/1';

export type OwnRelationFormat = 'rsn-relation/1' | 'lre';

export interface OwnRelation {
  /** The relation as the project reads it; `file` is the user's file, so errors name it. */
  relation: Relation;
  format: OwnRelationFormat;
  /** The bytes written into the data folder: the user's file itself, or the rsn-relation/1 form of an LRE file. */
  bytes: Uint8Array;
}

type Json = Record<string, unknown>;

const LRE_FIELDS = ['name', 'prompt_templates', 'prompt_templates_zs', 'properties', 'samples'];

function found(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  return 'an object';
}

function lreFail(file: string, field: string, expected: string, value: unknown, extra = ''): never {
  throw new DataError(`${file}: field "${field}": expected ${expected}, found ${found(value)}${extra} (LRE-format relation file)`, file, field);
}

/** LRE template lists, checked under their LRE field names before conversion. */
function lreTemplates(file: string, v: unknown, field: string, nonEmpty: boolean): string[] {
  if (!Array.isArray(v) || (nonEmpty && v.length === 0)) lreFail(file, field, `${nonEmpty ? 'a non-empty' : 'an'} array of templates`, v);
  return v.map((t, i) => {
    if (typeof t !== 'string') lreFail(file, `${field}[${i}]`, 'a string', t);
    const slots = t.split(SUBJECT_SLOT).length - 1;
    if (slots !== 1) lreFail(file, `${field}[${i}]`, `a template with exactly one "${SUBJECT_SLOT}" (the subject slot)`, t, ` (${slots} slots)`);
    if (t.trim() !== t) lreFail(file, `${field}[${i}]`, 'a template without leading or trailing whitespace', t);
    return t;
  });
}

/** An LRE relation name ("person plays instrument") as a project relation name ("person_plays_instrument"). */
export function lreRelationName(name: string): string {
  return name.trim().replace(/[^A-Za-z0-9_-]+/g, '_').replace(/^[_-]+|_+$/g, '');
}

function fromLre(raw: Json, file: string): RelationData {
  for (const k of Object.keys(raw)) {
    if (!LRE_FIELDS.includes(k)) throw new DataError(`${file}: field "${k}": unknown field (allowed in an LRE-format file: ${LRE_FIELDS.join(', ')})`, file, k);
  }
  if (typeof raw.name !== 'string' || lreRelationName(raw.name) === '') lreFail(file, 'name', 'a relation name with at least one letter or digit', raw.name);
  const templates = lreTemplates(file, raw.prompt_templates, 'prompt_templates', true);
  const dupe = templates.findIndex((t, i) => templates.indexOf(t) !== i);
  if (dupe >= 0) lreFail(file, `prompt_templates[${dupe}]`, `a template different from prompt_templates[${templates.indexOf(templates[dupe]!)}]`, templates[dupe]);
  const zs = raw.prompt_templates_zs === undefined ? [] : lreTemplates(file, raw.prompt_templates_zs, 'prompt_templates_zs', false);
  // LRE's zero-shot list usually repeats the originals; only the other wordings are eva-2 templates.
  const eva2 = [...new Set(zs.filter((t) => !templates.includes(t)))];
  let properties: Record<string, string | number | boolean> | undefined;
  if (raw.properties !== undefined) {
    if (typeof raw.properties !== 'object' || raw.properties === null || Array.isArray(raw.properties)) lreFail(file, 'properties', 'an object', raw.properties);
    properties = {};
    for (const [k, x] of Object.entries(raw.properties as Json)) {
      if (typeof x !== 'string' && typeof x !== 'number' && typeof x !== 'boolean') lreFail(file, `properties.${k}`, 'a string, number or boolean', x);
      properties[k] = x;
    }
  }
  const doc = {
    schema: RELATION_SCHEMA,
    name: lreRelationName(raw.name),
    language: 'en',
    description: `converted from the LRE-format file ${basename(file)} (LRE name "${raw.name}")`,
    source: {
      dataset: `LRE-format relation file ${basename(file)}`,
      derivation: 'Converted by lib/data/own-relation.ts: prompt_templates → templates, prompt_templates_zs without the originals → eva2Templates, samples unchanged.',
      upstream: { name: raw.name, templates, templatesZs: zs, ...(properties ? { properties } : {}) },
    },
    templates,
    eva2Templates: eva2,
    samples: raw.samples,
  };
  // The converted document is checked by the project's own validator (samples, name), with the user's file in every message.
  const r = validateRelation(doc, file);
  // Field order of the committed relation files, so the written file reads like them.
  return { schema: r.schema, name: r.name, language: r.language, description: r.description, source: r.source, templates: r.templates, eva2Templates: r.eva2Templates, notes: r.notes, samples: r.samples };
}

/**
 * Read and validate a relation file of one's own. Errors are DataErrors naming the file and the
 * field (for an LRE file, the LRE field name), and saying what was expected.
 */
export function readOwnRelation(path: string): OwnRelation {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new DataError(`${path}: cannot read the relation file (${(err as Error).message})`, path);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new DataError(`${path}: field "(whole file)": expected valid JSON, found a parse error: ${(err as Error).message}`, path, '(whole file)');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new DataError(`${path}: field "(top level)": expected an object (an rsn-relation/1 or LRE-format relation), found ${found(raw)}`, path, '(top level)');
  }
  const obj = raw as Json;
  if ('schema' in obj) {
    const relation = parseRelation(bytes.toString('utf8'), path);
    // Hash the bytes, as loadRelation does, since these exact bytes are what the data folder holds.
    relation.sha256 = sha256Hex(bytes);
    return { relation, format: 'rsn-relation/1', bytes };
  }
  if ('prompt_templates' in obj) {
    const text = formatJson(fromLre(obj, path));
    return { relation: parseRelation(text, path), format: 'lre', bytes: new TextEncoder().encode(text) };
  }
  throw new DataError(
    `${path}: field "schema": expected "${RELATION_SCHEMA}" (or an LRE-format file with "prompt_templates"), found nothing; see lib/data/relation.ts for the format`,
    path,
    'schema',
  );
}

export interface RelationOverlap {
  /** The base relation. */
  relation: string;
  /** Subject–object pairs of the new relation that the base relation also has (subjects compared case-insensitively). */
  sharedFacts: number;
  /** Prompt texts (template × subject, any template) that both relations produce. */
  sharedPrompts: number;
}

function promptTexts(r: RelationData): Set<string> {
  const out = new Set<string>();
  for (const s of r.samples) for (const t of [...r.templates, ...r.eva2Templates]) out.add(fillTemplate(t, s.subject));
  return out;
}

/** How much the new relation shares with each base relation (only base relations that share something). */
export function relationOverlaps(own: RelationData, base: readonly RelationData[]): RelationOverlap[] {
  const facts = new Set(own.samples.map((s) => JSON.stringify([subjectKey(s.subject), s.object])));
  const texts = promptTexts(own);
  return base
    .map((b) => {
      const bFacts = new Set(b.samples.map((s) => JSON.stringify([subjectKey(s.subject), s.object])));
      let sharedPrompts = 0;
      for (const t of promptTexts(b)) if (texts.has(t)) sharedPrompts++;
      return { relation: b.name, sharedFacts: [...facts].filter((f) => bFacts.has(f)).length, sharedPrompts };
    })
    .filter((o) => o.sharedFacts > 0 || o.sharedPrompts > 0);
}

export interface OwnDataOptions {
  /** The base relation folder (rsn-relation/1 files + splits/). */
  baseDir: string;
  /** The user's relation file. */
  relationFile: string;
  /** Where data folders are made; one sub-folder per content hash. */
  cacheRoot: string;
  /** Base relations to keep (default: all). */
  relations?: readonly string[];
  /** Leave out base relations that share prompt texts with the new relation (default false). */
  dropOverlapping?: boolean;
  /** Split seed of the new relation (the base relations' committed splits of this seed are copied). */
  seed?: number;
  /** Evaluation triples of the new relation (default 50, the paper's). */
  evalTriples?: number;
}

export interface OwnData {
  /** The data folder: pass it as the pipeline's data directory. */
  dir: string;
  /** The new relation's name. */
  relation: string;
  format: OwnRelationFormat;
  /** Base relations in the folder. */
  base: string[];
  /** Base relations left out because they share prompts with the new one. */
  dropped: string[];
  /** Everything the new relation shares with the base relations asked for (dropped or not). */
  overlaps: RelationOverlap[];
  /** The new relation's split. */
  evaluation: number;
  detection: number;
  /** The folder already existed (same content hash) and was reused. */
  reused: boolean;
}

/** In a sub-folder, because loadRelations reads every top-level *.json as a relation. */
const MANIFEST = join('meta', 'own-data.json');

function inside(dir: string, parent: string): boolean {
  const r = relative(resolve(parent), resolve(dir));
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
}

/**
 * The data folder for the base relations plus the user's relation, with splits, under
 * `cacheRoot/<name>-<hash>/` (made once, atomically; reused while its inputs are unchanged).
 */
export function buildOwnData(opts: OwnDataOptions): OwnData {
  const seed = opts.seed ?? 0;
  const evalTriples = opts.evalTriples ?? DEFAULT_EVAL_TRIPLES;
  const own = readOwnRelation(opts.relationFile);
  const name = own.relation.name;
  let base = loadRelations(opts.baseDir);
  const names = base.map((r) => r.name);
  if (opts.relations?.length) {
    const unknown = opts.relations.filter((r) => !names.includes(r));
    if (unknown.length) throw new DataError(`${opts.baseDir}: unknown base relation(s) ${unknown.join(', ')} (parameter relations); this folder has ${names.join(', ')}`, opts.baseDir, 'relations');
    base = base.filter((r) => opts.relations!.includes(r.name));
  }
  if (names.includes(name)) {
    throw new DataError(`${opts.relationFile}: field "name": expected a relation name not already in the base data ${opts.baseDir}, found "${name}"; rename the new relation`, opts.relationFile, 'name');
  }
  const overlaps = relationOverlaps(own.relation, base);
  const dropped = opts.dropOverlapping ? overlaps.filter((o) => o.sharedPrompts > 0).map((o) => o.relation) : [];
  base = base.filter((r) => !dropped.includes(r.name));
  if (base.length === 0) throw new DataError(`${opts.baseDir}: no base relation is left (the new relation's negatives come from the other relations, so at least one is needed)`, opts.baseDir, 'relations');

  // The new relation's split, computed here so that a relation too small for it is an error naming the user's file.
  const split = splitRelation(own.relation, { seed, evalTriples });
  const splitName = splitFileName(name, seed);
  const baseFiles = base.map((r) => {
    const splitPath = join(opts.baseDir, 'splits', splitFileName(r.name, seed));
    const splitBytes = existsSync(splitPath) ? readFileSync(splitPath) : null;
    return { relation: r, bytes: readFileSync(r.file), splitBytes };
  });
  const hash = sha256Hex(
    JSON.stringify({
      version: OWN_DATA_VERSION,
      seed,
      evalTriples,
      base: baseFiles.map((b) => [b.relation.name, b.relation.sha256, b.splitBytes ? sha256Hex(b.splitBytes) : null]),
      own: [name, sha256Hex(own.bytes)],
    }),
  );
  const root = resolve(opts.cacheRoot);
  const dir = join(root, `${name}-${hash.slice(0, 12)}`);
  if (inside(dir, opts.baseDir)) throw new DataError(`${opts.cacheRoot}: the cache root lies inside the base data ${opts.baseDir}; choose a folder outside it (the base data is never written to)`, opts.cacheRoot, 'cacheRoot');
  const result: Omit<OwnData, 'reused'> = { dir, relation: name, format: own.format, base: base.map((r) => r.name), dropped, overlaps, evaluation: split.evaluation.length, detection: split.detection.length };
  if (existsSync(join(dir, MANIFEST))) return { ...result, reused: true };

  try {
    writeThroughStagingSync(dir, (tmp) => {
      mkdirSync(join(tmp, 'splits'), { recursive: true });
      mkdirSync(join(tmp, 'meta'), { recursive: true });
      for (const b of baseFiles) {
        writeFileSync(join(tmp, basename(b.relation.file)), b.bytes);
        if (b.splitBytes) writeFileSync(join(tmp, 'splits', splitFileName(b.relation.name, seed)), b.splitBytes);
      }
      writeFileSync(join(tmp, `${name}.json`), own.bytes);
      writeFileSync(join(tmp, 'splits', splitName), formatSplit(split));
      // Written last: a folder with a manifest is complete.
      writeFileSync(join(tmp, MANIFEST), JSON.stringify({ schema: OWN_DATA_VERSION, hash, source: { baseDir: resolve(opts.baseDir), relationFile: resolve(opts.relationFile) }, ...result, dir: undefined }, null, 1) + '\n');
      if (existsSync(dir)) rmSync(dir, { recursive: true, force: true }); // an incomplete folder (no manifest) from a killed run
    });
  } catch (e) {
    // Another process may have made the same folder meanwhile; its content is the same by construction.
    if (existsSync(join(dir, MANIFEST))) return { ...result, reused: true };
    throw e;
  }
  return { ...result, reused: false };
}
