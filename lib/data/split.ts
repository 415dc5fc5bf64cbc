/**
 * Detection / evaluation split of one relation (paper §2.4): a random held-out set D^eva of
 * exactly `evalTriples` rows, and D^det = every other row, with no subject on both sides.
 *
 * Algorithm (`rsn-split/subject-greedy/1`), fixed so that a saved split can be recomputed:
 * 1. Group the relation's rows by subject key = subject, NFC-normalised and lower-cased
 *    (LRE has e.g. both "NVIDIA" and "Nvidia" in company_ceo; they are one entity, and a
 *    case variant on the other side would leak it). Groups are listed in order of first
 *    appearance in `samples`.
 * 2. Shuffle the groups with Fisher–Yates driven by mulberry32(seed).
 * 3. Walk the shuffled groups. A group joins D^eva with *all* its rows if they fit in what is
 *    left of the budget; otherwise it is skipped (it stays in D^det) and the walk goes on.
 *    Stop when D^eva has exactly `evalTriples` rows.
 * 4. If the walk ends short of `evalTriples`, or D^det would be empty, that is an error.
 *
 * So a subject with several rows (different objects, or an exact duplicate row kept from
 * upstream) is never split; duplicate rows stay duplicates, and "50 triples" counts rows.
 * Both lists are in row order, and every triple records its row index in `samples`.
 */

import { readFileSync } from 'node:fs';
import { formatJson, writeFileAtomic } from './io.ts';
import { DataError, type Relation } from './relation.ts';
import { RNG_NAME, checkSeed, mulberry32, shuffled } from '../rng.ts';

export const SPLIT_SCHEMA = 'rsn-split/1';
export const SPLIT_ALGORITHM = 'rsn-split/subject-greedy/1';
export const DEFAULT_EVAL_TRIPLES = 50;

export interface Triple {
  relation: string;
  /** Index of the row in the relation's `samples`. */
  row: number;
  subject: string;
  object: string;
}

export interface Split {
  relation: string;
  /** sha256 of the relation file the split was computed from. */
  relationSha256: string;
  seed: number;
  evalTriples: number;
  /** Licence/attribution of the data the triples come from, if the relation has a source. */
  attribution?: string;
  evaluation: Triple[];
  detection: Triple[];
}

export interface SplitOptions {
  evalTriples?: number;
  seed: number;
}

/** The key under which rows count as the same subject for disjointness. */
export function subjectKey(subject: string): string {
  return subject.normalize('NFC').toLowerCase();
}

function attributionOf(rel: Relation): string | undefined {
  const s = rel.source;
  if (s === undefined) return undefined;
  const where = s.url === undefined ? '' : ` ${s.url}${s.commit === undefined ? '' : ` @ ${s.commit}`}`;
  const parts = [`${s.dataset}${where}`];
  if (s.license !== undefined) parts.push(`licence ${s.license}`);
  if (s.copyright !== undefined) parts.push(s.copyright);
  return parts.join('; ');
}

export function splitRelation(rel: Relation, opts: SplitOptions): Split {
  const evalTriples = opts.evalTriples ?? DEFAULT_EVAL_TRIPLES;
  const seed = checkSeed(opts.seed);
  if (!Number.isInteger(evalTriples) || evalTriples <= 0) {
    throw new RangeError(`splitRelation: evalTriples must be a positive integer, found ${evalTriples}`);
  }
  const groups = new Map<string, number[]>();
  rel.samples.forEach((s, row) => {
    const k = subjectKey(s.subject);
    const g = groups.get(k);
    if (g === undefined) groups.set(k, [row]);
    else g.push(row);
  });
  const order = shuffled([...groups.values()], mulberry32(seed));
  const inEval = new Set<number>();
  for (const rows of order) {
    if (inEval.size === evalTriples) break;
    if (inEval.size + rows.length <= evalTriples) rows.forEach((r) => inEval.add(r));
  }
  if (inEval.size !== evalTriples) {
    throw new DataError(
      `${rel.file}: relation "${rel.name}": cannot draw exactly ${evalTriples} evaluation triples by whole subjects ` +
        `(got ${inEval.size} from ${rel.samples.length} rows, ${groups.size} subjects)`,
      rel.file,
      'samples',
    );
  }
  if (inEval.size === rel.samples.length) {
    throw new DataError(`${rel.file}: relation "${rel.name}": ${rel.samples.length} rows leave nothing for detection after ${evalTriples} evaluation triples`, rel.file, 'samples');
  }
  const triple = (row: number): Triple => ({ relation: rel.name, row, subject: rel.samples[row].subject, object: rel.samples[row].object });
  const evaluation: Triple[] = [];
  const detection: Triple[] = [];
  for (let row = 0; row < rel.samples.length; row++) (inEval.has(row) ? evaluation : detection).push(triple(row));
  const split: Split = { relation: rel.name, relationSha256: rel.sha256, seed, evalTriples, evaluation, detection };
  const attribution = attributionOf(rel);
  if (attribution !== undefined) split.attribution = attribution;
  return split;
}

/** Conventional file name of a split, e.g. `company_ceo.seed0.json`. */
export function splitFileName(relation: string, seed: number): string {
  return `${relation}.seed${seed}.json`;
}

/** The JSON text of a split file (deterministic, one triple per line). */
export function formatSplit(split: Split): string {
  const row = (t: Triple) => ({ row: t.row, subject: t.subject, object: t.object });
  return formatJson({
    schema: SPLIT_SCHEMA,
    relation: split.relation,
    relationSha256: split.relationSha256,
    algorithm: SPLIT_ALGORITHM,
    rng: RNG_NAME,
    seed: split.seed,
    evalTriples: split.evalTriples,
    attribution: split.attribution,
    counts: { evaluation: split.evaluation.length, detection: split.detection.length },
    evaluation: split.evaluation.map(row),
    detection: split.detection.map(row),
  });
}

export function saveSplit(split: Split, path: string): void {
  writeFileAtomic(path, formatSplit(split));
}

type Json = Record<string, unknown>;

function fail(file: string, field: string, expected: string, found: unknown): never {
  throw new DataError(`${file}: field "${field}": expected ${expected}, found ${JSON.stringify(found) ?? 'nothing'}`, file, field);
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const SPLIT_FIELDS = ['schema', 'relation', 'relationSha256', 'algorithm', 'rng', 'seed', 'evalTriples', 'attribution', 'counts', 'evaluation', 'detection'];

function parseTriples(file: string, relation: string, v: unknown, field: string): Triple[] {
  if (!Array.isArray(v)) fail(file, field, 'an array of {"row", "subject", "object"}', v);
  return v.map((t: unknown, i): Triple => {
    const f = `${field}[${i}]`;
    if (!isObject(t)) fail(file, f, 'an object', t);
    for (const k of Object.keys(t)) if (!['row', 'subject', 'object'].includes(k)) fail(file, `${f}.${k}`, 'no such field (allowed: row, subject, object)', t[k]);
    if (!Number.isInteger(t.row) || (t.row as number) < 0) fail(file, `${f}.row`, 'a non-negative integer', t.row);
    if (typeof t.subject !== 'string') fail(file, `${f}.subject`, 'a string', t.subject);
    if (typeof t.object !== 'string') fail(file, `${f}.object`, 'a string', t.object);
    return { relation, row: t.row as number, subject: t.subject, object: t.object };
  });
}

/**
 * Load a split file. With `rel`, also check that it was made from exactly that relation file
 * (same sha256) and that its rows are that file's rows; without it, only internal consistency.
 */
export function loadSplit(path: string, rel?: Relation): Split {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new DataError(`${path}: field "(whole file)": expected a readable JSON split file: ${msg}`, path, '(whole file)');
  }
  if (!isObject(raw)) fail(path, '(top level)', 'an object', raw);
  for (const k of Object.keys(raw)) if (!SPLIT_FIELDS.includes(k)) fail(path, k, `no such field (allowed: ${SPLIT_FIELDS.join(', ')})`, raw[k]);
  if (raw.schema !== SPLIT_SCHEMA) fail(path, 'schema', `"${SPLIT_SCHEMA}"`, raw.schema);
  if (raw.algorithm !== SPLIT_ALGORITHM) fail(path, 'algorithm', `"${SPLIT_ALGORITHM}"`, raw.algorithm);
  if (raw.rng !== RNG_NAME) fail(path, 'rng', `"${RNG_NAME}"`, raw.rng);
  if (typeof raw.relation !== 'string' || raw.relation === '') fail(path, 'relation', 'a relation name', raw.relation);
  if (typeof raw.relationSha256 !== 'string' || !/^[0-9a-f]{64}$/.test(raw.relationSha256)) fail(path, 'relationSha256', 'a hex sha256', raw.relationSha256);
  const seed = raw.seed;
  if (typeof seed !== 'number' || !Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) fail(path, 'seed', 'an integer in [0, 4294967295]', seed);
  const evalTriples = raw.evalTriples;
  if (typeof evalTriples !== 'number' || !Number.isInteger(evalTriples) || evalTriples <= 0) fail(path, 'evalTriples', 'a positive integer', evalTriples);
  if (raw.attribution !== undefined && typeof raw.attribution !== 'string') fail(path, 'attribution', 'a string', raw.attribution);
  const relation = raw.relation;
  const evaluation = parseTriples(path, relation, raw.evaluation, 'evaluation');
  const detection = parseTriples(path, relation, raw.detection, 'detection');
  if (evaluation.length !== evalTriples) fail(path, 'evaluation', `${evalTriples} triples (evalTriples)`, `${evaluation.length} triples`);
  if (raw.counts !== undefined) {
    const c = raw.counts;
    if (!isObject(c) || c.evaluation !== evaluation.length || c.detection !== detection.length || Object.keys(c).length !== 2) {
      fail(path, 'counts', `{"evaluation": ${evaluation.length}, "detection": ${detection.length}}`, c);
    }
  }
  const rows = new Set<number>();
  for (const [field, list] of [['evaluation', evaluation], ['detection', detection]] as const) {
    list.forEach((t, i) => {
      if (rows.has(t.row)) fail(path, `${field}[${i}].row`, 'a row index not used elsewhere in the split', t.row);
      rows.add(t.row);
    });
  }
  const evalKeys = new Set(evaluation.map((t) => subjectKey(t.subject)));
  detection.forEach((t, i) => {
    if (evalKeys.has(subjectKey(t.subject))) fail(path, `detection[${i}].subject`, 'a subject that is not in the evaluation set', t.subject);
  });
  const split: Split = { relation, relationSha256: raw.relationSha256, seed, evalTriples, evaluation, detection };
  if (raw.attribution !== undefined) split.attribution = raw.attribution;
  if (rel !== undefined) checkSplitMatches(split, rel, path);
  return split;
}

/** Throws unless `split` was computed from exactly this relation file. */
export function checkSplitMatches(split: Split, rel: Relation, splitFile = '(split)'): void {
  if (split.relation !== rel.name) fail(splitFile, 'relation', `"${rel.name}" (the relation in ${rel.file})`, split.relation);
  if (split.relationSha256 !== rel.sha256) {
    throw new DataError(
      `${splitFile}: field "relationSha256": expected ${rel.sha256} (sha256 of ${rel.file}), found ${split.relationSha256}: ` +
        'the split was computed from a different version of the relation file; recompute it',
      splitFile,
      'relationSha256',
    );
  }
  const total = split.evaluation.length + split.detection.length;
  if (total !== rel.samples.length) fail(splitFile, 'detection', `${rel.samples.length - split.evaluation.length} triples (all other rows of ${rel.file})`, `${split.detection.length}`);
  for (const [field, list] of [['evaluation', split.evaluation], ['detection', split.detection]] as const) {
    list.forEach((t, i) => {
      const s = rel.samples[t.row];
      if (s === undefined || s.subject !== t.subject || s.object !== t.object) {
        fail(splitFile, `${field}[${i}]`, `row ${t.row} of ${rel.file} (${JSON.stringify(s ?? null)})`, { subject: t.subject, object: t.object });
      }
    });
  }
}
