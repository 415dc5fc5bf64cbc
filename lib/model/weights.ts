/**
 * Reads the project's converted-model format (weights-converter/README.md): a TF.js weights
 * manifest in model.json whose groups are [embeddings/norm/head] and then one group per decoder
 * layer, so one layer can be read without touching the others.
 */
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { CheckpointError } from '../errors.ts';
import { halfBitsToFloatBits } from '../../weights-converter/numeric.ts';

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
  [extra: string]: unknown;
}

interface WeightLocation {
  group: number;
  /** Byte offset inside the group's concatenated shards. */
  offset: number;
  byteLength: number;
  shape: number[];
  float16: boolean;
}

export class WeightStore {
  readonly manifest: ModelManifest;
  private readonly locations = new Map<string, WeightLocation>();
  /** Per group: shard file paths and their sizes, for offset → file lookups. */
  private readonly shards: { path: string; size: number }[][] = [];

  constructor(readonly dir: string) {
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
    const m = raw as Partial<ModelManifest>;
    if (m.format !== 'rsn-llama-tfjs' || !Array.isArray(m.weightsManifest)) {
      throw new CheckpointError(`${file}: expected "format": "rsn-llama-tfjs" with a "weightsManifest" array`, file);
    }
    this.manifest = m as ModelManifest;
    this.manifest.weightsManifest.forEach((g, gi) => {
      const files = g.paths.map((p) => {
        if (p.includes('/') || p.includes('\\') || p.startsWith('.')) {
          throw new CheckpointError(`${file}: shard path "${p}" must be a plain file name inside the model directory`, file);
        }
        const path = join(dir, p);
        if (!existsSync(path)) throw new CheckpointError(`${file}: shard ${p} (group ${gi}) is missing`, path);
        const fd = openSync(path, 'r');
        const size = fstatSync(fd).size;
        closeSync(fd);
        return { path, size };
      });
      this.shards.push(files);
      const groupBytes = files.reduce((a, f) => a + f.size, 0);
      let offset = 0;
      for (const w of g.weights) {
        const float16 = w.quantization?.dtype === 'float16';
        if (w.dtype !== 'float32' || (w.quantization && !float16)) {
          throw new CheckpointError(`${file}: weight ${w.name} has dtype ${w.dtype}/${w.quantization?.dtype}; expected float32 or float16-quantized float32`, file, w.name);
        }
        const count = w.shape.reduce((a, b) => a * b, 1);
        const byteLength = count * (float16 ? 2 : 4);
        this.locations.set(w.name, { group: gi, offset, byteLength, shape: w.shape, float16 });
        offset += byteLength;
      }
      if (offset !== groupBytes) {
        throw new CheckpointError(`${file}: group ${gi} lists ${offset} bytes of weights but its shards hold ${groupBytes} bytes (truncated or mismatched shards)`, file);
      }
    });
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

  /** Read one weight as float32 (float16 storage is widened here). */
  read(name: string): Float32Array {
    const loc = this.location(name);
    return this.decode(loc, this.readBytes(loc));
  }

  /** Like read(), but the file reads run off the main thread (used to prefetch the next layer). */
  async readAsync(name: string): Promise<Float32Array> {
    const loc = this.location(name);
    const bytes = new Uint8Array(new ArrayBuffer(loc.byteLength));
    let groupOffset = loc.offset;
    let written = 0;
    for (const shard of this.shards[loc.group]!) {
      if (written === loc.byteLength) break;
      if (groupOffset >= shard.size) {
        groupOffset -= shard.size;
        continue;
      }
      const n = Math.min(loc.byteLength - written, shard.size - groupOffset);
      const fh = await open(shard.path, 'r');
      try {
        let done = 0;
        while (done < n) {
          const { bytesRead } = await fh.read(bytes, written + done, n - done, groupOffset + done);
          if (bytesRead === 0) throw new CheckpointError(`${shard.path}: unexpected end of file`, shard.path);
          done += bytesRead;
        }
      } finally {
        await fh.close();
      }
      written += n;
      groupOffset = 0;
    }
    return this.decode(loc, bytes);
  }

  private decode(loc: WeightLocation, bytes: Uint8Array): Float32Array {
    if (!loc.float16) return new Float32Array(bytes.buffer, bytes.byteOffset, loc.byteLength / 4);
    const half = new Uint16Array(bytes.buffer, bytes.byteOffset, loc.byteLength / 2);
    const out = new Float32Array(half.length);
    for (let i = 0; i < half.length; i++) out[i] = halfToFloat(half[i]!);
    return out;
  }

  private readBytes(loc: WeightLocation): Uint8Array {
    // Fresh, aligned buffer: Float32Array views need 4-byte alignment.
    const out = new Uint8Array(new ArrayBuffer(loc.byteLength));
    let remaining = loc.byteLength;
    let groupOffset = loc.offset;
    let written = 0;
    for (const shard of this.shards[loc.group]!) {
      if (remaining === 0) break;
      if (groupOffset >= shard.size) {
        groupOffset -= shard.size;
        continue;
      }
      const n = Math.min(remaining, shard.size - groupOffset);
      const fd = openSync(shard.path, 'r');
      try {
        let done = 0;
        while (done < n) {
          const r = readSync(fd, out, written + done, n - done, groupOffset + done);
          if (r === 0) throw new CheckpointError(`${shard.path}: unexpected end of file`, shard.path);
          done += r;
        }
      } finally {
        closeSync(fd);
      }
      written += n;
      remaining -= n;
      groupOffset = 0;
    }
    return out;
  }
}

const HALF_TABLE = (() => {
  // 64K-entry table: a lookup is much faster than bit-twiddling per value in JS.
  // Filled from the converter's exact bit-level conversion, so both agree on every half value.
  const t = new Float32Array(65536);
  const bits = new Uint32Array(t.buffer);
  for (let h = 0; h < 65536; h++) bits[h] = halfBitsToFloatBits(h);
  return t;
})();

export function halfToFloat(h: number): number {
  return HALF_TABLE[h]!;
}
