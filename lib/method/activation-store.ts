/**
 * On-disk store of token-mean activations: P prompts × N neurons (a NeuronSpace), split by
 * neuron range into files `n{start}-{end}.bin`, each prompt-major [P][end-start] in float32 or
 * float16. Collection writes one prompt batch at a time and then records progress in meta.json
 * (atomically), so a killed run resumes where it stopped. Stores that cover consecutive prompt
 * ranges of the same prompt list can be merged.
 */
import { closeSync, existsSync, fstatSync, ftruncateSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { sha256Hex, writeFileAtomic } from '../data/io.ts';
import { CheckpointError } from '../errors.ts';
import type { LlamaModel } from '../model/llama.ts';
import { hookPointName, type RecordSpec } from '../model/hooks.ts';
import { Progress, type ProgressState } from '../progress.ts';
import type { ActivationSource } from '../stats/ap-engine.ts';
import { modelIdentity, type ModelIdentity } from './identity.ts';
import { NeuronSpace, type NeuronSite } from './neurons.ts';
import { halfToFloat } from '../model/weights.ts';
import { floatBitsToHalfBits } from '../../weights-converter/numeric.ts';

const f32scratch = new Float32Array(1);
const u32scratch = new Uint32Array(f32scratch.buffer);
function floatToHalf(x: number): number {
  f32scratch[0] = x;
  return floatBitsToHalfBits(u32scratch[0]!);
}

export const STORE_SCHEMA = 'rsn-activations/1';

export interface StoreMeta {
  schema: typeof STORE_SCHEMA;
  model: ModelIdentity;
  /** sha256 of the full prompt list's token ids: a resumed or merged store must see the same list. */
  promptsSha256: string;
  /** This store holds rows [promptStart, promptEnd) of that list. */
  promptStart: number;
  promptEnd: number;
  /** Rows written so far (from promptStart). */
  completed: number;
  space: ReturnType<NeuronSpace['describe']>;
  dtype: 'float32' | 'float16';
  includeBos: boolean;
  chunks: { start: number; end: number; file: string }[];
  createdAt: string;
  updatedAt: string;
}

export interface CollectOptions {
  /** Sites to record (default the FFN pool). */
  sites?: readonly NeuronSite[];
  dtype?: 'float32' | 'float16';
  /** Include the BOS token in the token mean (default true, as the paper). */
  includeBos?: boolean;
  batchSize?: number;
  /** Neurons per file (default 65536). */
  chunkNeurons?: number;
  /** Only rows [start, end) of the list (to split a run over processes or machines). */
  promptRange?: [number, number];
  quiet?: boolean;
  onProgress?: (s: ProgressState) => void;
}

const META = 'meta.json';

function bytesPer(dtype: 'float32' | 'float16'): number {
  return dtype === 'float32' ? 4 : 2;
}

export function promptsHash(tokenized: readonly (readonly number[])[]): string {
  return sha256Hex(JSON.stringify(tokenized));
}

/**
 * Record token-mean activations of every neuron in `sites` for every prompt, into `dir`.
 * Resumes an unfinished store made for the same model, prompts and settings; refuses a
 * store made for anything else.
 */
export async function collectActivations(model: LlamaModel, tokenized: readonly (readonly number[])[], dir: string, opts: CollectOptions = {}): Promise<ActivationStore> {
  const space = NeuronSpace.forModel(model.config, opts.sites ?? ['mlp.gate', 'mlp.up', 'mlp.down']);
  const dtype = opts.dtype ?? 'float32';
  const includeBos = opts.includeBos ?? true;
  const [pStart, pEnd] = opts.promptRange ?? [0, tokenized.length];
  if (!(Number.isInteger(pStart) && Number.isInteger(pEnd) && 0 <= pStart && pStart < pEnd && pEnd <= tokenized.length)) {
    throw new RangeError(`promptRange [${pStart}, ${pEnd}) must lie inside 0–${tokenized.length} and be non-empty`);
  }
  const identity = modelIdentity(model);
  const hash = promptsHash(tokenized);
  let meta: StoreMeta;
  if (existsSync(join(dir, META))) {
    meta = readMeta(dir);
    const mismatch: string[] = [];
    if (meta.model.sha256 !== identity.sha256) mismatch.push(`model ${meta.model.name} ≠ ${identity.name}`);
    if (meta.promptsSha256 !== hash) mismatch.push('prompt list differs');
    if (meta.promptStart !== pStart || meta.promptEnd !== pEnd) mismatch.push(`prompt range [${meta.promptStart}, ${meta.promptEnd}) ≠ [${pStart}, ${pEnd})`);
    if (meta.dtype !== dtype) mismatch.push(`dtype ${meta.dtype} ≠ ${dtype}`);
    if (meta.includeBos !== includeBos) mismatch.push(`includeBos ${meta.includeBos} ≠ ${includeBos}`);
    if (JSON.stringify(meta.space) !== JSON.stringify(space.describe())) mismatch.push('neuron sites differ');
    if (mismatch.length) {
      throw new CheckpointError(`${dir}: an activation store for different settings is already there (${mismatch.join('; ')}); choose another directory or delete it`, join(dir, META));
    }
  } else {
    mkdirSync(dir, { recursive: true });
    const chunkNeurons = opts.chunkNeurons ?? 65536;
    const chunks = [];
    for (let s = 0; s < space.size; s += chunkNeurons) {
      const e = Math.min(space.size, s + chunkNeurons);
      chunks.push({ start: s, end: e, file: `n${s}-${e}.bin` });
    }
    const now = new Date().toISOString();
    meta = { schema: STORE_SCHEMA, model: identity, promptsSha256: hash, promptStart: pStart, promptEnd: pEnd, completed: 0, space: space.describe(), dtype, includeBos, chunks, createdAt: now, updatedAt: now };
    writeFileAtomic(join(dir, META), JSON.stringify(meta, null, 1));
  }
  const rowsTotal = pEnd - pStart;
  const bpv = bytesPer(dtype);
  const fds = meta.chunks.map((c) => {
    const fd = openSync(join(dir, c.file), existsSync(join(dir, c.file)) ? 'r+' : 'w+');
    // Rows past `completed` may be a half-written batch from a killed run: drop them.
    ftruncateSync(fd, meta.completed * (c.end - c.start) * bpv);
    return fd;
  });
  const batchSize = opts.batchSize ?? 32;
  const progress = new Progress({ total: rowsTotal, itemName: 'prompts', label: 'activations', silent: opts.quiet, onUpdate: opts.onProgress });
  progress.update(meta.completed);
  try {
    while (meta.completed < rowsTotal) {
      const from = pStart + meta.completed;
      const to = Math.min(pEnd, from + batchSize);
      const B = to - from;
      const rows = await pooledBatch(model, space, tokenized.slice(from, to), includeBos);
      meta.chunks.forEach((c, ci) => {
        const w = c.end - c.start;
        const buf = new Uint8Array(B * w * bpv);
        const f32 = dtype === 'float32' ? new Float32Array(buf.buffer) : null;
        const f16 = dtype === 'float16' ? new Uint16Array(buf.buffer) : null;
        for (let i = 0; i < B; i++) {
          const src = rows.subarray(i * space.size + c.start, i * space.size + c.end);
          if (f32) f32.set(src, i * w);
          else for (let j = 0; j < w; j++) f16![i * w + j] = floatToHalf(src[j]!);
        }
        writeSync(fds[ci]!, buf, 0, buf.length, meta.completed * w * bpv);
      });
      meta.completed += B;
      meta.updatedAt = new Date().toISOString();
      writeFileAtomic(join(dir, META), JSON.stringify(meta, null, 1));
      progress.update(meta.completed);
    }
    progress.finish();
  } catch (e) {
    progress.abort();
    throw e;
  } finally {
    for (const fd of fds) closeSync(fd);
  }
  return ActivationStore.open(dir);
}

/**
 * Token-mean activations of every neuron of `space` for one batch of prompts, [B][N] in
 * neuron order (the row layout of the store; also used in memory by the organism's measurements).
 */
export async function pooledBatch(model: LlamaModel, space: NeuronSpace, batch: readonly (readonly number[])[], includeBos = true): Promise<Float32Array> {
  const record: RecordSpec[] = space.blocks.map((b) => ({ point: hookPointName(b.layer, b.site), mode: 'mean', skipFirstToken: !includeBos }));
  const r = await model.forward(batch, { logits: 'none', hooks: { record } });
  const B = batch.length;
  const rows = new Float32Array(B * space.size);
  for (const b of space.blocks) {
    const data = r.records.get(hookPointName(b.layer, b.site))!.data;
    for (let i = 0; i < B; i++) rows.set(data.subarray(i * b.width, (i + 1) * b.width), i * space.size + b.offset);
  }
  return rows;
}

function readMeta(dir: string): StoreMeta {
  const file = join(dir, META);
  let m: StoreMeta;
  try {
    m = JSON.parse(readFileSync(file, 'utf8')) as StoreMeta;
  } catch (e) {
    throw new CheckpointError(`${file}: not a readable activation store (${(e as Error).message})`, file);
  }
  if (m.schema !== STORE_SCHEMA) throw new CheckpointError(`${file}: field "schema" is ${JSON.stringify(m.schema)}, expected "${STORE_SCHEMA}"`, file);
  return m;
}

export class ActivationStore {
  readonly space: NeuronSpace;

  private constructor(readonly dir: string, readonly meta: StoreMeta) {
    this.space = NeuronSpace.fromDescription(meta.space);
  }

  static open(dir: string): ActivationStore {
    const meta = readMeta(dir);
    for (const c of meta.chunks) {
      const path = join(dir, c.file);
      if (!existsSync(path)) throw new CheckpointError(`${dir}: chunk file ${c.file} is missing`, path);
      const fd = openSync(path, 'r');
      const size = fstatSync(fd).size;
      closeSync(fd);
      const want = meta.completed * (c.end - c.start) * bytesPer(meta.dtype);
      if (size < want) throw new CheckpointError(`${path}: ${size} bytes, expected ${want} for ${meta.completed} prompts (truncated store)`, path);
    }
    return new ActivationStore(dir, meta);
  }

  get complete(): boolean {
    return this.meta.completed === this.meta.promptEnd - this.meta.promptStart;
  }

  get numPrompts(): number {
    return this.meta.completed;
  }

  /** Activations of neurons [start, end) for every stored prompt, [P][end-start] float32 (a fresh array). */
  readRange(start: number, end: number): Float32Array {
    const P = this.meta.completed;
    const w = end - start;
    if (!(0 <= start && start < end && end <= this.space.size)) throw new RangeError(`neuron range [${start}, ${end}) outside 0–${this.space.size}`);
    const out = new Float32Array(P * w);
    const bpv = bytesPer(this.meta.dtype);
    for (const c of this.meta.chunks) {
      const s = Math.max(start, c.start);
      const e = Math.min(end, c.end);
      if (s >= e) continue;
      const cw = c.end - c.start;
      const fd = openSync(join(this.dir, c.file), 'r');
      try {
        // Whole rows of the chunk are read and the needed columns copied out: reads stay large and sequential.
        const rowsPerRead = Math.max(1, Math.floor((8 << 20) / (cw * bpv)));
        const buf = new Uint8Array(rowsPerRead * cw * bpv);
        for (let p0 = 0; p0 < P; p0 += rowsPerRead) {
          const n = Math.min(rowsPerRead, P - p0);
          const len = n * cw * bpv;
          let got = 0;
          while (got < len) {
            const r = readSync(fd, buf, got, len - got, p0 * cw * bpv + got);
            if (r === 0) throw new CheckpointError(`${c.file}: unexpected end of file`, join(this.dir, c.file));
            got += r;
          }
          const f32 = bpv === 4 ? new Float32Array(buf.buffer, 0, n * cw) : null;
          const f16 = bpv === 2 ? new Uint16Array(buf.buffer, 0, n * cw) : null;
          for (let i = 0; i < n; i++) {
            const dst = (p0 + i) * w + (s - start);
            const src = i * cw + (s - c.start);
            if (f32) out.set(f32.subarray(src, src + (e - s)), dst);
            else for (let j = 0; j < e - s; j++) out[dst + j] = halfToFloat(f16![src + j]!);
          }
        }
      } finally {
        closeSync(fd);
      }
    }
    return out;
  }

  /** The store as an AP-engine source (all neurons, all stored prompts). */
  source(): ActivationSource {
    return { numPrompts: this.numPrompts, numNeurons: this.space.size, getChunk: (s, e) => this.readRange(s, e) };
  }
}

/**
 * Concatenate stores that hold consecutive prompt ranges of the same list (e.g. two machines
 * each did half) into `outDir`, written to a temp dir and renamed on success.
 */
export function mergeStores(dirs: readonly string[], outDir: string): ActivationStore {
  const stores = dirs.map((d) => ActivationStore.open(d)).sort((a, b) => a.meta.promptStart - b.meta.promptStart);
  const first = stores[0];
  if (!first) throw new RangeError('mergeStores needs at least one store');
  let expect = first.meta.promptStart;
  for (const s of stores) {
    const m = s.meta;
    if (!s.complete) throw new CheckpointError(`${s.dir}: store is unfinished (${m.completed} of ${m.promptEnd - m.promptStart} prompts); finish it before merging`, s.dir);
    const same = m.model.sha256 === first.meta.model.sha256 && m.promptsSha256 === first.meta.promptsSha256 && m.dtype === first.meta.dtype && m.includeBos === first.meta.includeBos && JSON.stringify(m.space) === JSON.stringify(first.meta.space);
    if (!same) throw new CheckpointError(`${s.dir}: store was made with another model, prompt list, dtype, BOS setting or neuron space than ${first.dir}`, s.dir);
    if (m.promptStart !== expect) throw new CheckpointError(`${s.dir}: covers prompts from ${m.promptStart}, expected ${expect} (the stores must cover consecutive ranges)`, s.dir);
    expect = m.promptEnd;
  }
  if (existsSync(outDir)) throw new CheckpointError(`${outDir}: already exists; merge into a new directory`, outDir);
  const tmp = `${outDir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    const bpv = bytesPer(first.meta.dtype);
    const chunks = first.meta.chunks;
    for (const c of chunks) {
      const fd = openSync(join(tmp, c.file), 'w');
      try {
        for (const s of stores) {
          const sc = s.meta.chunks.find((x) => x.start === c.start && x.end === c.end);
          const data = sc ? readFileSync(join(s.dir, sc.file)).subarray(0, s.meta.completed * (c.end - c.start) * bpv) : null;
          if (!data) throw new CheckpointError(`${s.dir}: has no chunk for neurons ${c.start}–${c.end}`, s.dir);
          writeSync(fd, data);
        }
      } finally {
        closeSync(fd);
      }
    }
    const total = expect - first.meta.promptStart;
    const meta: StoreMeta = { ...first.meta, promptEnd: expect, completed: total, updatedAt: new Date().toISOString() };
    writeFileAtomic(join(tmp, META), JSON.stringify(meta, null, 1));
    renameSync(tmp, outDir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return ActivationStore.open(outDir);
}
