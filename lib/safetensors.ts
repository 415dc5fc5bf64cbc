/**
 * The project's one safetensors module: header reading and validation, tensor decoding, and
 * writing.
 *
 * File layout: 8-byte little-endian u64 header length N, N bytes of UTF-8 JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {string: string}}`, then
 * the data section; offsets are relative to the start of the data section (byte 8 + N). Tensor
 * bytes are little-endian.
 */
import { open, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { writeFileAtomic } from './data/io.ts';
import { CheckpointError } from './errors.ts';
import { HALF_TO_FLOAT32_BITS } from './half.ts';

/** Dtypes whose values this project reads (the converter's inputs, the organism's files). */
export type SourceDtype = 'F32' | 'F16' | 'BF16';
export const SUPPORTED_DTYPES: readonly SourceDtype[] = ['F32', 'F16', 'BF16'];

/** Element sizes of every dtype the safetensors format defines (used to check the layout). */
export const SAFETENSORS_DTYPE_BYTES: Readonly<Record<string, number>> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, F8_E4M3FN: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
};

/** Largest header we accept (the format's own reference implementation uses 100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsEntry {
  name: string;
  /** Dtype string as found in the header (already checked to be a safetensors dtype). */
  dtype: string;
  shape: number[];
  /** Number of elements (product of shape; 1 for a scalar). */
  numel: number;
  /** Absolute byte offsets in the file. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** Path of the file (as given). */
  file: string;
  fileSize: number;
  headerBytes: number;
  /** Absolute offset of the data section. */
  dataStart: number;
  /** Tensors in header order. */
  entries: SafetensorsEntry[];
  metadata: Record<string, unknown> | null;
}

export function isSupportedDtype(d: string): d is SourceDtype {
  return (SUPPORTED_DTYPES as readonly string[]).includes(d);
}

export function unsupportedDtypeMessage(dtype: string, tensor: string, file: string): string {
  return `unsupported dtype ${dtype} for tensor ${tensor} in file ${file}; expected F32, F16 or BF16`;
}

function fail(file: string, message: string, tensor?: string): never {
  throw new CheckpointError(`${file}: ${message}`, file, tensor);
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Read and validate the header of one safetensors file: sizes, strict UTF-8, JSON structure, no
 * key twice in one object, string-only metadata, entry types, dtypes known to the format,
 * offsets inside the data section, byte length = numel × dtype size, and tensors tiling the data
 * section exactly. Reads only the first 8 + N bytes.
 */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  let fileSize: number;
  try {
    const st = await stat(file);
    if (!st.isFile()) fail(file, 'not a regular file');
    fileSize = st.size;
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    fail(file, `cannot read safetensors file (${(e as Error).message})`);
  }
  if (fileSize < 8) {
    fail(file, `file is truncated: ${fileSize} bytes, shorter than the 8-byte safetensors header-length prefix`);
  }
  const fh = await open(file, 'r');
  let headerText: string;
  let headerBytes: number;
  try {
    const lenBuf = Buffer.alloc(8);
    await readExactly(fh, lenBuf, 0, file);
    const n = lenBuf.readBigUInt64LE(0);
    if (n > BigInt(MAX_HEADER_BYTES)) {
      fail(file, `header length ${n} bytes is above the ${MAX_HEADER_BYTES}-byte limit; the file is corrupt or not a safetensors file`);
    }
    headerBytes = Number(n);
    if (8 + headerBytes > fileSize) {
      fail(file, `file is truncated: header length ${headerBytes} needs ${8 + headerBytes} bytes but the file has ${fileSize}`);
    }
    const hb = Buffer.alloc(headerBytes);
    await readExactly(fh, hb, 8, file);
    headerText = decodeUtf8Strict(file, hb);
  } finally {
    await fh.close();
  }
  return parseSafetensorsHeader(file, headerText, fileSize, headerBytes);
}

/**
 * Decode the header as UTF-8, refusing malformed bytes: Buffer#toString would silently turn
 * them into U+FFFD, so two different byte strings could name the same tensor.
 */
function decodeUtf8Strict(file: string, bytes: Uint8Array): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    // Streaming decodes accept an incomplete trailing sequence, so "this prefix decodes" holds
    // up to the byte where decoding breaks and fails from there on: binary-search that byte.
    let lo = 0;
    let hi = bytes.length;
    while (hi - lo > 1) {
      const mid = (lo + hi) >>> 1;
      try {
        new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, mid), { stream: true });
        lo = mid;
      } catch {
        hi = mid;
      }
    }
    fail(file, `header is not valid UTF-8 (malformed at header byte ${lo}, file offset ${8 + lo})`);
  }
}

async function readExactly(fh: FileHandle, buf: Buffer, position: number, file: string): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) fail(file, `file is truncated: unexpected end of file at byte ${position + done}`);
    done += bytesRead;
  }
}

/** Where a JSON text repeats a key inside one object: the keys leading to that object, and the key. */
export interface DuplicateKey {
  path: string[];
  key: string;
}

/**
 * Find the first key that occurs twice in one object of a JSON text. JSON.parse keeps the last
 * occurrence silently, so a header or index naming a tensor twice would lose one of them without
 * a trace. Assumes `text` is valid JSON (parse it first); keys are compared after unescaping, so
 * "a" and "\u0061" are the same key.
 */
export function findDuplicateKey(text: string): DuplicateKey | null {
  interface Frame {
    keys: Set<string> | null; // null for arrays
    path: string[];
    expectKey: boolean;
    lastKey: string;
  }
  const stack: Frame[] = [];
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      while (text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c /* \ */ ? 2 : 1;
      const top = stack[stack.length - 1];
      if (top?.keys && top.expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys.has(key)) return { path: top.path, key };
        top.keys.add(key);
        top.lastKey = key;
        top.expectKey = false;
      }
      i = j;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      const top = stack[stack.length - 1];
      const path = top ? [...top.path, top.keys ? top.lastKey : '[]'] : [];
      stack.push({ keys: c === 0x7b ? new Set() : null, path, expectKey: c === 0x7b, lastKey: '' });
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top?.keys) top.expectKey = true;
    }
  }
  return null;
}

/** Validate a header's JSON text. Exported for tests; `fileSize` bounds the data section. */
export function parseSafetensorsHeader(file: string, text: string, fileSize: number, headerBytes: number): SafetensorsHeader {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    fail(file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    fail(file, `header must be a JSON object, found ${Array.isArray(raw) ? 'an array' : raw === null ? 'null' : typeof raw}`);
  }
  const dup = findDuplicateKey(text);
  if (dup) {
    if (dup.path.length === 0) {
      if (dup.key === '__metadata__') fail(file, 'header has two "__metadata__" entries');
      fail(file, `tensor ${dup.key} appears twice in the header; a header must name each tensor once`, dup.key);
    }
    const [top] = dup.path;
    const where = top === '__metadata__' ? '"__metadata__"' : `header entry for tensor ${top}`;
    fail(file, `duplicate key ${JSON.stringify(dup.key)} in ${where}${dup.path.length > 1 ? ` (at ${dup.path.slice(1).join('.')})` : ''}`, top === '__metadata__' ? undefined : top);
  }
  const dataStart = 8 + headerBytes;
  const dataSize = fileSize - dataStart;
  const entries: SafetensorsEntry[] = [];
  let metadata: Record<string, unknown> | null = null;
  for (const [name, v] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(file, '"__metadata__" must be an object');
      // The format defines metadata as a string → string map; anything else is not a file
      // written by a safetensors implementation.
      for (const [k, mv] of Object.entries(v as Record<string, unknown>)) {
        if (typeof mv !== 'string') fail(file, `"__metadata__" value for key ${JSON.stringify(k)} must be a string, found ${JSON.stringify(mv)}`);
      }
      metadata = v as Record<string, unknown>;
      continue;
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      fail(file, `header entry for tensor ${name} must be an object with dtype, shape and data_offsets`, name);
    }
    const e = v as Record<string, unknown>;
    for (const k of ['dtype', 'shape', 'data_offsets']) {
      if (!(k in e)) fail(file, `header entry for tensor ${name} lacks "${k}"`, name);
    }
    const { dtype, shape, data_offsets: offs } = e;
    if (typeof dtype !== 'string') fail(file, `tensor ${name}: "dtype" must be a string, found ${JSON.stringify(dtype)}`, name);
    if (!Array.isArray(shape) || !shape.every(isNonNegInt)) {
      fail(file, `tensor ${name}: "shape" must be an array of non-negative integers, found ${JSON.stringify(shape)}`, name);
    }
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isNonNegInt)) {
      fail(file, `tensor ${name}: "data_offsets" must be [begin, end] with non-negative integers, found ${JSON.stringify(offs)}`, name);
    }
    const elemBytes = SAFETENSORS_DTYPE_BYTES[dtype];
    if (elemBytes === undefined) throw new CheckpointError(unsupportedDtypeMessage(dtype, name, file), file, name);
    const [begin, end] = offs as [number, number];
    if (begin > end) fail(file, `tensor ${name}: data_offsets begin ${begin} > end ${end}`, name);
    if (end > dataSize) {
      fail(file, `tensor ${name}: data_offsets [${begin}, ${end}] run past the data section (${dataSize} bytes); the file is truncated or the header is wrong`, name);
    }
    const numel = (shape as number[]).reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(numel * elemBytes) || numel * elemBytes !== end - begin) {
      fail(file, `tensor ${name}: byte length ${end - begin} (data_offsets [${begin}, ${end}]) ≠ ${numel} elements of shape ${JSON.stringify(shape)} × ${elemBytes} bytes (${dtype}) = ${numel * elemBytes}`, name);
    }
    entries.push({ name, dtype, shape: shape as number[], numel, begin: dataStart + begin, end: dataStart + end });
  }
  // The tensors must tile the data section exactly, as the format's reference implementation
  // demands: no shared bytes, no bytes that belong to no tensor, nothing after the last tensor.
  // Unowned bytes are where a second copy of a tensor, or anything else, can hide unnoticed.
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  const rel = (x: number): number => x - dataStart;
  const span = (t: SafetensorsEntry): string => `data_offsets [${rel(t.begin)}, ${rel(t.end)}]`;
  let owner: SafetensorsEntry | null = null; // the tensor reaching furthest so far
  for (const cur of sorted) {
    if (owner && cur.begin < owner.end) {
      fail(file, `tensors ${owner.name} (${span(owner)}) and ${cur.name} (${span(cur)}) overlap`, cur.name);
    }
    if (owner === null || cur.end >= owner.end) owner = cur;
  }
  let cursor = dataStart;
  let prev: SafetensorsEntry | null = null;
  for (const cur of sorted) {
    if (cur.begin > cursor) {
      fail(
        file,
        `data section bytes [${rel(cursor)}, ${rel(cur.begin)}) belong to no tensor (a hole ${prev ? `between ${prev.name} and ${cur.name}` : `before ${cur.name}`}); tensors must cover the data section exactly`,
        cur.name,
      );
    }
    cursor = cur.end;
    prev = cur;
  }
  if (rel(cursor) !== dataSize) {
    fail(
      file,
      `${dataSize - rel(cursor)} trailing byte${dataSize - rel(cursor) === 1 ? '' : 's'} after the last tensor${prev ? ` ${prev.name} (ends at data offset ${rel(cursor)})` : ''}; the data section has ${dataSize} bytes and tensors must cover it exactly`,
      prev?.name,
    );
  }
  return { file, fileSize, headerBytes, dataStart, entries, metadata };
}

/**
 * Validate a whole safetensors file held in memory (the same checks as `readSafetensorsHeader`).
 * `file` names the source in errors.
 */
export function parseSafetensorsBytes(file: string, bytes: Uint8Array): SafetensorsHeader {
  if (bytes.length < 8) {
    fail(file, `file is truncated: ${bytes.length} bytes, shorter than the 8-byte safetensors header-length prefix`);
  }
  const n = Buffer.from(bytes.buffer, bytes.byteOffset, 8).readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    fail(file, `header length ${n} bytes is above the ${MAX_HEADER_BYTES}-byte limit; the file is corrupt or not a safetensors file`);
  }
  const headerBytes = Number(n);
  if (8 + headerBytes > bytes.length) {
    fail(file, `file is truncated: header length ${headerBytes} needs ${8 + headerBytes} bytes but the file has ${bytes.length}`);
  }
  const text = decodeUtf8Strict(file, bytes.subarray(8, 8 + headerBytes));
  return parseSafetensorsHeader(file, text, bytes.length, headerBytes);
}

/**
 * The values of one tensor of a validated file as float32 (F32 as is, F16 and BF16 widened
 * exactly). `bytes` is the whole file; the entry's offsets are absolute.
 */
export function decodeTensorF32(header: SafetensorsHeader, bytes: Uint8Array, entry: SafetensorsEntry): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset + entry.begin, entry.end - entry.begin);
  const out = new Float32Array(entry.numel);
  if (entry.dtype === 'F32') {
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
  } else if (entry.dtype === 'F16') {
    // Through the bit patterns, so NaN payloads survive too.
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < out.length; i++) bits[i] = HALF_TO_FLOAT32_BITS[view.getUint16(2 * i, true)]!;
  } else if (entry.dtype === 'BF16') {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < out.length; i++) bits[i] = view.getUint16(2 * i, true) << 16;
  } else {
    throw new CheckpointError(unsupportedDtypeMessage(entry.dtype, entry.name, header.file), header.file, entry.name);
  }
  return out;
}

/** Every tensor of an in-memory safetensors file as float32, by name, after full validation. */
export function readSafetensorsF32(bytes: Uint8Array, file = '<in-memory safetensors>'): Map<string, { shape: number[]; data: Float32Array }> {
  const header = parseSafetensorsBytes(file, bytes);
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const e of header.entries) out.set(e.name, { shape: e.shape, data: decodeTensorF32(header, bytes, e) });
  return out;
}

export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/**
 * A safetensors file of F32 tensors, in the given order. `metadata` goes to "__metadata__" after
 * `format: "pt"` (what Hugging Face loaders expect). The JSON header is padded with spaces so the
 * data section starts at a multiple of 8 bytes, as the reference implementation does.
 */
export function safetensorsBytes(tensors: readonly NamedTensor[], metadata: Record<string, string> = {}): Buffer {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', ...metadata } };
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new TypeError(`safetensors metadata value for key ${JSON.stringify(k)} must be a string, found ${typeof v}`);
  }
  let offset = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__' || Object.hasOwn(header, t.name)) {
      throw new Error(`safetensors: tensor name ${JSON.stringify(t.name)} is reserved or given twice`);
    }
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) throw new Error(`${t.name}: shape [${t.shape}] has ${n} elements, data has ${t.data.length}`);
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + 4 * n] };
    offset += 4 * n;
  }
  let json = JSON.stringify(header);
  while ((8 + Buffer.byteLength(json)) % 8 !== 0) json += ' ';
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let pos = 8 + headerBytes.length;
  for (const t of tensors) {
    // Little-endian float32, whatever the host (Float32Array is host-endian).
    for (let i = 0; i < t.data.length; i++) out.writeFloatLE(t.data[i]!, pos + 4 * i);
    pos += 4 * t.data.length;
  }
  return out;
}

/**
 * Write `safetensorsBytes(tensors, metadata)` to `path` atomically: a temporary file in the same
 * directory, flushed, then renamed over `path`, so a crash mid-write leaves the previous file.
 */
export function writeSafetensors(path: string, tensors: readonly NamedTensor[], metadata: Record<string, string> = {}): void {
  writeFileAtomic(path, safetensorsBytes(tensors, metadata));
}
