/**
 * The one cache of the lab's stages (known facts, ranking, every experiment, notebook-level
 * results). An entry is found by a key that holds everything that can change the result: the
 * model's identity, the data's hash, the backend, the settings that reach the computation, and
 * a fingerprint of the code that computes it. Values are stored in an encoding that round-trips
 * exactly (NaN, ±Infinity, -0, undefined and typed arrays included), so a cached run returns
 * what a fresh run would. An entry that cannot be read or does not match its key is reported by
 * file name and recomputed; it is never used.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { canonicalJson, sha256Hex, writeFileAtomic } from '../data/io.ts';
import { readSealedJson, seal } from '../data/sealed-json.ts';

export const STAGE_SCHEMA = 'rsn-stage/2';

/** sha256 of a key's canonical JSON. */
export function keyHash(key: unknown): string {
  return sha256Hex(canonicalJson(key));
}

// ------------------------------------------------------------------ exact value encoding

const TYPED = {
  Float32Array,
  Float64Array,
  Int32Array,
  Uint32Array,
  Int16Array,
  Uint16Array,
  Int8Array,
  Uint8Array,
} as const;
type TypedName = keyof typeof TYPED;

function encodeNumber(v: number): unknown {
  if (Number.isNaN(v)) return { $number: 'NaN' };
  if (v === Infinity) return { $number: 'Infinity' };
  if (v === -Infinity) return { $number: '-Infinity' };
  if (Object.is(v, -0)) return { $number: '-0' };
  return v;
}

/**
 * `value` as plain JSON data: numbers JSON cannot hold, undefined and typed arrays become tagged
 * objects ({"$number": "NaN"}, {"$undefined": true}, {"$typed": "Float32Array", "data": […]}).
 * Anything else that JSON would change (Map, Set, Date, class instances, functions) is refused.
 */
export function encodeExact(value: unknown, path = 'value'): unknown {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (value === undefined) return { $undefined: true };
  if (typeof value === 'number') return encodeNumber(value);
  if (Array.isArray(value)) return value.map((x, i) => encodeExact(x, `${path}[${i}]`));
  if (ArrayBuffer.isView(value)) {
    const name = value.constructor.name as TypedName;
    if (!(name in TYPED)) throw new TypeError(`${path}: a ${name} cannot be cached`);
    return { $typed: name, data: Array.from(value as unknown as ArrayLike<number>, encodeNumber) };
  }
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (k.startsWith('$')) throw new TypeError(`${path}.${k}: keys starting with "$" are reserved by the cache encoding`);
      out[k] = encodeExact(v, `${path}.${k}`);
    }
    return out;
  }
  throw new TypeError(`${path}: a ${typeof value === 'object' ? (value as object).constructor?.name ?? 'object' : typeof value} cannot be cached exactly (plain data, numbers and typed arrays only)`);
}

function decodeNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  const tag = (v as { $number?: unknown } | null)?.$number;
  switch (tag) {
    case 'NaN':
      return NaN;
    case 'Infinity':
      return Infinity;
    case '-Infinity':
      return -Infinity;
    case '-0':
      return -0;
    default:
      throw new TypeError(`not an encoded number: ${JSON.stringify(v)}`);
  }
}

/** The inverse of encodeExact. */
export function decodeExact(data: unknown): unknown {
  if (data === null || typeof data !== 'object') return data;
  if (Array.isArray(data)) return data.map(decodeExact);
  const o = data as Record<string, unknown>;
  if ('$number' in o) return decodeNumber(o);
  if ('$undefined' in o) return undefined;
  if ('$typed' in o) {
    const ctor = TYPED[o['$typed'] as TypedName];
    if (!ctor || !Array.isArray(o['data'])) throw new TypeError(`bad typed array entry ${JSON.stringify(o['$typed'])}`);
    return ctor.from((o['data'] as unknown[]).map(decodeNumber));
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) out[k] = decodeExact(v);
  return out;
}

// ------------------------------------------------------------------ code fingerprint

const LIB_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
/** lib/ folders whose code does not compute stage results (display, training of the organism). */
const NOT_COMPUTING = new Set(['notebook', 'organism']);

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (!(dir === LIB_DIR && NOT_COMPUTING.has(name))) out.push(...sourceFiles(p));
    } else if (name.endsWith('.ts') || name.endsWith('.c')) out.push(p);
  }
  return out;
}

function packageVersion(name: string): string {
  try {
    const pkg = join(LIB_DIR, '..', 'node_modules', ...name.split('/'), 'package.json');
    return (JSON.parse(readFileSync(pkg, 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'absent';
  }
}

let fingerprint: string | null = null;

/**
 * sha256 over the lib's computing sources and the TF.js versions: any edit to code that can
 * change a result gives new keys, so a cache never serves what older code computed.
 */
export function codeFingerprint(): string {
  if (fingerprint === null) {
    const h = sourceFiles(LIB_DIR).map((f) => `${relative(LIB_DIR, f)}\n${sha256Hex(readFileSync(f))}`);
    for (const p of ['@tensorflow/tfjs-core', '@tensorflow/tfjs-backend-wasm', '@tensorflow/tfjs-backend-cpu']) h.push(`${p}@${packageVersion(p)}`);
    fingerprint = sha256Hex(h.join('\n'));
  }
  return fingerprint;
}

// ------------------------------------------------------------------ the cache

export interface StageEntry {
  schema: typeof STAGE_SCHEMA;
  stage: string;
  key: unknown;
  createdAt: string;
  value: unknown;
}

export class StageCache {
  /**
   * @param dir folder of the entries
   * @param base what every key holds (model identity, data hash, backend, code fingerprint)
   */
  constructor(
    readonly dir: string,
    readonly base: Record<string, unknown>,
    private readonly log: (line: string) => void = () => {},
  ) {}

  /** The full key of a stage: the base plus the stage's own settings. */
  key(stage: string, settings: unknown): Record<string, unknown> {
    return { ...this.base, stage, settings };
  }

  /** File (or folder, for stages stored as folders) of a key. */
  path(stage: string, settings: unknown, ext = '.json'): string {
    return join(this.dir, `${stage}-${keyHash(this.key(stage, settings)).slice(0, 16)}${ext}`);
  }

  /**
   * The stored value for (stage, settings), or undefined when there is none or it is unusable
   * (reported by file name; the caller recomputes and overwrites it).
   */
  read<T>(stage: string, settings: unknown): { found: true; value: T } | { found: false } {
    const file = this.path(stage, settings);
    if (!existsSync(file)) return { found: false };
    let problem: string;
    try {
      const entry = readSealedJson(file) as unknown as StageEntry;
      if (entry?.schema !== STAGE_SCHEMA) problem = `field "schema" is ${JSON.stringify(entry?.schema)}, expected "${STAGE_SCHEMA}"`;
      else if (!isDeepStrictEqual(JSON.parse(canonicalJson(entry.key)), JSON.parse(canonicalJson(this.key(stage, settings))))) problem = 'its key does not match the settings asked for';
      else return { found: true, value: decodeExact(entry.value) as T };
    } catch (e) {
      problem = `${(e as Error).name}: ${(e as Error).message}`;
    }
    this.log(`[rsn] ${stage}: cache entry ${file} is unusable (${problem}); recomputing`);
    return { found: false };
  }

  write(stage: string, settings: unknown, value: unknown): string {
    const file = this.path(stage, settings);
    const entry: StageEntry = { schema: STAGE_SCHEMA, stage, key: this.key(stage, settings), createdAt: new Date().toISOString(), value: encodeExact(value) };
    writeFileAtomic(file, JSON.stringify(seal(entry)));
    return file;
  }

  /** The cached value, or `compute()` stored and returned. */
  async get<T>(stage: string, settings: unknown, compute: () => Promise<T>): Promise<T> {
    const hit = this.read<T>(stage, settings);
    if (hit.found) {
      this.log(`[rsn] ${stage}: cached (${this.path(stage, settings)})`);
      return hit.value;
    }
    const t0 = performance.now();
    const value = await compute();
    const file = this.write(stage, settings, value);
    this.log(`[rsn] ${stage}: computed in ${((performance.now() - t0) / 1000).toFixed(1)} s (${file})`);
    return value;
  }
}
