/**
 * Reads the project's converted-model format (weights-converter/README.md): a TF.js weights
 * manifest in model.json whose groups are [embeddings/norm/head] and then one group per decoder
 * layer, so one layer can be read without touching the others.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, type Stats, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { CheckpointError, ConfigError } from '../errors.ts';
import { HALF_TO_FLOAT32, halfToFloat } from '../half.ts';
import { canonicalJson, sha256Hex } from '../data/io.ts';
import { unseal } from '../data/sealed-json.ts';
import { type FileDigest, verifiedDigests } from './file-digests.ts';

export interface ManifestWeight {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: string; original_dtype?: string };
}

export interface ManifestGroup {
  paths: string[];
  weights: ManifestWeight[];
}

export interface ModelManifest {
  format: string;
  formatVersion: number;
  storageDtype: 'float32' | 'float16';
  weightsManifest: ManifestGroup[];
  /** formatVersion 2: size and sha256 of every file the converter wrote (shards, config and tokenizer files). */
  files?: Record<string, FileDigest>;
  [extra: string]: unknown;
}

export const MODEL_FORMAT = 'rsn-llama-tfjs';
/** The model.json format versions this reader understands (weights-converter/README.md). */
export const SUPPORTED_FORMAT_VERSIONS: readonly number[] = [1, 2];

/** Files next to the weights that change what a model computes or how its prompts are tokenized. */
export const SIDE_FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json'] as const;

interface WeightLocation {
  name: string;
  group: number;
  /** Byte offset inside the group's concatenated shards. */
  offset: number;
  byteLength: number;
  shape: number[];
  float16: boolean;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** JSON.stringify, shortened so a huge wrong value cannot flood the message. */
function show(v: unknown): string {
  const s = v === undefined ? 'nothing' : JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/**
 * Checks model.json against the format in weights-converter/README.md, so a hand-edited or
 * damaged manifest fails here with the field that is wrong instead of as a TypeError deep in
 * the loader. `file` is the path used in messages.
 */
export function parseModelManifest(raw: unknown, file: string): ModelManifest {
  const fail = (field: string, what: string, found: unknown): never => {
    throw new ConfigError(`${file}: field "${field}" must be ${what}, found ${show(found)}`, file, field);
  };
  if (!isObject(raw)) throw new ConfigError(`${file}: expected a JSON object, found ${show(raw)}`, file);
  if (raw['format'] !== MODEL_FORMAT) fail('format', JSON.stringify(MODEL_FORMAT), raw['format']);
  const version = raw['formatVersion'];
  if (typeof version !== 'number' || !SUPPORTED_FORMAT_VERSIONS.includes(version)) {
    throw new ConfigError(
      `${file}: formatVersion ${version === undefined ? 'is missing' : `${show(version)} is not supported`}; this reader supports formatVersion ${SUPPORTED_FORMAT_VERSIONS.join(', ')} (re-convert the checkpoint with this project's \`rsn convert\`)`,
      file,
      'formatVersion',
    );
  }
  const storage = raw['storageDtype'];
  if (storage !== 'float32' && storage !== 'float16') fail('storageDtype', '"float32" or "float16"', storage);
  for (const field of ['convertedAt', 'converter'] as const) {
    if (raw[field] !== undefined && typeof raw[field] !== 'string') fail(field, 'a string', raw[field]);
  }
  const source = raw['source'];
  if (source !== undefined) {
    if (!isObject(source)) fail('source', 'an object', source);
    const src = source as Json;
    if (src['dir'] !== undefined && typeof src['dir'] !== 'string') fail('source.dir', 'a string', src['dir']);
    for (const field of ['files', 'dtypes'] as const) {
      const v = src[field];
      if (v === undefined) continue;
      if (!Array.isArray(v)) fail(`source.${field}`, 'an array of strings', v);
      (v as unknown[]).forEach((x, i) => typeof x === 'string' || fail(`source.${field}[${i}]`, 'a string', x));
    }
  }
  const files = raw['files'];
  if (version >= 2 || files !== undefined) {
    if (!isObject(files)) fail('files', 'an object naming the size and sha256 of every converted file', files);
    for (const [name, d] of Object.entries(files as Json)) {
      if (name.includes('/') || name.includes('\\') || name.startsWith('.')) fail(`files.${name}`, 'a plain file name inside the model directory', name);
      if (!isObject(d) || !Number.isSafeInteger(d['size']) || typeof d['sha256'] !== 'string' || !/^[0-9a-f]{64}$/.test(d['sha256'])) fail(`files.${name}`, '{"size": bytes, "sha256": 64 hex digits}', d);
    }
  }
  const groups = raw['weightsManifest'];
  if (!Array.isArray(groups) || groups.length === 0) fail('weightsManifest', 'a non-empty array of weight groups', groups);
  const names = new Set<string>();
  const paths = new Set<string>();
  (groups as unknown[]).forEach((g, gi) => {
    const at = `weightsManifest[${gi}]`;
    if (!isObject(g)) fail(at, 'an object with "paths" and "weights"', g);
    const group = g as Json;
    const ps = group['paths'];
    if (!Array.isArray(ps) || ps.length === 0) fail(`${at}.paths`, 'a non-empty array of shard file names', ps);
    (ps as unknown[]).forEach((p, pi) => {
      const f = `${at}.paths[${pi}]`;
      if (typeof p !== 'string' || p === '') fail(f, 'a shard file name (string)', p);
      const name = p as string;
      // A shard path outside the model directory would let a model.json read any file.
      if (name.includes('/') || name.includes('\\') || name.startsWith('.')) fail(f, 'a plain file name inside the model directory', name);
      if (paths.has(name)) fail(f, 'a shard no other group lists', name);
      if (isObject(files) && !(name in (files as Json))) fail(f, 'a shard whose digest "files" records', name);
      paths.add(name);
    });
    const ws = group['weights'];
    if (!Array.isArray(ws)) fail(`${at}.weights`, 'an array of weight entries', ws);
    (ws as unknown[]).forEach((w, wi) => {
      const f = `${at}.weights[${wi}]`;
      if (!isObject(w)) fail(f, 'an object with "name", "shape" and "dtype"', w);
      const e = w as Json;
      if (typeof e['name'] !== 'string' || e['name'] === '') fail(`${f}.name`, 'a non-empty string', e['name']);
      const name = e['name'] as string;
      if (names.has(name)) fail(`${f}.name`, 'a weight name listed once', name);
      names.add(name);
      const shape = e['shape'];
      if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
        fail(`${f}.shape`, 'an array of non-negative integers', shape);
      }
      const count = (shape as number[]).reduce((a, b) => a * b, 1);
      if (!Number.isSafeInteger(count * 4)) fail(`${f}.shape`, 'a shape whose size fits in memory', shape);
      if (e['dtype'] !== 'float32') fail(`${f}.dtype`, '"float32" (float16 storage is a quantization of float32)', e['dtype']);
      const q = e['quantization'];
      if (storage === 'float16') {
        if (!isObject(q) || q['dtype'] !== 'float16') fail(`${f}.quantization`, '{"dtype": "float16", ...} (storageDtype is "float16")', q);
      } else if (q !== undefined) {
        fail(`${f}.quantization`, 'absent (storageDtype is "float32")', q);
      }
    });
  });
  return raw as ModelManifest;
}

/**
 * Arrays returned by WeightStore.read / readAsync, already checked for non-finite values, so
 * building device tensors from them (weight-source.ts) need not scan them a second time.
 */
export const finiteChecked = new WeakSet<Float32Array | Uint16Array>();

export class WeightStore {
  readonly manifest: ModelManifest;
  private readonly locations = new Map<string, WeightLocation>();
  /** Per group: shard file paths and their sizes, for offset → file lookups. */
  private readonly shards: { path: string; size: number }[][] = [];

  /** Size and sha256 of every file of the model (shards, config and tokenizer files), checked against model.json's record. */
  readonly digests: Record<string, FileDigest>;
  /** sha256 over the manifest and every file's digest: changes with any weight, config or tokenizer byte. */
  readonly contentSha256: string;

  constructor(readonly dir: string, opts: { verify?: 'stat' | 'full' } = {}) {
    const file = join(dir, 'model.json');
    if (!existsSync(file)) {
      throw new CheckpointError(
        `${dir}: no model.json; this is not a converted model directory (convert a Hugging Face checkpoint with \`rsn convert <hf-dir> <out-dir>\`)`,
        file,
      );
    }
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new CheckpointError(`${file}: not valid JSON (${(e as Error).message})`, file);
    }
    // formatVersion 2 is sealed: an edited manifest (two entries swapped) is refused, not loaded.
    if (isObject(raw) && typeof raw['formatVersion'] === 'number' && raw['formatVersion'] >= 2) raw = unseal(raw, file);
    this.manifest = parseModelManifest(raw, file);
    this.manifest.weightsManifest.forEach((g, gi) => {
      const files = g.paths.map((p) => {
        const path = join(dir, p);
        let st: Stats;
        try {
          st = statSync(path);
        } catch {
          throw new CheckpointError(`${path}: shard ${p} of weight group ${gi} (listed in ${file}) is missing`, path);
        }
        if (!st.isFile()) throw new CheckpointError(`${path}: shard ${p} of weight group ${gi} (listed in ${file}) is not a regular file`, path);
        return { path, size: st.size };
      });
      this.shards.push(files);
      let offset = 0;
      for (const w of g.weights) {
        const float16 = w.quantization?.dtype === 'float16';
        const byteLength = w.shape.reduce((a, b) => a * b, 1) * (float16 ? 2 : 4);
        this.locations.set(w.name, { name: w.name, group: gi, offset, byteLength, shape: w.shape, float16 });
        offset += byteLength;
      }
      checkShardSizes(file, gi, g, files, offset);
    });
    const recorded = this.manifest.files ?? null;
    const shardNames = this.manifest.weightsManifest.flatMap((g) => g.paths);
    // Recorded side files must be there and unchanged; one added later (a tokenizer) is hashed into the identity too.
    const recordedSide = recorded ? Object.keys(recorded).filter((n) => !shardNames.includes(n)) : [];
    const sideNames = [...new Set([...recordedSide, ...SIDE_FILES.filter((n) => existsSync(join(dir, n)))])];
    for (const n of sideNames) {
      const path = join(dir, n);
      if (!existsSync(path)) throw new CheckpointError(`${path}: missing, but ${file} records it; convert the checkpoint again`, path);
      if (!statSync(path).isFile()) throw new CheckpointError(`${path}: not a regular file`, path);
    }
    this.digests = verifiedDigests(dir, [...shardNames, ...sideNames].sort(), recorded, { full: opts.verify === 'full' });
    const { weightsManifest, source, storageDtype } = this.manifest;
    this.contentSha256 = sha256Hex(canonicalJson({ weightsManifest, source: source ?? null, storageDtype, files: this.digests }));
  }

  has(name: string): boolean {
    return this.locations.has(name);
  }

  shape(name: string): number[] {
    return this.location(name).shape;
  }

  get storageDtype(): 'float32' | 'float16' {
    return this.manifest.storageDtype;
  }

  /** Bytes each weight takes in float32 on the device, by name. */
  deviceBytes(name: string): number {
    return this.location(name).shape.reduce((a, b) => a * b, 1) * 4;
  }

  private location(name: string): WeightLocation {
    const loc = this.locations.get(name);
    if (!loc) throw new CheckpointError(`${this.dir}/model.json: weight ${name} not found`, join(this.dir, 'model.json'), name);
    return loc;
  }

  /** Read one weight as float32 (float16 storage is widened here); NaN or ±Inf anywhere is a CheckpointError. */
  read(name: string): Float32Array {
    const loc = this.location(name);
    return this.decode(loc, this.readBytes(loc)) as Float32Array;
  }

  /**
   * Like read(), but float16 storage comes back as its raw half bits (checked for NaN/±Inf),
   * for a device that widens them itself: half the host memory and upload.
   */
  readStored(name: string): Float32Array | Uint16Array {
    const loc = this.location(name);
    return this.decode(loc, this.readBytes(loc), true);
  }

  /** Like readStored(), but the file reads run off the main thread (used to prefetch the next layer). */
  async readAsync(name: string, keepHalf = false): Promise<Float32Array | Uint16Array> {
    const loc = this.location(name);
    const bytes = new Uint8Array(new ArrayBuffer(loc.byteLength));
    for (const { shard, shardOffset, at, n } of this.pieces(loc)) {
      const fh = await open(shard.path, 'r');
      try {
        let done = 0;
        while (done < n) {
          const { bytesRead } = await fh.read(bytes, at + done, n - done, shardOffset + done);
          if (bytesRead === 0) throw this.shortRead(shard.path, loc);
          done += bytesRead;
        }
      } finally {
        await fh.close();
      }
    }
    return this.decode(loc, bytes, keepHalf);
  }

  /** The byte ranges of the group's shards that hold `loc`, in order. */
  private *pieces(loc: WeightLocation): Generator<{ shard: { path: string; size: number }; shardOffset: number; at: number; n: number }> {
    let groupOffset = loc.offset;
    let written = 0;
    for (const shard of this.shards[loc.group]!) {
      if (written === loc.byteLength) return;
      if (groupOffset >= shard.size) {
        groupOffset -= shard.size;
        continue;
      }
      const n = Math.min(loc.byteLength - written, shard.size - groupOffset);
      yield { shard, shardOffset: groupOffset, at: written, n };
      written += n;
      groupOffset = 0;
    }
  }

  /** The shard shrank after the constructor measured it. */
  private shortRead(path: string, loc: WeightLocation): CheckpointError {
    return new CheckpointError(`${path}: unexpected end of file while reading weight ${loc.name} (the shard is shorter than ${this.dir}/model.json says)`, path, loc.name);
  }

  /**
   * Widens float16 and rejects non-finite values: one bad weight would otherwise turn every
   * logit into NaN, which JSON prints as null with exit status 0. float16 is checked on its
   * exponent bits (all ones = NaN or ±Inf) in the widening pass, at no measurable cost;
   * float32 by one reduction over the tensor (see allFinite).
   */
  private decode(loc: WeightLocation, bytes: Uint8Array, keepHalf = false): Float32Array | Uint16Array {
    if (!loc.float16) {
      const out = new Float32Array(bytes.buffer, bytes.byteOffset, loc.byteLength / 4);
      if (!allFinite(out)) this.nonFinite(loc, out, out.findIndex((x) => !Number.isFinite(x)), 4);
      finiteChecked.add(out);
      return out;
    }
    const half = new Uint16Array(bytes.buffer, bytes.byteOffset, loc.byteLength / 2);
    if (keepHalf) {
      for (let i = 0; i < half.length; i++) if ((half[i]! & 0x7c00) === 0x7c00) this.nonFinite(loc, Float32Array.from(half.subarray(i), halfToFloat), 0, 2, i);
      finiteChecked.add(half);
      return half;
    }
    const out = new Float32Array(half.length);
    for (let i = 0; i < half.length; i++) {
      const h = half[i]!;
      if ((h & 0x7c00) === 0x7c00) this.nonFinite(loc, Float32Array.from(half.subarray(i), halfToFloat), 0, 2, i);
      out[i] = HALF_TO_FLOAT32[h]!;
    }
    finiteChecked.add(out);
    return out;
  }

  /** Throws for the non-finite value at `values[i]` (flat index `base + i` of the weight), counting the rest. */
  private nonFinite(loc: WeightLocation, values: Float32Array, i: number, bytesPerValue: number, base = 0): never {
    let count = 0;
    for (let j = i; j < values.length; j++) if (!Number.isFinite(values[j]!)) count++;
    const index = base + i;
    const byte = loc.offset + index * bytesPerValue;
    const shard = this.shardAt(loc.group, byte);
    throw new CheckpointError(
      `${shard.path}: weight ${loc.name} holds ${count} non-finite value${count === 1 ? '' : 's'} (NaN or ±Inf), the first ${values[i]} at flat index ${index} of shape [${loc.shape}]; the converted model is corrupt (re-convert it; the converter refuses non-finite source values)`,
      shard.path,
      loc.name,
    );
  }

  private shardAt(group: number, groupOffset: number): { path: string; size: number } {
    const shards = this.shards[group]!;
    for (const s of shards) {
      if (groupOffset < s.size) return s;
      groupOffset -= s.size;
    }
    return shards[shards.length - 1]!;
  }

  private readBytes(loc: WeightLocation): Uint8Array {
    // Fresh, aligned buffer: Float32Array views need 4-byte alignment.
    const out = new Uint8Array(new ArrayBuffer(loc.byteLength));
    for (const { shard, shardOffset, at, n } of this.pieces(loc)) {
      const fd = openSync(shard.path, 'r');
      try {
        let done = 0;
        while (done < n) {
          const r = readSync(fd, out, at + done, n - done, shardOffset + done);
          if (r === 0) throw this.shortRead(shard.path, loc);
          done += r;
        }
      } finally {
        closeSync(fd);
      }
    }
    return out;
  }
}

/**
 * A group's shards must hold exactly the bytes its weights list. The converter fills every
 * shard but the last to the same size; with three or more shards that size is the common one,
 * which names the shard that is short (or long) and the first weight it spoils. With two
 * shards either could be the damaged one, so the message lists both.
 */
function checkShardSizes(file: string, gi: number, g: ManifestGroup, files: { path: string; size: number }[], listed: number): void {
  const held = files.reduce((a, f) => a + f.size, 0);
  if (held === listed) return;
  const n = files.length;
  let bad = -1;
  let expected: number[] = [];
  if (n === 1) {
    bad = 0;
    expected = [listed];
  } else if (n >= 3) {
    const counts = new Map<number, number>();
    for (const f of files.slice(0, n - 1)) counts.set(f.size, (counts.get(f.size) ?? 0) + 1);
    const full = [...counts].sort((x, y) => y[1] - x[1] || y[0] - x[0])[0]![0];
    expected = files.map((_, i) => (i < n - 1 ? full : listed - full * (n - 1)));
    if (expected[n - 1]! > 0 && expected[n - 1]! <= full) bad = files.findIndex((f, i) => f.size !== expected[i]);
  }
  // Bytes after the bad shard's real end are shifted, so the first weight past it is the first wrong one.
  const intact = bad >= 0 ? expected.slice(0, bad).reduce((a, b) => a + b, 0) + Math.min(files[bad]!.size, expected[bad]!) : Math.min(held, listed);
  let cut: string | undefined;
  let offset = 0;
  for (const w of g.weights) {
    const end = offset + w.shape.reduce((a, b) => a * b, 1) * (w.quantization?.dtype === 'float16' ? 2 : 4);
    if (end > intact) {
      cut = w.name;
      break;
    }
    offset = end;
  }
  const spoiled = cut ? `; weight ${cut} is incomplete` : '';
  if (bad >= 0) {
    const shard = files[bad]!;
    const what = shard.size < expected[bad]! ? 'shorter' : 'longer';
    throw new CheckpointError(
      `${shard.path}: shard of weight group ${gi} is ${what} than ${file} says: it has ${shard.size} bytes, expected ${expected[bad]}${spoiled}`,
      shard.path,
      cut,
    );
  }
  const list = files.map((f) => `${f.path} (${f.size} bytes)`).join(', ');
  throw new CheckpointError(
    `${file}: weight group ${gi} takes ${listed} bytes but its shards hold ${held} bytes (${held < listed ? 'truncated' : 'mismatched'} shards: ${list})${spoiled}`,
    files[n - 1]!.path,
    cut,
  );
}

/**
 * True when every value is finite. x·0 is 0 for finite x and NaN for NaN or ±Inf, so the sum
 * is 0 exactly when all are finite; four accumulators let the loop pipeline (0.7 ns per value
 * here, half the time of a per-value branch on the exponent bits).
 */
export function allFinite(x: Float32Array): boolean {
  const m = x.length & ~3;
  let a0 = 0;
  let a1 = 0;
  let a2 = 0;
  let a3 = 0;
  for (let i = 0; i < m; i += 4) {
    a0 += x[i]! * 0;
    a1 += x[i + 1]! * 0;
    a2 += x[i + 2]! * 0;
    a3 += x[i + 3]! * 0;
  }
  for (let i = m; i < x.length; i++) a0 += x[i]! * 0;
  return a0 + a1 + a2 + a3 === 0;
}
