/**
 * The project's relation dataset format, `rsn-relation/1`, and its strict loader.
 *
 * One JSON file per relation:
 *
 * ```json
 * {
 *   "schema": "rsn-relation/1",              // required, exactly this string
 *   "name": "company_ceo",                   // required, [A-Za-z0-9][A-Za-z0-9_-]*, unique in a directory
 *   "language": "en",                        // optional, default "en" (BCP-47-like tag)
 *   "description": "company → person",       // optional
 *   "source": { ... },                       // optional attribution block, see RelationSource
 *   "templates": ["{}'s CEO is", ...],       // required, ≥1, each with exactly one "{}" (the subject)
 *   "eva2Templates": ["Who is ...", ...],    // optional (default []), differently worded templates
 *   "notes": ["..."],                        // optional free text: deviations, ambiguities
 *   "samples": [{"subject": "...", "object": "..."}]   // required, ≥1
 * }
 * ```
 *
 * Unknown fields are errors (at every level) so that a misspelt optional field
 * ("eva2templates") cannot silently fall back to its default. Duplicate sample rows are
 * allowed: upstream data has them and row counts are part of what the paper reports.
 */

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { sha256Hex } from './io.ts';

export const RELATION_SCHEMA = 'rsn-relation/1';
export const SUBJECT_SLOT = '{}';

/** Bad data file: the message names the file, the field and what was expected. */
export class DataError extends Error {
  override name = 'DataError';
  constructor(message: string, readonly file?: string, readonly field?: string) {
    super(message);
  }
}

export interface Sample {
  subject: string;
  object: string;
}

/** What the upstream dataset itself said about the relation, kept verbatim for traceability. */
export interface UpstreamRecord {
  name?: string;
  templates?: string[];
  templatesZs?: string[];
  properties?: Record<string, string | number | boolean>;
}

/** Attribution: where the samples came from and under which licence. */
export interface RelationSource {
  /** Human-readable dataset citation. */
  dataset: string;
  url?: string;
  commit?: string;
  path?: string;
  /** git blob id of the upstream file, so the exact bytes can be checked. */
  blobId?: string;
  license?: string;
  copyright?: string;
  /** Licence text shipped next to the data (relative to the relation file). */
  licenseFile?: string;
  /** How this file was derived from the upstream one. */
  derivation?: string;
  upstream?: UpstreamRecord;
}

/** The content of a relation file, with optional fields filled with their defaults. */
export interface RelationData {
  schema: typeof RELATION_SCHEMA;
  name: string;
  language: string;
  description?: string;
  source?: RelationSource;
  templates: string[];
  eva2Templates: string[];
  notes: string[];
  samples: Sample[];
}

/** A loaded relation: the data plus where it came from and the sha256 of the file's bytes. */
export interface Relation extends RelationData {
  file: string;
  sha256: string;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
const LANGUAGE_RE = /^[a-z]{2,3}(-[A-Za-z0-9]{1,8})*$/;

type Json = Record<string, unknown>;

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (typeof v === 'string') {
    const s = JSON.stringify(v);
    return `the string ${s.length > 80 ? s.slice(0, 77) + '..."' : s}`;
  }
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

/** Validation context: every failure names the file and the JSON path of the field. */
class Checker {
  constructor(readonly file: string) {}

  fail(field: string, expected: string, found: unknown, extra = ''): never {
    throw new DataError(`${this.file}: field "${field}": expected ${expected}, found ${describe(found)}${extra}`, this.file, field);
  }

  object(v: unknown, field: string): Json {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(field, 'an object', v);
    return v as Json;
  }

  /** Rejects unknown keys and missing required keys of an object. */
  keys(obj: Json, field: string, required: readonly string[], optional: readonly string[]): void {
    const allowed = new Set([...required, ...optional]);
    for (const k of Object.keys(obj)) {
      if (!allowed.has(k)) {
        const where = field === '' ? k : `${field}.${k}`;
        const allowedText = [...allowed].join(', ');
        throw new DataError(`${this.file}: field "${where}": unknown field (allowed here: ${allowedText})`, this.file, where);
      }
    }
    for (const k of required) {
      if (!(k in obj)) {
        const where = field === '' ? k : `${field}.${k}`;
        throw new DataError(`${this.file}: field "${where}": required field is missing`, this.file, where);
      }
    }
  }

  string(v: unknown, field: string, opts: { nonEmpty?: boolean; trimmed?: boolean } = {}): string {
    if (typeof v !== 'string') this.fail(field, 'a string', v);
    if (opts.nonEmpty && v.length === 0) this.fail(field, 'a non-empty string', v);
    if (opts.trimmed && v.trim() !== v) this.fail(field, 'a string without leading or trailing whitespace', v);
    return v;
  }

  stringArray(v: unknown, field: string, opts: { nonEmpty?: boolean } = {}): string[] {
    if (!Array.isArray(v)) this.fail(field, 'an array of strings', v);
    if (opts.nonEmpty && v.length === 0) this.fail(field, 'a non-empty array', v);
    return v.map((x, i) => this.string(x, `${field}[${i}]`));
  }

  templates(v: unknown, field: string, nonEmpty: boolean): string[] {
    const list = this.stringArray(v, field, { nonEmpty });
    const seen = new Map<string, number>();
    list.forEach((t, i) => {
      const slots = t.split(SUBJECT_SLOT).length - 1;
      if (slots !== 1) {
        this.fail(`${field}[${i}]`, `a template with exactly one "${SUBJECT_SLOT}" (the subject slot)`, t, ` (${slots} slots)`);
      }
      if (t.trim() !== t) this.fail(`${field}[${i}]`, 'a template without leading or trailing whitespace', t);
      const prev = seen.get(t);
      if (prev !== undefined) this.fail(`${field}[${i}]`, `a template different from ${field}[${prev}]`, t);
      seen.set(t, i);
    });
    return list;
  }
}

function parseUpstream(c: Checker, v: unknown, field: string): UpstreamRecord {
  const o = c.object(v, field);
  c.keys(o, field, [], ['name', 'templates', 'templatesZs', 'properties']);
  const out: UpstreamRecord = {};
  if (o.name !== undefined) out.name = c.string(o.name, `${field}.name`);
  if (o.templates !== undefined) out.templates = c.stringArray(o.templates, `${field}.templates`);
  if (o.templatesZs !== undefined) out.templatesZs = c.stringArray(o.templatesZs, `${field}.templatesZs`);
  if (o.properties !== undefined) {
    const p = c.object(o.properties, `${field}.properties`);
    const props: Record<string, string | number | boolean> = {};
    for (const [k, x] of Object.entries(p)) {
      if (typeof x !== 'string' && typeof x !== 'number' && typeof x !== 'boolean') {
        c.fail(`${field}.properties.${k}`, 'a string, number or boolean', x);
      }
      props[k] = x;
    }
    out.properties = props;
  }
  return out;
}

const SOURCE_STRING_FIELDS = ['url', 'commit', 'path', 'blobId', 'license', 'copyright', 'licenseFile', 'derivation'] as const;

function parseSource(c: Checker, v: unknown): RelationSource {
  const o = c.object(v, 'source');
  c.keys(o, 'source', ['dataset'], [...SOURCE_STRING_FIELDS, 'upstream']);
  const out: RelationSource = { dataset: c.string(o.dataset, 'source.dataset', { nonEmpty: true }) };
  for (const k of SOURCE_STRING_FIELDS) {
    if (o[k] !== undefined) out[k] = c.string(o[k], `source.${k}`, { nonEmpty: true });
  }
  if (o.upstream !== undefined) out.upstream = parseUpstream(c, o.upstream, 'source.upstream');
  return out;
}

/** Validate already-parsed JSON as an `rsn-relation/1` document. `file` is used in messages. */
export function validateRelation(raw: unknown, file: string): RelationData {
  const c: Checker = new Checker(file);
  const o = c.object(raw, '(top level)');
  c.keys(o, '', ['schema', 'name', 'templates', 'samples'], ['language', 'description', 'source', 'eva2Templates', 'notes']);
  if (o.schema !== RELATION_SCHEMA) c.fail('schema', `the string "${RELATION_SCHEMA}"`, o.schema);
  const name = c.string(o.name, 'name');
  if (!NAME_RE.test(name)) c.fail('name', 'a name matching [A-Za-z0-9][A-Za-z0-9_-]* (it is used in file names)', name);
  let language = 'en';
  if (o.language !== undefined) {
    language = c.string(o.language, 'language');
    if (!LANGUAGE_RE.test(language)) c.fail('language', 'a language tag such as "en", "zh" or "pt-BR"', language);
  }
  const templates = c.templates(o.templates, 'templates', true);
  const eva2Templates = o.eva2Templates === undefined ? [] : c.templates(o.eva2Templates, 'eva2Templates', false);
  eva2Templates.forEach((t, i) => {
    // E8 measures robustness to *other* wordings; a shared template would blur that comparison.
    if (templates.includes(t)) c.fail(`eva2Templates[${i}]`, 'a template that is not also in "templates"', t);
  });
  const notes = o.notes === undefined ? [] : c.stringArray(o.notes, 'notes');
  if (!Array.isArray(o.samples)) c.fail('samples', 'a non-empty array of {"subject", "object"} objects', o.samples);
  if (o.samples.length === 0) c.fail('samples', 'a non-empty array of {"subject", "object"} objects', o.samples);
  const samples = o.samples.map((s, i): Sample => {
    const f = `samples[${i}]`;
    const so = c.object(s, f);
    c.keys(so, f, ['subject', 'object'], []);
    return {
      subject: c.string(so.subject, `${f}.subject`, { nonEmpty: true, trimmed: true }),
      object: c.string(so.object, `${f}.object`, { nonEmpty: true, trimmed: true }),
    };
  });
  const out: RelationData = { schema: RELATION_SCHEMA, name, language, templates, eva2Templates, notes, samples };
  if (o.description !== undefined) out.description = c.string(o.description, 'description');
  if (o.source !== undefined) out.source = parseSource(c, o.source);
  return out;
}

/** Parse and validate the text of a relation file. */
export function parseRelation(text: string, file: string): Relation {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new DataError(`${file}: field "(whole file)": expected valid JSON, found a parse error: ${msg}`, file, '(whole file)');
  }
  return { ...validateRelation(raw, file), file, sha256: sha256Hex(text) };
}

/** Load one relation file (strict; see the module comment for the schema). */
export function loadRelation(path: string): Relation {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new DataError(`${path}: cannot read relation file: ${msg}`, path);
  }
  const rel = parseRelation(bytes.toString('utf8'), path);
  // Hash the bytes, not the decoded string, so the hash is that of the file even if it is not clean UTF-8.
  rel.sha256 = sha256Hex(bytes);
  return rel;
}

/**
 * Load every `*.json` directly in `dir` (subdirectories such as `splits/` are ignored), sorted
 * by relation name. Two files with the same relation name are an error.
 */
export function loadRelations(dir: string): Relation[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new DataError(`${dir}: cannot read relation directory: ${msg}`, dir);
  }
  const files = entries.filter((f) => f.endsWith('.json') && statSync(join(dir, f)).isFile()).sort();
  if (files.length === 0) throw new DataError(`${dir}: expected at least one relation file (*.json), found none`, dir);
  const byName = new Map<string, string>();
  const rels = files.map((f) => {
    const path = join(dir, f);
    const rel = loadRelation(path);
    const prev = byName.get(rel.name);
    if (prev !== undefined) {
      throw new DataError(`${path}: field "name": expected a relation name unique in ${dir}, found "${rel.name}", also used by ${prev}`, path, 'name');
    }
    byName.set(rel.name, path);
    return rel;
  });
  return rels.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
