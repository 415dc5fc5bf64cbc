/**
 * Minimal safetensors writer (F32 only): 8-byte little-endian header length, the JSON header
 * (padded with spaces to a multiple of 8 bytes, as the reference implementation does), then
 * the tensors' bytes back to back in header order.
 */
import { writeFileSync } from 'node:fs';

export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

export function safetensorsBytes(tensors: readonly NamedTensor[], metadata: Record<string, string> = {}): Buffer {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', ...metadata } };
  let offset = 0;
  for (const t of tensors) {
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

export function writeSafetensors(path: string, tensors: readonly NamedTensor[], metadata: Record<string, string> = {}): void {
  writeFileSync(path, safetensorsBytes(tensors, metadata));
}

/** Read an F32 safetensors file back (for tests and for resuming from a shipped model). */
export function readSafetensorsF32(bytes: Buffer): Map<string, { shape: number[]; data: Float32Array }> {
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (e.dtype !== 'F32') throw new Error(`${name}: dtype ${e.dtype}, only F32 is read here`);
    const [b, en] = e.data_offsets;
    const data = new Float32Array((en - b) / 4);
    for (let i = 0; i < data.length; i++) data[i] = bytes.readFloatLE(8 + n + b + 4 * i);
    out.set(name, { shape: e.shape, data });
  }
  return out;
}
