/**
 * Hugging Face Llama, Mistral, Qwen2 or Gemma checkpoint (safetensors, single file or sharded; F32/F16/BF16) → the
 * project's converted-model format (TF.js weights manifest + binary shards, one weight group per
 * decoder layer). See README.md in this folder for the format.
 *
 * Two phases:
 *  1. plan: read config.json and every safetensors header, check them against the tensors a
 *     checkpoint of this config's family must have (names, shapes, dtypes, byte layout) — no data read;
 *  2. write: stream each tensor in fixed-size chunks (positional reads), convert, check values,
 *     append to the group's shard files in a temp dir, then rename the temp dir into place.
 * Memory use is bounded by the chunk buffers (~32 MiB), independent of tensor and model size.
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { lstat, mkdir, open, readdir, readFile, readlink, realpath, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { endianness, hostname } from 'node:os';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { CheckpointError } from '../lib/errors.ts';
import { seal } from '../lib/data/sealed-json.ts';
import { expectedTensors, isIgnorableTensor, readLlamaConfig } from '../lib/model/config.ts';
import type { LlamaConfig } from '../lib/model/config.ts';
import { SIDE_FILES } from '../lib/model/weights.ts';
import { familyName, MODEL_FAMILIES } from '../lib/model/family.ts';
import { convertValues, HALF_MAX, newStats } from './numeric.ts';
import type { ValueStats } from './numeric.ts';
import { findDuplicateKey, isSupportedDtype, readSafetensorsHeader, unsupportedDtypeMessage } from '../lib/safetensors.ts';
import type { SafetensorsEntry, SafetensorsHeader, SourceDtype } from '../lib/safetensors.ts';

export type StorageDtype = 'float32' | 'float16';

export interface ConvertProgress {
  bytesDone: number;
  bytesTotal: number;
  tensor: string;
}

export interface ConvertOptions {
  inputDir: string;
  outputDir: string;
  /** Storage dtype of the weight shards. Default 'float32'. */
  dtype?: StorageDtype;
  /** Replace an existing non-empty outputDir (only after the new one is complete). */
  force?: boolean;
  /** Maximum bytes per shard file. Default 64 MiB. */
  shardBytes?: number;
  /** Called after every chunk; bytes are source tensor bytes. */
  onProgress?: (p: ConvertProgress) => void;
  /** Abort the conversion (the temp dir is removed; nothing is left behind). */
  signal?: AbortSignal;
  /** Values converted per read/write chunk (default 4 Mi); small values exercise chunk edges in tests. */
  chunkElements?: number;
  /** Notes that are not errors, e.g. a stale temp dir of a killed conversion that was removed. */
  onLog?: (message: string) => void;
}

export interface ConvertReport {
  outputDir: string;
  tensors: number;
  /** Source tensor bytes read (headers not counted). */
  bytesRead: number;
  /** Bytes written into the output dir (shards, model.json, copied files). */
  bytesWritten: number;
  seconds: number;
  storageDtype: StorageDtype;
  /** Distinct source dtypes of the converted tensors, e.g. ["BF16"]. */
  sourceDtypes: string[];
  /** Highest resident set size sampled during the conversion (process-wide). */
  peakRssBytes: number;
  /** Leftovers of killed conversions to the same output that were removed (or restored) first. */
  staleDirs: string[];
}

/** One entry of a TF.js weights manifest group. */
export interface ManifestWeight {
  name: string;
  shape: number[];
  dtype: 'float32';
  quantization?: { dtype: 'float16'; original_dtype: 'float32' };
}

export interface ManifestGroup {
  paths: string[];
  weights: ManifestWeight[];
}

/** The contents of `<out>/model.json`. */
export interface ConvertedModelJson {
  format: 'rsn-llama-tfjs';
  formatVersion: 2;
  storageDtype: StorageDtype;
  source: { dir: string; files: string[]; dtypes: string[] };
  convertedAt: string;
  converter: string;
  weightsManifest: ManifestGroup[];
  /** Size and sha256 of every file written next to model.json: a load checks them. */
  files: Record<string, { size: number; sha256: string }>;
}

export const MODEL_FORMAT = 'rsn-llama-tfjs';
/** 2: model.json records every file's digest and carries a checksum of its own content. */
export const MODEL_FORMAT_VERSION = 2;
export const CONVERTER_ID = 'rsn-weights-converter 1';
export const DEFAULT_SHARD_BYTES = 64 * 1024 * 1024;
/** Files copied verbatim when present (config.json is required). */
export const COPIED_FILES = SIDE_FILES;
const SINGLE_FILE = 'model.safetensors';
const INDEX_FILE = 'model.safetensors.index.json';
/** Elements converted per chunk: 4 Mi (16 MiB of float32). */
const CHUNK_ELEMS = 4 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Phase 1: plan

interface PlannedTensor {
  name: string;
  shape: number[];
  numel: number;
  dtype: SourceDtype;
  /** Absolute path of the source file and absolute byte range. */
  file: string;
  begin: number;
  end: number;
}

export interface ConversionPlan {
  inputDir: string;
  config: LlamaConfig;
  /** Source safetensors files, relative to inputDir, in the order they were read. */
  files: string[];
  /** Groups of tensors in output order. */
  groups: PlannedTensor[][];
  /** Tensors present in the checkpoint but not converted (tied lm_head, rotary inv_freq). */
  skipped: string[];
}

function listNames(names: string[], max = 5): string {
  const shown = names.slice(0, max).join(', ');
  return names.length > max ? `${shown} and ${names.length - max} more` : shown;
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

function isInside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}

/**
 * Check that `rel` (a weights file named by the checkpoint) stays inside the checkpoint
 * directory, also after following symlinks: a checkpoint must not make us read files elsewhere.
 * Calls `refuse(why)` for an escape and `missing()` when the file does not exist; both throw.
 */
async function checkInsideInput(inputDir: string, realDir: string, rel: string, refuse: (why: string) => never, missing: () => never): Promise<void> {
  if (isAbsolute(rel) || /^[a-zA-Z]:/.test(rel)) refuse('is an absolute path');
  if (rel.split(/[\\/]/).includes('..')) refuse('escapes the checkpoint directory with ".."');
  const abs = resolve(inputDir, rel);
  if (!isInside(abs, inputDir)) refuse('escapes the checkpoint directory');
  let real: string;
  try {
    real = await realpath(abs);
  } catch {
    missing();
  }
  if (!isInside(real, realDir)) refuse(`is a symlink resolving to ${real}, outside`);
}

/** Parse model.safetensors.index.json and resolve its shard files safely. */
async function readIndex(inputDir: string): Promise<{ files: string[]; weightMap: Map<string, string> }> {
  const indexPath = join(inputDir, INDEX_FILE);
  let raw: unknown;
  let text: string;
  try {
    text = await readFile(indexPath, 'utf8');
    raw = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`${indexPath}: not valid JSON (${(e as Error).message})`, indexPath);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new CheckpointError(`${indexPath}: expected a JSON object with a "weight_map"`, indexPath);
  }
  const wm = (raw as Record<string, unknown>)['weight_map'];
  if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) {
    throw new CheckpointError(`${indexPath}: "weight_map" is missing or not an object (expected {tensor name: shard file})`, indexPath);
  }
  const dup = findDuplicateKey(text);
  if (dup) {
    const inMap = dup.path.length === 1 && dup.path[0] === 'weight_map';
    throw new CheckpointError(
      inMap
        ? `${indexPath}: weight_map lists tensor ${dup.key} twice; JSON keeps only one of the two entries, so the index is ambiguous`
        : `${indexPath}: duplicate key ${JSON.stringify(dup.key)}${dup.path.length ? ` in ${dup.path.join('.')}` : ' at the top level'}`,
      indexPath,
      inMap ? dup.key : undefined,
    );
  }
  const weightMap = new Map<string, string>();
  for (const [tensor, file] of Object.entries(wm as Record<string, unknown>)) {
    if (typeof file !== 'string' || file === '') {
      throw new CheckpointError(`${indexPath}: weight_map entry for tensor ${tensor} must be a shard file name, found ${JSON.stringify(file)}`, indexPath, tensor);
    }
    weightMap.set(tensor, file);
  }
  if (weightMap.size === 0) throw new CheckpointError(`${indexPath}: "weight_map" is empty`, indexPath);

  const realDir = await realpath(inputDir);
  const files = [...new Set(weightMap.values())].sort();
  for (const f of files) {
    const firstTensor = [...weightMap].find(([, v]) => v === f)?.[0];
    await checkInsideInput(inputDir, realDir, f, (why) => {
      throw new CheckpointError(
        `${indexPath}: shard file ${JSON.stringify(f)} (for tensor ${firstTensor}) ${why}; shard files must lie inside the checkpoint directory ${inputDir}`,
        indexPath,
        firstTensor,
      );
    }, () => {
      const count = [...weightMap.values()].filter((v) => v === f).length;
      throw new CheckpointError(
        `${indexPath}: shard file ${f} is listed for ${count} tensor(s) (e.g. ${firstTensor}) but is missing in ${inputDir}`,
        join(inputDir, f),
        firstTensor,
      );
    });
  }
  return { files, weightMap };
}

/** Read config + all headers and check them; reads no tensor data. */
export async function planConversion(inputDirArg: string): Promise<ConversionPlan> {
  const inputDir = resolve(inputDirArg);
  let st;
  try {
    st = await stat(inputDir);
  } catch {
    throw new CheckpointError(`input directory ${inputDir} does not exist`, inputDir);
  }
  if (!st.isDirectory()) throw new CheckpointError(`input ${inputDir} is not a directory`, inputDir);
  const configPath = join(inputDir, 'config.json');
  if (!(await exists(configPath))) {
    throw new CheckpointError(
      `${inputDir}: no config.json; expected a Hugging Face checkpoint directory of a supported family (${MODEL_FAMILIES.join(', ')}: config.json + ${SINGLE_FILE} or ${INDEX_FILE} with its shards)`,
      configPath,
    );
  }
  const config = readLlamaConfig(configPath);

  // Which files hold the weights (as transformers does: the single file wins over an index).
  let files: string[];
  let weightMap: Map<string, string> | null = null;
  if (await exists(join(inputDir, SINGLE_FILE))) {
    const single = join(inputDir, SINGLE_FILE);
    await checkInsideInput(inputDir, await realpath(inputDir), SINGLE_FILE, (why) => {
      throw new CheckpointError(`${single} ${why}; weights files must lie inside the checkpoint directory ${inputDir}`, single);
    }, () => {
      throw new CheckpointError(`${single} disappeared while the checkpoint was being read`, single);
    });
    files = [SINGLE_FILE];
  } else if (await exists(join(inputDir, INDEX_FILE))) {
    const idx = await readIndex(inputDir);
    files = idx.files;
    weightMap = idx.weightMap;
  } else {
    throw new CheckpointError(
      `${inputDir}: no weights found; expected ${SINGLE_FILE}, or ${INDEX_FILE} plus the shard files it lists`,
      inputDir,
    );
  }

  // All headers first (cheap), then cross-checks.
  const headers: SafetensorsHeader[] = [];
  for (const f of files) headers.push(await readSafetensorsHeader(join(inputDir, f)));
  const found = new Map<string, { entry: SafetensorsEntry; file: string; rel: string }>();
  headers.forEach((h, i) => {
    for (const entry of h.entries) {
      const prev = found.get(entry.name);
      if (prev) {
        throw new CheckpointError(
          `tensor ${entry.name} appears in two shards: ${prev.file} and ${h.file}; a checkpoint must store each tensor once`,
          h.file,
          entry.name,
        );
      }
      found.set(entry.name, { entry, file: h.file, rel: files[i] });
    }
  });
  if (weightMap) {
    for (const [tensor, f] of weightMap) {
      const where = found.get(tensor);
      if (!where || where.rel !== f) {
        throw new CheckpointError(
          `${join(inputDir, INDEX_FILE)}: weight_map puts tensor ${tensor} in ${f}, but ${where ? `it is in ${where.rel}` : `no shard contains it`}`,
          join(inputDir, f),
          tensor,
        );
      }
    }
    // The reverse direction too: a tensor the index does not list is one that tools reading the
    // index would never load, so the checkpoint means different things to different readers.
    for (const [tensor, { file, rel }] of found) {
      if (!weightMap.has(tensor)) {
        throw new CheckpointError(
          `${join(inputDir, INDEX_FILE)}: weight_map omits tensor ${tensor}, which shard ${rel} holds; the index must list every tensor of its shards`,
          file,
          tensor,
        );
      }
    }
  }

  const expected = expectedTensors(config);
  const expectedByName = new Map(expected.map((s) => [s.name, s]));
  const skipped: string[] = [];
  for (const [name, { entry, file }] of found) {
    const spec = expectedByName.get(name);
    if (!spec) {
      if (isIgnorableTensor(name) || (name === 'lm_head.weight' && config.tieWordEmbeddings)) {
        skipped.push(name);
        continue;
      }
      throw new CheckpointError(
        `${file}: unexpected tensor ${name}; it is not part of a ${familyName(config.family)} checkpoint with this config.json (${config.numLayers} layers, tie_word_embeddings=${config.tieWordEmbeddings}${config.attentionBias ? ', q/k/v biases' : ''}). Is config.json the one that belongs to these weights?`,
        file,
        name,
      );
    }
    if (!isSupportedDtype(entry.dtype)) throw new CheckpointError(unsupportedDtypeMessage(entry.dtype, name, file), file, name);
    const same = spec.shape.length === entry.shape.length && spec.shape.every((d, i) => d === entry.shape[i]);
    if (!same) {
      throw new CheckpointError(
        `${file}: tensor ${name} has shape [${entry.shape.join(', ')}], expected [${spec.shape.join(', ')}] from config.json`,
        file,
        name,
      );
    }
  }
  const missing = expected.filter((s) => !found.has(s.name)).map((s) => s.name);
  if (missing.length > 0) {
    throw new CheckpointError(
      `${inputDir}: missing tensor${missing.length > 1 ? 's' : ''} ${listNames(missing)} (searched ${files.join(', ')}); config.json (model_type "${config.family}"${config.attentionBias ? ', whose q/k/v projections have biases' : ''}) says there should be ${expected.length} tensors`,
      join(inputDir, files[0]),
      missing[0],
    );
  }

  const planned = (name: string): PlannedTensor => {
    const { entry, file } = found.get(name)!; // presence checked above
    return { name, shape: entry.shape, numel: entry.numel, dtype: entry.dtype as SourceDtype, file, begin: entry.begin, end: entry.end };
  };
  const groups: PlannedTensor[][] = [];
  const g0 = ['model.embed_tokens.weight', 'model.norm.weight'];
  if (!config.tieWordEmbeddings) g0.push('lm_head.weight');
  groups.push(g0.map(planned));
  for (let l = 0; l < config.numLayers; l++) {
    const prefix = `model.layers.${l}.`;
    groups.push(expected.filter((s) => s.name.startsWith(prefix)).map((s) => planned(s.name)));
  }
  return { inputDir, config, files, groups, skipped };
}

// ---------------------------------------------------------------------------------------------
// Phase 2: write

async function writeAll(fh: FileHandle, buf: Uint8Array): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off);
    off += bytesWritten;
  }
}

async function readExactly(fh: FileHandle, buf: Uint8Array, position: number, file: string, tensor: string): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) {
      throw new CheckpointError(`${file}: unexpected end of file at byte ${position + done} while reading tensor ${tensor}`, file, tensor);
    }
    done += bytesRead;
  }
}

/** Appends a group's bytes to `group{g}-shard{i}of{n}.bin` files of at most shardBytes each. */
class ShardWriter {
  readonly paths: string[];
  /** Size and sha256 of each shard written, by file name. */
  readonly digests: Record<string, { size: number; sha256: string }> = {};
  private hash: Hash | null = null;
  private index = 0;
  private inShard = 0;
  private written = 0;
  private fh: FileHandle | null = null;

  constructor(
    private readonly dir: string,
    group: number,
    private readonly totalBytes: number,
    private readonly shardBytes: number,
  ) {
    const n = Math.max(1, Math.ceil(totalBytes / shardBytes));
    this.paths = Array.from({ length: n }, (_, i) => `group${group}-shard${i + 1}of${n}.bin`);
  }

  async write(bytes: Uint8Array): Promise<void> {
    let off = 0;
    while (off < bytes.length) {
      if (this.fh === null) {
        this.fh = await open(join(this.dir, this.paths[this.index]), 'wx');
        this.hash = createHash('sha256');
      }
      const take = Math.min(bytes.length - off, this.shardBytes - this.inShard);
      await writeAll(this.fh, bytes.subarray(off, off + take));
      this.hash!.update(bytes.subarray(off, off + take));
      off += take;
      this.inShard += take;
      this.written += take;
      if (this.inShard === this.shardBytes && this.index < this.paths.length - 1) await this.nextShard();
    }
  }

  private async nextShard(): Promise<void> {
    await this.closeCurrent(true);
    this.index++;
    this.inShard = 0;
  }

  private async closeCurrent(sync: boolean): Promise<void> {
    if (this.fh === null) return;
    const fh = this.fh;
    this.fh = null;
    if (this.hash) this.digests[this.paths[this.index]] = { size: this.inShard, sha256: this.hash.digest('hex') };
    this.hash = null;
    try {
      if (sync) await fh.datasync();
    } finally {
      await fh.close();
    }
  }

  async finish(): Promise<void> {
    if (this.written !== this.totalBytes) {
      throw new Error(`internal error: group wrote ${this.written} bytes, planned ${this.totalBytes}`);
    }
    if (this.fh === null && this.index === 0 && this.totalBytes === 0) {
      await writeFile(join(this.dir, this.paths[0]), new Uint8Array(0));
      this.digests[this.paths[0]] = { size: 0, sha256: createHash('sha256').digest('hex') };
    }
    await this.closeCurrent(true);
  }

  /** Close without syncing (on error). */
  async abandon(): Promise<void> {
    await this.closeCurrent(false).catch(() => undefined);
  }
}

function describeBadValues(t: PlannedTensor, s: ValueStats): string {
  const parts: string[] = [];
  if (s.nan) parts.push(`${s.nan} NaN`);
  if (s.inf) parts.push(`${s.inf} ±Inf`);
  return `${t.file}: tensor ${t.name} contains ${parts.join(' and ')} value${s.nan + s.inf > 1 ? 's' : ''} (of ${t.numel}; first at flat index ${s.firstNonFinite}); the checkpoint is corrupt`;
}

// ---------------------------------------------------------------------------------------------
// Output directory: where it may be, temp dirs, the final swap

async function lexists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * The path `p` would have once created, with every symlink resolved: the real path of its
 * deepest existing ancestor plus the remaining components. `p` must be absolute and normalised.
 */
async function realPathOfMaybeMissing(p: string): Promise<string> {
  const rest: string[] = [];
  let cur = p;
  for (;;) {
    try {
      return join(await realpath(cur), ...rest.reverse());
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw e;
      const st = await lstat(cur).catch(() => null);
      if (st?.isSymbolicLink()) {
        throw new CheckpointError(
          `output path ${p}: ${cur} is a symbolic link to ${await readlink(cur)}, which does not exist; remove the link or choose another output directory`,
          cur,
        );
      }
      const parent = dirname(cur);
      if (parent === cur) return p;
      rest.push(basename(cur));
      cur = parent;
    }
  }
}

/**
 * Refuse an output directory that is, contains or lies inside the input checkpoint, comparing
 * real paths: the same directory can be named through symlinks (of the output, of the input, of
 * any ancestor, of the working directory), and a forced conversion moves the output path aside
 * and deletes it, which must never reach the input.
 */
async function checkOutputNotInput(outputDir: string, inputDir: string): Promise<void> {
  let realIn: string;
  try {
    realIn = await realpath(inputDir);
  } catch {
    realIn = inputDir; // a missing input is reported by planConversion
  }
  const realOut = await realPathOfMaybeMissing(outputDir);
  const shown = (given: string, real: string): string => (given === real ? given : `${given} (real path ${real})`);
  const out = shown(outputDir, realOut);
  const inp = shown(inputDir, realIn);
  for (const [o, i] of [[outputDir, inputDir], [realOut, realIn]]) {
    if (o === i || isInside(i, o)) {
      throw new CheckpointError(
        `output directory ${out} would replace the input checkpoint ${inp}${o === i ? '' : ', which lies inside it'}; choose an output directory outside the input`,
        outputDir,
      );
    }
    if (isInside(o, i)) {
      throw new CheckpointError(`output directory ${out} lies inside the input checkpoint ${inp}; choose an output directory outside the input`, outputDir);
    }
  }
}

async function checkOutputDir(outputDir: string, inputDir: string, force: boolean): Promise<void> {
  await checkOutputNotInput(outputDir, inputDir);
  let st;
  try {
    st = await stat(outputDir);
  } catch {
    return; // does not exist: fine
  }
  if (force) return;
  if (!st.isDirectory()) {
    throw new CheckpointError(`output path ${outputDir} exists and is not a directory; remove it or pass --force (force: true) to replace it`, outputDir);
  }
  const entries = await readdir(outputDir);
  if (entries.length > 0) {
    throw new CheckpointError(
      `output directory ${outputDir} exists and is not empty (${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}); pass --force (force: true) to replace it`,
      outputDir,
    );
  }
}

/**
 * Inside a temp dir while it is being written: who writes it. Lets a later run tell a temp dir
 * of a killed conversion from one of a conversion still running on another machine that shares
 * the directory (pids mean nothing across machines).
 */
const OWNER_FILE = '.rsn-convert-owner';

/** `<out>.tmp-<pid>-<8 hex>` (being written) or `<out>.old-<pid>-<8 hex>` (a replaced output on its way out). */
function tempSibling(outputDir: string, kind: 'tmp' | 'old'): string {
  return `${outputDir}.${kind}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** Names a converted model consists of; a stale temp dir holding anything else is not ours to delete. */
function isConverterOutputName(name: string): boolean {
  return name === OWNER_FILE || name === 'model.json' || (COPIED_FILES as readonly string[]).includes(name) || /^group\d+-shard\d+of\d+\.bin$/.test(name);
}

function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * Clean up after conversions to the same output that were killed (SIGKILL, power loss) and so
 * could not remove their temp dirs. A `<out>.tmp-<pid>-*` dir is removed only if process <pid>
 * is gone, it is a real directory (not a symlink), it is not (and holds no part of) the input,
 * it holds nothing but converter output, and its owner file, if any, names this machine. A
 * `<out>.old-<pid>-*` dir of a dead process is a replaced output: deleted if the new output is
 * in place, otherwise moved back to `<out>` (the process died between the two renames).
 * Returns the paths handled; each is also reported through `log`.
 */
export async function removeStaleTempDirs(outputDirArg: string, inputDirArg: string, log: (message: string) => void = () => undefined): Promise<string[]> {
  const outputDir = resolve(outputDirArg);
  const parent = dirname(outputDir);
  const realIn = await realpath(resolve(inputDirArg)).catch(() => resolve(inputDirArg));
  const escaped = basename(outputDir).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const pattern = new RegExp(`^${escaped}\\.(tmp|old)-(\\d+)-[0-9a-f]{8}$`);
  let names: string[];
  try {
    names = await readdir(parent);
  } catch {
    return [];
  }
  const handled: string[] = [];
  for (const name of names.sort()) {
    const m = pattern.exec(name);
    if (!m) continue;
    const kind = m[1];
    const pid = Number(m[2]);
    if (pid === process.pid || processIsAlive(pid)) continue;
    const dir = join(parent, name);
    const st = await lstat(dir).catch(() => null);
    if (!st?.isDirectory()) continue;
    const real = await realpath(dir).catch(() => null);
    if (real === null || real === realIn || isInside(realIn, real) || isInside(real, realIn)) continue;
    if (kind === 'tmp') {
      const entries = await readdir(dir);
      if (!entries.every(isConverterOutputName)) {
        log(`left ${dir} alone: it looks like a temp dir of process ${pid}, which is gone, but it holds files the converter does not write`);
        continue;
      }
      if (entries.includes(OWNER_FILE)) {
        const owner = await readFile(join(dir, OWNER_FILE), 'utf8').then((t) => JSON.parse(t) as { host?: unknown }).catch(() => null);
        if (owner?.host !== hostname()) {
          log(`left ${dir} alone: its owner file names machine ${JSON.stringify(owner?.host)}, not this one (${hostname()}), so process ${pid} may still be running there`);
          continue;
        }
      }
      await rm(dir, { recursive: true, force: true });
      log(`removed stale temp dir ${dir} left by process ${pid}`);
    } else if (await lexists(outputDir)) {
      await rm(dir, { recursive: true, force: true });
      log(`removed stale ${dir} left by process ${pid}: the output it had replaced`);
    } else {
      await rename(dir, outputDir);
      log(`restored ${outputDir} from ${dir}: process ${pid} had moved it aside to replace it and died before finishing`);
    }
    handled.push(dir);
  }
  return handled;
}

/** Move the finished temp dir to outputDir, replacing whatever is there only after success. */
async function swapIntoPlace(tmpDir: string, outputDir: string, inputDir: string, force: boolean): Promise<void> {
  // Again, right before anything is moved: a symlink may have been put in place meanwhile.
  await checkOutputNotInput(outputDir, inputDir);
  if (!(await lexists(outputDir))) {
    await rename(tmpDir, outputDir);
    return;
  }
  // Re-check (the directory may have appeared while we converted).
  const st = await stat(outputDir).catch(() => null);
  if (!force && (!st?.isDirectory() || (await readdir(outputDir)).length > 0)) {
    throw new CheckpointError(`output directory ${outputDir} appeared and is not empty; pass --force (force: true) to replace it`, outputDir);
  }
  // rename and rm act on the directory entry itself: an output path that is a symlink is
  // replaced as a link, and its target is left alone.
  const old = tempSibling(outputDir, 'old');
  await rename(outputDir, old);
  try {
    await rename(tmpDir, outputDir);
  } catch (e) {
    await rename(old, outputDir).catch(() => undefined);
    throw e;
  }
  await rm(old, { recursive: true, force: true });
}

/** Convert a Hugging Face checkpoint directory (llama, mistral, qwen2, gemma) into the project's TF.js weights format. */
export async function convertCheckpoint(opts: ConvertOptions): Promise<ConvertReport> {
  const t0 = performance.now();
  const storage: StorageDtype = opts.dtype ?? 'float32';
  if (storage !== 'float32' && storage !== 'float16') {
    throw new CheckpointError(`unknown storage dtype ${JSON.stringify(storage)}; expected "float32" or "float16"`);
  }
  const shardBytes = opts.shardBytes ?? DEFAULT_SHARD_BYTES;
  if (!Number.isSafeInteger(shardBytes) || shardBytes < 1) {
    throw new CheckpointError(`shardBytes must be a positive integer, found ${shardBytes}`);
  }
  if (endianness() !== 'LE') throw new CheckpointError('the converter needs a little-endian machine');
  const chunkElems = opts.chunkElements ?? CHUNK_ELEMS;
  if (!Number.isSafeInteger(chunkElems) || chunkElems < 1) {
    throw new CheckpointError(`chunkElements must be a positive integer, found ${chunkElems}`);
  }
  const force = opts.force ?? false;
  const inputDir = resolve(opts.inputDir);
  const outputDir = resolve(opts.outputDir);
  opts.signal?.throwIfAborted();

  await checkOutputNotInput(outputDir, inputDir);
  const staleDirs = await removeStaleTempDirs(outputDir, inputDir, opts.onLog);
  await checkOutputDir(outputDir, inputDir, force);
  const plan = await planConversion(inputDir);
  opts.signal?.throwIfAborted();

  const outBytesPerValue = storage === 'float16' ? 2 : 4;
  const all = plan.groups.flat();
  const bytesTotal = all.reduce((a, t) => a + (t.end - t.begin), 0);
  const sourceDtypes = [...new Set(all.map((t) => t.dtype))].sort();

  let peakRss = process.memoryUsage.rss();
  const sampleRss = (): void => {
    const r = process.memoryUsage.rss();
    if (r > peakRss) peakRss = r;
  };

  await mkdir(dirname(outputDir), { recursive: true });
  const tmpDir = tempSibling(outputDir, 'tmp');
  await mkdir(tmpDir);
  const ownerFile = join(tmpDir, OWNER_FILE);
  const handles = new Map<string, FileHandle>();
  let writer: ShardWriter | null = null;
  try {
    await writeFile(ownerFile, `${JSON.stringify({ pid: process.pid, host: hostname() })}\n`);
    // Chunk buffers, allocated once: src holds up to CHUNK_ELEMS values of the source dtype;
    // out holds their converted form (unused when source and storage formats coincide).
    const srcBuf = new ArrayBuffer(chunkElems * 4);
    const outBuf = new ArrayBuffer(chunkElems * 4);
    let bytesDone = 0;
    let bytesWritten = 0;
    const manifest: ManifestGroup[] = [];
    const digests: Record<string, { size: number; sha256: string }> = {};

    for (let g = 0; g < plan.groups.length; g++) {
      const tensors = plan.groups[g];
      const groupBytes = tensors.reduce((a, t) => a + t.numel * outBytesPerValue, 0);
      writer = new ShardWriter(tmpDir, g, groupBytes, shardBytes);
      const weights: ManifestWeight[] = [];
      for (const t of tensors) {
        let fh = handles.get(t.file);
        if (!fh) {
          fh = await open(t.file, 'r');
          handles.set(t.file, fh);
        }
        const inBytesPerValue = t.dtype === 'F32' ? 4 : 2;
        const passthrough = (t.dtype === 'F32' && storage === 'float32') || (t.dtype === 'F16' && storage === 'float16');
        const stats = newStats();
        for (let start = 0; start < t.numel; start += chunkElems) {
          opts.signal?.throwIfAborted();
          const n = Math.min(chunkElems, t.numel - start);
          const srcBytes = new Uint8Array(srcBuf, 0, n * inBytesPerValue);
          await readExactly(fh, srcBytes, t.begin + start * inBytesPerValue, t.file, t.name);
          const src = inBytesPerValue === 4 ? new Uint32Array(srcBuf, 0, n) : new Uint16Array(srcBuf, 0, n);
          const outArr = passthrough ? src : outBytesPerValue === 4 ? new Uint32Array(outBuf, 0, n) : new Uint16Array(outBuf, 0, n);
          convertValues(t.dtype, storage, src, outArr, n, start, stats);
          await writer.write(new Uint8Array(outArr.buffer, 0, n * outBytesPerValue));
          bytesDone += n * inBytesPerValue;
          sampleRss();
          opts.onProgress?.({ bytesDone, bytesTotal, tensor: t.name });
        }
        if (stats.nan + stats.inf > 0) throw new CheckpointError(describeBadValues(t, stats), t.file, t.name);
        if (stats.overflow > 0) {
          throw new CheckpointError(
            `${t.file}: tensor ${t.name} has ${stats.overflow} value${stats.overflow > 1 ? 's' : ''} outside the float16 range (|x| > ${HALF_MAX}; first ${stats.firstOverflowValue} at flat index ${stats.firstOverflow}); store float32 instead (--dtype float32)`,
            t.file,
            t.name,
          );
        }
        const w: ManifestWeight = { name: t.name, shape: [...t.shape], dtype: 'float32' };
        if (storage === 'float16') w.quantization = { dtype: 'float16', original_dtype: 'float32' };
        weights.push(w);
      }
      await writer.finish();
      Object.assign(digests, writer.digests);
      manifest.push({ paths: [...writer.paths], weights });
      writer = null;
      bytesWritten += groupBytes;
    }

    for (const f of COPIED_FILES) {
      const src = join(inputDir, f);
      if (!(await exists(src))) continue;
      // A side file must be a file of the checkpoint: not a link to (or a copy of) a file elsewhere.
      const refuse = (why: string): never => {
        throw new CheckpointError(`${src}: ${why} the checkpoint directory ${inputDir}; side files (${COPIED_FILES.join(', ')}) must be regular files inside it`, src);
      };
      await checkInsideInput(inputDir, await realpath(inputDir), f, refuse, () => refuse('does not resolve to a file inside'));
      if (!(await stat(src)).isFile()) refuse('is not a regular file in');
      const bytes = await readFile(src);
      await writeFile(join(tmpDir, f), bytes, { flag: 'wx' });
      digests[f] = { size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
      bytesWritten += bytes.length;
    }
    const modelJson: ConvertedModelJson = {
      format: MODEL_FORMAT,
      formatVersion: MODEL_FORMAT_VERSION,
      storageDtype: storage,
      source: { dir: inputDir, files: plan.files, dtypes: sourceDtypes },
      convertedAt: new Date().toISOString(),
      converter: CONVERTER_ID,
      weightsManifest: manifest,
      files: digests,
    };
    const text = `${JSON.stringify(seal(modelJson), null, 2)}\n`;
    await writeFile(join(tmpDir, 'model.json'), text);
    bytesWritten += Buffer.byteLength(text);

    opts.signal?.throwIfAborted();
    await unlink(ownerFile);
    await swapIntoPlace(tmpDir, outputDir, inputDir, force);
    sampleRss();
    return {
      outputDir,
      tensors: all.length,
      bytesRead: bytesDone,
      bytesWritten,
      seconds: (performance.now() - t0) / 1000,
      storageDtype: storage,
      sourceDtypes,
      peakRssBytes: peakRss,
      staleDirs,
    };
  } catch (e) {
    if (writer) await writer.abandon();
    for (const fh of handles.values()) await fh.close().catch(() => undefined);
    handles.clear();
    await rm(tmpDir, { recursive: true, force: true });
    throw e;
  } finally {
    for (const fh of handles.values()) await fh.close().catch(() => undefined);
  }
}

/** The temp-dir name prefix used for `outputDir` (for tests and cleanup tools). */
export function tempDirPrefix(outputDir: string): string {
  return `${basename(resolve(outputDir))}.tmp-`;
}
