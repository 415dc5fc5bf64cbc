/**
 * Test helpers: parse / re-serialise safetensors files and build corrupt copies of the fixture
 * checkpoints in a temp dir (never touching test/fixtures/).
 */
import { cp, mkdir, mkdtemp, open, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expectedTensors, readLlamaConfig } from '../../lib/model/config.ts';

export const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));
export const BF16_FIXTURE = join(FIXTURES, 'tiny-llama-bf16');
export const F32_SHARDED_FIXTURE = join(FIXTURES, 'tiny-llama-f32-sharded');

export interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** A header as a mutable JSON object (entries may be made malformed on purpose). */
export type Header = Record<string, unknown>;

export interface Safetensors {
  header: Header;
  /** The data section (bytes after the header). */
  data: Buffer;
}

export function parseSafetensors(buf: Buffer): Safetensors {
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Header;
  return { header, data: Buffer.from(buf.subarray(8 + n)) };
}

/** Serialise; the header JSON is padded with spaces to a multiple of 8 bytes, as the spec suggests. */
export function serializeSafetensors(st: Safetensors): Buffer {
  return serializeRaw(Buffer.from(JSON.stringify(st.header), 'utf8'), st.data);
}

export async function readSafetensors(file: string): Promise<Safetensors> {
  return parseSafetensors(await readFile(file));
}

/** Parse `file`, let `edit` change it in place, write it back. */
export async function rewriteSafetensors(file: string, edit: (st: Safetensors) => void): Promise<void> {
  const st = await readSafetensors(file);
  edit(st);
  await writeFile(file, serializeSafetensors(st));
}

export function entry(st: Safetensors, name: string): HeaderEntry {
  const e = st.header[name];
  if (typeof e !== 'object' || e === null) throw new Error(`test helper: no tensor ${name}`);
  return e as HeaderEntry;
}

/** Tensor entries (without __metadata__). */
export function entries(st: Safetensors): [string, HeaderEntry][] {
  return Object.entries(st.header).filter(([k]) => k !== '__metadata__') as [string, HeaderEntry][];
}

/** Decode an F32 / BF16 tensor of a parsed file to float32 values. */
export function tensorValues(st: Safetensors, name: string): Float32Array {
  const e = entry(st, name);
  const [b, end] = e.data_offsets;
  const bytes = st.data.subarray(b, end);
  if (e.dtype === 'F32') {
    const out = new Float32Array((end - b) / 4);
    for (let i = 0; i < out.length; i++) out[i] = bytes.readFloatLE(i * 4);
    return out;
  }
  if (e.dtype === 'BF16') {
    const out = new Float32Array((end - b) / 2);
    const tmp = Buffer.alloc(4);
    for (let i = 0; i < out.length; i++) {
      tmp.writeUInt32LE(bytes.readUInt16LE(i * 2) << 16 >>> 0);
      out[i] = tmp.readFloatLE(0);
    }
    return out;
  }
  throw new Error(`test helper: cannot decode ${e.dtype}`);
}

/** A fresh directory under os.tmpdir(). */
export async function makeTempDir(prefix = 'rsn-converter-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Copy a fixture checkpoint to `<parent>/<name>` and return that path. */
export async function copyFixture(fixture: string, parent: string, name = 'ckpt'): Promise<string> {
  const dst = join(parent, name);
  await cp(fixture, dst, { recursive: true });
  return dst;
}

// ---- ready-made corruptions (each edits a copy in place) -------------------------------------

export const BF16_FILE = 'model.safetensors';
export const SHARD1 = 'model-00001-of-00002.safetensors';
export const SHARD2 = 'model-00002-of-00002.safetensors';
export const INDEX = 'model.safetensors.index.json';

/** Cut the file to `bytes` bytes. */
export async function truncateFile(file: string, bytes: number): Promise<void> {
  const buf = await readFile(file);
  await writeFile(file, buf.subarray(0, bytes));
}

/** Set the u64 header length to `n` without changing anything else. */
export async function setHeaderLength(file: string, n: bigint): Promise<void> {
  const buf = await readFile(file);
  buf.writeBigUInt64LE(n, 0);
  await writeFile(file, buf);
}

/** Make tensor `b` start 2 bytes into tensor `a` (same byte length, so only the overlap is wrong). */
export async function overlapTensors(file: string, a: string, b: string): Promise<void> {
  await rewriteSafetensors(file, (st) => {
    const ea = entry(st, a);
    const eb = entry(st, b);
    const len = eb.data_offsets[1] - eb.data_offsets[0];
    eb.data_offsets = [ea.data_offsets[0] + 2, ea.data_offsets[0] + 2 + len];
  });
}

export async function setDtype(file: string, tensor: string, dtype: string): Promise<void> {
  await rewriteSafetensors(file, (st) => {
    entry(st, tensor).dtype = dtype;
  });
}

export async function setShape(file: string, tensor: string, shape: number[]): Promise<void> {
  await rewriteSafetensors(file, (st) => {
    entry(st, tensor).shape = shape;
  });
}

/** Remove a tensor together with its bytes (later tensors move up), so the file stays well formed. */
export async function removeTensor(file: string, tensor: string): Promise<void> {
  await rewriteSafetensors(file, (st) => {
    const [b, e] = entry(st, tensor).data_offsets;
    delete st.header[tensor];
    st.data = Buffer.concat([st.data.subarray(0, b), st.data.subarray(e)]);
    for (const [, other] of entries(st)) {
      if (other.data_offsets[0] >= e) other.data_offsets = [other.data_offsets[0] - (e - b), other.data_offsets[1] - (e - b)];
    }
  });
}

/** Append a new tensor (fresh bytes at the end of the data section). */
export async function addTensor(file: string, name: string, dtype: 'F32' | 'BF16', values: number[]): Promise<void> {
  await rewriteSafetensors(file, (st) => {
    const size = dtype === 'F32' ? 4 : 2;
    const bytes = Buffer.alloc(values.length * size);
    values.forEach((v, i) => {
      if (dtype === 'F32') bytes.writeFloatLE(v, i * 4);
      else {
        const t = Buffer.alloc(4);
        t.writeFloatLE(v);
        bytes.writeUInt16LE(t.readUInt32LE(0) >>> 16, i * 2);
      }
    });
    const begin = st.data.length;
    st.header[name] = { dtype, shape: [values.length], data_offsets: [begin, begin + bytes.length] };
    st.data = Buffer.concat([st.data, bytes]);
  });
}

/**
 * Overwrite elements of a tensor with raw bit patterns (BF16: 16-bit, F32: 32-bit), e.g.
 * 0x7fc0 = bf16 NaN, 0x7fc00000 = f32 NaN.
 */
export async function pokeBits(file: string, tensor: string, at: number[], bits: number): Promise<void> {
  await rewriteSafetensors(file, (st) => {
    const e = entry(st, tensor);
    const size = e.dtype === 'F32' ? 4 : 2;
    for (const i of at) {
      const off = e.data_offsets[0] + i * size;
      if (size === 4) st.data.writeUInt32LE(bits >>> 0, off);
      else st.data.writeUInt16LE(bits, off);
    }
  });
}

export async function pokeFloat32(file: string, tensor: string, at: number, value: number): Promise<void> {
  await rewriteSafetensors(file, (st) => {
    const e = entry(st, tensor);
    if (e.dtype !== 'F32') throw new Error('test helper: pokeFloat32 needs an F32 tensor');
    st.data.writeFloatLE(value, e.data_offsets[0] + at * 4);
  });
}

/** Edit model.safetensors.index.json. */
export async function editIndex(dir: string, edit: (index: { weight_map: Record<string, string> } & Record<string, unknown>) => void): Promise<void> {
  const p = join(dir, INDEX);
  const index = JSON.parse(await readFile(p, 'utf8')) as { weight_map: Record<string, string> } & Record<string, unknown>;
  edit(index);
  await writeFile(p, JSON.stringify(index, null, 2));
}

/** Edit config.json. */
export async function editConfig(dir: string, edit: (config: Record<string, unknown>) => void): Promise<void> {
  const p = join(dir, 'config.json');
  const config = JSON.parse(await readFile(p, 'utf8')) as Record<string, unknown>;
  edit(config);
  await writeFile(p, JSON.stringify(config, null, 2));
}

/** Replace the header by `edit(JSON text)`, verbatim (so it may repeat keys or be odd in other ways JSON.stringify cannot produce). */
export async function rewriteHeaderText(file: string, edit: (json: string) => string): Promise<void> {
  const st = await readSafetensors(file);
  await writeFile(file, serializeRaw(Buffer.from(edit(JSON.stringify(st.header)), 'utf8'), st.data));
}

/** Replace the first occurrence of `find` in the header bytes by `bytes` (same length, so the header length stays right). */
export async function patchHeaderBytes(file: string, find: string, bytes: Buffer): Promise<void> {
  const buf = await readFile(file);
  const n = Number(buf.readBigUInt64LE(0));
  const at = buf.subarray(8, 8 + n).indexOf(find);
  if (at < 0 || bytes.length !== Buffer.byteLength(find)) throw new Error(`test helper: cannot patch ${JSON.stringify(find)}`);
  bytes.copy(buf, 8 + at);
  await writeFile(file, buf);
}

function serializeRaw(json: Buffer, data: Buffer): Buffer {
  const pad = (8 - (json.length % 8)) % 8;
  const padded = pad ? Buffer.concat([json, Buffer.alloc(pad, 0x20)]) : json;
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(padded.length));
  return Buffer.concat([len, padded, data]);
}

/** Insert `n` bytes that belong to no tensor right after tensor `after` (later tensors move down). */
export async function insertGap(file: string, after: string, n: number): Promise<void> {
  await rewriteSafetensors(file, (st) => {
    const end = entry(st, after).data_offsets[1];
    st.data = Buffer.concat([st.data.subarray(0, end), Buffer.alloc(n, 0xab), st.data.subarray(end)]);
    for (const [, e] of entries(st)) {
      if (e.data_offsets[0] >= end) e.data_offsets = [e.data_offsets[0] + n, e.data_offsets[1] + n];
    }
  });
}

/** Append `n` bytes after the data section's last tensor. */
export async function appendBytes(file: string, n: number): Promise<void> {
  await rewriteSafetensors(file, (st) => {
    st.data = Buffer.concat([st.data, Buffer.alloc(n, 0xcd)]);
  });
}

/**
 * Write `<dir>/config.json` + an F32 `<dir>/model.safetensors` with every tensor a Llama of
 * `config` has, filled with seeded pseudo-random values (norm weights 1). Streams tensor by
 * tensor, so a checkpoint of a few hundred MB needs little memory. Returns the file's size.
 */
export async function writeRandomCheckpoint(dir: string, config: Record<string, unknown>, seed = 1): Promise<number> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  const specs = expectedTensors(readLlamaConfig(join(dir, 'config.json')));
  const header: Header = { __metadata__: { format: 'pt' } };
  let off = 0;
  for (const s of specs) {
    const bytes = s.shape.reduce((a, b) => a * b, 1) * 4;
    header[s.name] = { dtype: 'F32', shape: s.shape, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  const fh = await open(join(dir, 'model.safetensors'), 'w');
  try {
    const head = serializeRaw(Buffer.from(JSON.stringify(header), 'utf8'), Buffer.alloc(0));
    await fh.write(head);
    let x = seed >>> 0 || 1;
    for (const s of specs) {
      const values = new Float32Array(s.shape.reduce((a, b) => a * b, 1));
      if (s.shape.length === 1) values.fill(1);
      else {
        for (let i = 0; i < values.length; i++) {
          x ^= x << 13;
          x ^= x >>> 17;
          x ^= x << 5;
          values[i] = ((x >>> 0) / 2 ** 32 - 0.5) * 0.1;
        }
      }
      await fh.write(new Uint8Array(values.buffer));
    }
    return head.length + off;
  } finally {
    await fh.close();
  }
}
