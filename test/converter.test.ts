/**
 * Weights converter: fixture conversions (values checked against the fixtures and against
 * TF.js's own manifest decoder), float16 rounding, refusals of corrupt checkpoints (each with its
 * own message and no output or temp dir left behind), the CLI and the progress reporter.
 *
 * Run: node --import tsx --test test/converter.test.ts
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { CheckpointError } from '../lib/errors.ts';
import { Progress, formatBytes, formatDuration } from '../lib/progress.ts';
import type { ProgressState } from '../lib/progress.ts';
import { convertCli } from '../weights-converter/cli.ts';
import { convertCheckpoint } from '../weights-converter/convert.ts';
import type { ConvertedModelJson, ConvertOptions, ConvertReport, StorageDtype } from '../weights-converter/convert.ts';
import { floatBitsToHalfBits, halfBitsToFloatBits } from '../lib/half.ts';
import {
  addTensor,
  BF16_FILE,
  BF16_FIXTURE,
  copyFixture,
  editConfig,
  editIndex,
  entries,
  F32_SHARDED_FIXTURE,
  makeTempDir,
  overlapTensors,
  pokeBits,
  pokeFloat32,
  readSafetensors,
  removeTensor,
  rewriteSafetensors,
  setDtype,
  setHeaderLength,
  setShape,
  SHARD1,
  SHARD2,
  tensorValues,
  truncateFile,
} from './helpers/corrupt-checkpoints.ts';

// ---- helpers ---------------------------------------------------------------------------------

/** float16 bits → number by plain arithmetic (independent of the converter's bit tricks). */
function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

interface Converted {
  json: ConvertedModelJson;
  /** One ArrayBuffer per group: the concatenation of its shard files. */
  groups: ArrayBuffer[];
  /** Decoded float32 values per tensor. */
  values: Map<string, Float32Array>;
}

/** Read a converted model by following model.json, decoding the shards ourselves. */
async function readConverted(dir: string): Promise<Converted> {
  const json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8')) as ConvertedModelJson;
  const groups: ArrayBuffer[] = [];
  const values = new Map<string, Float32Array>();
  for (const group of json.weightsManifest) {
    const parts = await Promise.all(group.paths.map((p) => readFile(join(dir, p))));
    const buf = Buffer.concat(parts);
    const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
    groups.push(ab);
    let off = 0;
    for (const w of group.weights) {
      const numel = w.shape.reduce((a, b) => a * b, 1);
      const out = new Float32Array(numel);
      if (w.quantization?.dtype === 'float16') {
        for (let i = 0; i < numel; i++) out[i] = halfToNumber(buf.readUInt16LE(off + 2 * i));
        off += 2 * numel;
      } else {
        for (let i = 0; i < numel; i++) out[i] = buf.readFloatLE(off + 4 * i);
        off += 4 * numel;
      }
      values.set(w.name, out);
    }
    assert.equal(off, buf.length, `group ${group.paths[0]}: weights cover the group's bytes exactly`);
  }
  return { json, groups, values };
}

/** All tensors of the f32-sharded fixture, decoded straight from its files. */
async function fixtureValues(): Promise<Map<string, Float32Array>> {
  const m = new Map<string, Float32Array>();
  for (const f of [SHARD1, SHARD2]) {
    const st = await readSafetensors(join(F32_SHARDED_FIXTURE, f));
    for (const [name] of entries(st)) m.set(name, tensorValues(st, name));
  }
  return m;
}

function bitsOf(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

/** No `out` and no `out.tmp-*` / `out.old-*` next to it. */
async function assertNothingLeft(parent: string, outName = 'out'): Promise<void> {
  const left = (await readdir(parent)).filter((n) => n === outName || n.startsWith(`${outName}.`));
  assert.deepEqual(left, [], `left behind in ${parent}: ${left.join(', ')}`);
}

const tempDirs: string[] = [];
async function scratch(): Promise<string> {
  const d = await makeTempDir();
  tempDirs.push(d);
  return d;
}
after(async () => {
  for (const d of tempDirs) await rm(d, { recursive: true, force: true });
});

async function convertTo(parent: string, inputDir: string, opts: Partial<ConvertOptions> = {}): Promise<{ report: ConvertReport; out: string }> {
  const out = join(parent, `out-${Math.random().toString(36).slice(2, 8)}`);
  const report = await convertCheckpoint({ inputDir, outputDir: out, ...opts });
  return { report, out };
}

/**
 * Convert a corrupted checkpoint and expect a CheckpointError whose message matches `message`;
 * then check nothing was left next to the output dir.
 */
async function expectRefusal(ckptParent: string, inputDir: string, message: RegExp, opts: Partial<ConvertOptions> = {}): Promise<CheckpointError> {
  const outParent = join(ckptParent, 'outputs');
  await mkdir(outParent, { recursive: true });
  let caught: unknown;
  try {
    await convertCheckpoint({ inputDir, outputDir: join(outParent, 'out'), ...opts });
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof CheckpointError, `expected a CheckpointError, got ${String(caught)}`);
  assert.match(caught.message, message);
  await assertNothingLeft(outParent);
  return caught;
}

// ---- conversions of the fixtures ---------------------------------------------------------------

describe('converting the fixtures', () => {
  let dir: string;
  let ref: Map<string, Float32Array>;
  const converted = new Map<string, { report: ConvertReport; out: string; data: Converted }>();

  before(async () => {
    dir = await scratch();
    ref = await fixtureValues();
    for (const [key, input, dtype] of [
      ['bf16-f32', BF16_FIXTURE, 'float32'],
      ['sharded-f32', F32_SHARDED_FIXTURE, 'float32'],
      ['bf16-f16', BF16_FIXTURE, 'float16'],
      ['sharded-f16', F32_SHARDED_FIXTURE, 'float16'],
    ] as [string, string, StorageDtype][]) {
      const { report, out } = await convertTo(dir, input, { dtype });
      converted.set(key, { report, out, data: await readConverted(out) });
    }
  });

  test('reports and model.json describe the conversion', async () => {
    const { report, out, data } = converted.get('bf16-f32')!;
    assert.equal(report.tensors, 30);
    assert.equal(report.storageDtype, 'float32');
    assert.deepEqual(report.sourceDtypes, ['BF16']);
    assert.equal(report.bytesRead, 349568); // every tensor byte of the bf16 file
    assert.ok(report.peakRssBytes > 0);
    const j = data.json;
    assert.equal(j.format, 'rsn-llama-tfjs');
    assert.equal(j.formatVersion, 2);
    assert.equal(j.storageDtype, 'float32');
    assert.equal(j.source.dir, BF16_FIXTURE.replace(/\/$/, ''));
    assert.deepEqual(j.source.files, ['model.safetensors']);
    assert.deepEqual(j.source.dtypes, ['BF16']);
    assert.equal(j.converter, 'rsn-weights-converter 1');
    assert.ok(!Number.isNaN(Date.parse(j.convertedAt)));
    // Group layout: group 0 = embed, norm, lm_head; group l+1 = layer l's 9 tensors.
    assert.equal(j.weightsManifest.length, 4);
    assert.deepEqual(j.weightsManifest[0].weights.map((w) => w.name), ['model.embed_tokens.weight', 'model.norm.weight', 'lm_head.weight']);
    assert.deepEqual(j.weightsManifest[2].weights.map((w) => w.name), [
      'model.layers.1.input_layernorm.weight',
      'model.layers.1.self_attn.q_proj.weight',
      'model.layers.1.self_attn.k_proj.weight',
      'model.layers.1.self_attn.v_proj.weight',
      'model.layers.1.self_attn.o_proj.weight',
      'model.layers.1.post_attention_layernorm.weight',
      'model.layers.1.mlp.gate_proj.weight',
      'model.layers.1.mlp.up_proj.weight',
      'model.layers.1.mlp.down_proj.weight',
    ]);
    assert.deepEqual(j.weightsManifest[1].paths, ['group1-shard1of1.bin']);
    const k = j.weightsManifest[1].weights[2];
    assert.deepEqual(k.shape, [32, 64]); // GQA: 4 kv heads × 8, HF [out, in] layout kept
    assert.equal(k.dtype, 'float32');
    assert.equal(k.quantization, undefined);
    // config.json copied byte for byte.
    assert.deepEqual(await readFile(join(out, 'config.json')), await readFile(join(BF16_FIXTURE, 'config.json')));
    // Every other file of the output, with its size and sha256 counted here.
    const files = (await readdir(out)).filter((n) => n !== 'model.json').sort();
    assert.deepEqual(Object.keys(j.files).sort(), files);
    for (const n of files) {
      const bytes = await readFile(join(out, n));
      assert.deepEqual(j.files[n], { size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') }, n);
    }
    assert.match(String((j as unknown as Record<string, unknown>)['checksum']), /^[0-9a-f]{64}$/);
    const f16 = converted.get('sharded-f16')!.data.json;
    assert.deepEqual(f16.source.files, [SHARD1, SHARD2]);
    assert.deepEqual(f16.weightsManifest[3].weights[0].quantization, { dtype: 'float16', original_dtype: 'float32' });
    assert.equal(f16.weightsManifest[3].weights[0].dtype, 'float32');
  });

  test('bf16 → float32 equals the f32-sharded fixture bit for bit, and both equal the source values', () => {
    const a = converted.get('bf16-f32')!.data.values;
    const b = converted.get('sharded-f32')!.data.values;
    assert.equal(a.size, 30);
    assert.deepEqual([...a.keys()].sort(), [...ref.keys()].sort());
    for (const [name, want] of ref) {
      assert.deepEqual(bitsOf(a.get(name)!), bitsOf(want), name);
      assert.deepEqual(bitsOf(b.get(name)!), bitsOf(want), name);
    }
  });

  test('TF.js decodeWeights reads our manifest and shards with the same values (float32 and float16)', async () => {
    await tf.setBackend('cpu');
    for (const key of ['bf16-f32', 'sharded-f16']) {
      const { data } = converted.get(key)!;
      data.json.weightsManifest.forEach((group, g) => {
        const tensors = tf.io.decodeWeights(data.groups[g], group.weights);
        try {
          assert.deepEqual(Object.keys(tensors), group.weights.map((w) => w.name));
          for (const w of group.weights) {
            const t = tensors[w.name];
            assert.deepEqual(t.shape, w.shape);
            assert.equal(t.dtype, 'float32');
            assert.deepEqual(bitsOf(t.dataSync() as Float32Array), bitsOf(data.values.get(w.name)!), `${key} ${w.name}`);
          }
        } finally {
          tf.dispose(Object.values(tensors));
        }
      });
    }
  });

  test('float16 storage: every value within half-precision rounding of the float32 value', () => {
    for (const key of ['bf16-f16', 'sharded-f16']) {
      const { report, data } = converted.get(key)!;
      assert.equal(report.storageDtype, 'float16');
      let checked = 0;
      for (const [name, want] of ref) {
        const got = data.values.get(name)!;
        for (let i = 0; i < want.length; i++) {
          const x = want[i];
          const err = Math.abs(got[i] - x);
          // normal halves: relative 2^-11; subnormal range: half an ulp of 2^-24
          const tol = Math.abs(x) >= 2 ** -14 ? Math.abs(x) * 2 ** -11 : 2 ** -25;
          assert.ok(err <= tol, `${key} ${name}[${i}]: ${got[i]} vs ${x}`);
          checked++;
        }
      }
      assert.equal(checked, 699136 / 4);
    }
    // Same values in, same halves out.
    const a = converted.get('bf16-f16')!.data.values;
    const b = converted.get('sharded-f16')!.data.values;
    for (const [name, v] of a) assert.deepEqual(bitsOf(v), bitsOf(b.get(name)!), name);
    assert.equal(converted.get('sharded-f16')!.report.bytesWritten < converted.get('sharded-f32')!.report.bytesWritten, true);
  });
});

describe('output layout', () => {
  test('small shardBytes: tensors straddle shard files, each ≤ shardBytes, values unchanged', async () => {
    const dir = await scratch();
    const { out } = await convertTo(dir, BF16_FIXTURE, { shardBytes: 10_000 });
    const data = await readConverted(out);
    const g1 = data.json.weightsManifest[1].paths;
    assert.equal(g1.length, Math.ceil(181_760 / 10_000)); // a layer: 90,880 bf16 bytes → 181,760 f32
    assert.equal(g1[0], `group1-shard1of${g1.length}.bin`);
    for (const group of data.json.weightsManifest) {
      for (const p of group.paths) assert.ok((await stat(join(out, p))).size <= 10_000);
    }
    const ref = await fixtureValues();
    for (const [name, want] of ref) assert.deepEqual(bitsOf(data.values.get(name)!), bitsOf(want), name);
  });

  test('small read chunks (values straddle chunk edges) give the same bytes, float32 and float16', async () => {
    const dir = await scratch();
    for (const dtype of ['float32', 'float16'] as const) {
      const a = await readConverted((await convertTo(dir, BF16_FIXTURE, { dtype })).out);
      const b = await readConverted((await convertTo(dir, BF16_FIXTURE, { dtype, chunkElements: 999, shardBytes: 7_777 })).out);
      for (const [name, v] of a.values) assert.deepEqual(bitsOf(b.values.get(name)!), bitsOf(v), `${dtype} ${name}`);
    }
  });

  test('NaN position is reported as a flat index across chunks', async () => {
    const dir = await scratch();
    const ckpt = await copyFixture(BF16_FIXTURE, dir);
    await pokeBits(join(ckpt, BF16_FILE), 'lm_head.weight', [12_345], 0x7fc0);
    await expectRefusal(dir, ckpt, /tensor lm_head\.weight contains 1 NaN value \(of 19200; first at flat index 12345\)/, { chunkElements: 1000 });
  });

  test('tokenizer files are copied when present', async () => {
    const dir = await scratch();
    const ckpt = await copyFixture(BF16_FIXTURE, dir);
    await writeFile(join(ckpt, 'tokenizer.json'), '{"model":{}}');
    await writeFile(join(ckpt, 'tokenizer_config.json'), '{"legacy":true}');
    const { out } = await convertTo(dir, ckpt);
    assert.equal(await readFile(join(out, 'tokenizer.json'), 'utf8'), '{"model":{}}');
    assert.equal(await readFile(join(out, 'tokenizer_config.json'), 'utf8'), '{"legacy":true}');
  });

  test('tied embeddings: a stored lm_head.weight is skipped, not an error', async () => {
    const dir = await scratch();
    const ckpt = await copyFixture(BF16_FIXTURE, dir);
    await editConfig(ckpt, (c) => {
      c['tie_word_embeddings'] = true;
    });
    const { report, out } = await convertTo(dir, ckpt);
    assert.equal(report.tensors, 29);
    const data = await readConverted(out);
    assert.equal(data.values.has('lm_head.weight'), false);
    assert.deepEqual(data.json.weightsManifest[0].weights.map((w) => w.name), ['model.embed_tokens.weight', 'model.norm.weight']);
  });

  test('rotary inv_freq buffers are ignored', async () => {
    const dir = await scratch();
    const ckpt = await copyFixture(BF16_FIXTURE, dir);
    await addTensor(join(ckpt, BF16_FILE), 'model.layers.0.self_attn.rotary_emb.inv_freq', 'F32', [1, 0.5, 0.25, 0.125]);
    const { report } = await convertTo(dir, ckpt);
    assert.equal(report.tensors, 30);
  });

  test('force replaces a non-empty output dir only after success', async () => {
    const dir = await scratch();
    const out = join(dir, 'out');
    await mkdir(out);
    await writeFile(join(out, 'old.txt'), 'old');
    await convertCheckpoint({ inputDir: BF16_FIXTURE, outputDir: out, force: true });
    assert.deepEqual((await readdir(out)).includes('old.txt'), false);
    assert.ok((await readdir(out)).includes('model.json'));
    assert.deepEqual((await readdir(dir)).sort(), ['out']);
    // A failing forced conversion leaves the existing output untouched.
    const bad = await copyFixture(BF16_FIXTURE, dir, 'bad');
    await removeTensor(join(bad, BF16_FILE), 'model.norm.weight');
    await assert.rejects(convertCheckpoint({ inputDir: bad, outputDir: out, force: true }), /missing tensor model\.norm\.weight/);
    assert.ok((await readdir(out)).includes('model.json'));
    assert.deepEqual((await readdir(dir)).sort(), ['bad', 'out']);
  });

  test('an empty existing output dir is fine without force', async () => {
    const dir = await scratch();
    const out = join(dir, 'out');
    await mkdir(out);
    await convertCheckpoint({ inputDir: BF16_FIXTURE, outputDir: out });
    assert.ok((await readdir(out)).includes('model.json'));
  });

  test('onProgress reaches bytesTotal', async () => {
    const dir = await scratch();
    const seen: number[] = [];
    let total = 0;
    await convertTo(dir, F32_SHARDED_FIXTURE, {
      onProgress: (p) => {
        seen.push(p.bytesDone);
        total = p.bytesTotal;
        assert.ok(p.tensor.length > 0);
      },
    });
    assert.equal(total, 699136);
    assert.equal(seen.at(-1), total);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i] > seen[i - 1]);
  });
});

// ---- refusals ------------------------------------------------------------------------------------

describe('refusals (specific message, no output dir, no temp dir)', () => {
  const bf16 = async (): Promise<{ dir: string; ckpt: string; file: string }> => {
    const dir = await scratch();
    const ckpt = await copyFixture(BF16_FIXTURE, dir);
    return { dir, ckpt, file: join(ckpt, BF16_FILE) };
  };
  const sharded = async (): Promise<{ dir: string; ckpt: string }> => {
    const dir = await scratch();
    return { dir, ckpt: await copyFixture(F32_SHARDED_FIXTURE, dir) };
  };

  test('file shorter than the 8-byte prefix', async () => {
    const { dir, ckpt, file } = await bf16();
    await truncateFile(file, 5);
    await expectRefusal(dir, ckpt, /model\.safetensors: file is truncated: 5 bytes, shorter than the 8-byte/);
  });

  test('file truncated inside the data section', async () => {
    const { dir, ckpt, file } = await bf16();
    await truncateFile(file, 200_000);
    const e = await expectRefusal(dir, ckpt, /model\.safetensors: tensor \S+: data_offsets \[\d+, \d+\] run past the data section/);
    assert.ok(e.file?.endsWith(BF16_FILE));
  });

  test('header length past the end of the file', async () => {
    const { dir, ckpt, file } = await bf16();
    const size = (await stat(file)).size;
    await setHeaderLength(file, BigInt(size));
    await expectRefusal(dir, ckpt, new RegExp(`file is truncated: header length ${size} needs ${size + 8} bytes but the file has ${size}`));
  });

  test('absurd header length', async () => {
    const { dir, ckpt, file } = await bf16();
    await setHeaderLength(file, 1n << 40n);
    await expectRefusal(dir, ckpt, /header length 1099511627776 bytes is above the 100000000-byte limit/);
  });

  test('header that is not JSON', async () => {
    const { dir, ckpt, file } = await bf16();
    const buf = await readFile(file);
    buf.write('#', 8); // replace the opening brace
    await writeFile(file, buf);
    await expectRefusal(dir, ckpt, /model\.safetensors: header is not valid JSON/);
  });

  test('entry without data_offsets', async () => {
    const { dir, ckpt, file } = await bf16();
    await rewriteSafetensors(file, (st) => {
      delete (st.header['model.norm.weight'] as Record<string, unknown>)['data_offsets'];
    });
    await expectRefusal(dir, ckpt, /header entry for tensor model\.norm\.weight lacks "data_offsets"/);
  });

  test('overlapping tensors', async () => {
    const { dir, ckpt, file } = await bf16();
    await overlapTensors(file, 'model.embed_tokens.weight', 'model.layers.0.input_layernorm.weight');
    await expectRefusal(dir, ckpt, /tensors model\.embed_tokens\.weight \(data_offsets \[38400, 76800\]\) and model\.layers\.0\.input_layernorm\.weight \(data_offsets \[38402, 38530\]\) overlap/);
  });

  test('byte length not matching the shape', async () => {
    const { dir, ckpt, file } = await bf16();
    await setShape(file, 'model.norm.weight', [65]);
    await expectRefusal(dir, ckpt, /tensor model\.norm\.weight: byte length 128 .* ≠ 65 elements of shape \[65\] × 2 bytes \(BF16\) = 130/);
  });

  test('unknown dtype', async () => {
    const { dir, ckpt, file } = await bf16();
    await setDtype(file, 'model.layers.1.mlp.up_proj.weight', 'Q4_K');
    await expectRefusal(dir, ckpt, new RegExp(`unsupported dtype Q4_K for tensor model\\.layers\\.1\\.mlp\\.up_proj\\.weight in file ${file.replace(/[.\\/]/g, '\\$&')}; expected F32, F16 or BF16`));
  });

  test('a safetensors dtype we do not convert (I16)', async () => {
    const { dir, ckpt, file } = await bf16();
    await setDtype(file, 'model.norm.weight', 'I16');
    await expectRefusal(dir, ckpt, /unsupported dtype I16 for tensor model\.norm\.weight in file .*model\.safetensors; expected F32, F16 or BF16/);
  });

  test('missing tensor', async () => {
    const { dir, ckpt, file } = await bf16();
    await removeTensor(file, 'model.layers.2.self_attn.v_proj.weight');
    const e = await expectRefusal(dir, ckpt, /missing tensor model\.layers\.2\.self_attn\.v_proj\.weight \(searched model\.safetensors\)/);
    assert.equal(e.tensor, 'model.layers.2.self_attn.v_proj.weight');
  });

  test('wrong shape', async () => {
    const { dir, ckpt, file } = await bf16();
    await setShape(file, 'model.layers.0.self_attn.q_proj.weight', [32, 128]); // same byte length
    await expectRefusal(dir, ckpt, /tensor model\.layers\.0\.self_attn\.q_proj\.weight has shape \[32, 128\], expected \[64, 64\] from config\.json/);
  });

  test('unexpected tensor', async () => {
    const { dir, ckpt, file } = await bf16();
    await addTensor(file, 'model.layers.0.mlp.extra_proj.weight', 'BF16', [1, 2, 3]);
    await expectRefusal(dir, ckpt, /unexpected tensor model\.layers\.0\.mlp\.extra_proj\.weight; it is not part of a Llama checkpoint with this config\.json \(3 layers/);
  });

  test('config with fewer layers than the weights: the extra layer is unexpected', async () => {
    const { dir, ckpt } = await bf16();
    await editConfig(ckpt, (c) => {
      c['num_hidden_layers'] = 2;
    });
    await expectRefusal(dir, ckpt, /unexpected tensor model\.layers\.2\./);
  });

  test('shard path escaping the checkpoint dir (../x.safetensors)', async () => {
    const { dir, ckpt } = await sharded();
    // Put a valid shard there so that only the escape is wrong.
    await writeFile(join(dir, 'x.safetensors'), await readFile(join(ckpt, SHARD2)));
    await editIndex(ckpt, (idx) => {
      for (const [k, v] of Object.entries(idx.weight_map)) if (v === SHARD2) idx.weight_map[k] = '../x.safetensors';
    });
    await expectRefusal(dir, ckpt, /shard file "\.\.\/x\.safetensors" \(for tensor \S+\) escapes the checkpoint directory/);
  });

  test('absolute shard path', async () => {
    const { dir, ckpt } = await sharded();
    await editIndex(ckpt, (idx) => {
      idx.weight_map['model.norm.weight'] = join(ckpt, SHARD2);
    });
    await expectRefusal(dir, ckpt, /shard file ".*" \(for tensor model\.norm\.weight\) is an absolute path/);
  });

  test('shard symlink resolving outside the checkpoint dir', async () => {
    const { dir, ckpt } = await sharded();
    await writeFile(join(dir, 'elsewhere.safetensors'), await readFile(join(ckpt, SHARD2)));
    await rm(join(ckpt, SHARD2));
    await symlink(join(dir, 'elsewhere.safetensors'), join(ckpt, SHARD2));
    await expectRefusal(dir, ckpt, /is a symlink resolving to .*elsewhere\.safetensors, outside/);
  });

  test('shard listed in the index but missing on disk', async () => {
    const { dir, ckpt } = await sharded();
    await rm(join(ckpt, SHARD2));
    await expectRefusal(dir, ckpt, /shard file model-00002-of-00002\.safetensors is listed for \d+ tensor\(s\) .* but is missing/);
  });

  test('index without weight_map', async () => {
    const { dir, ckpt } = await sharded();
    await editIndex(ckpt, (idx) => {
      delete (idx as Record<string, unknown>)['weight_map'];
    });
    await expectRefusal(dir, ckpt, /"weight_map" is missing or not an object/);
  });

  test('the same tensor in two shards', async () => {
    const { dir, ckpt } = await sharded();
    await addTensor(join(ckpt, SHARD2), 'model.norm.weight_dup', 'F32', [0]);
    await rewriteSafetensors(join(ckpt, SHARD2), (st) => {
      // rename the fresh tensor to one that shard 1 already holds
      st.header['model.layers.0.input_layernorm.weight'] = { ...(st.header['model.norm.weight_dup'] as object), shape: [1] };
      delete st.header['model.norm.weight_dup'];
    });
    await expectRefusal(dir, ckpt, /tensor model\.layers\.0\.input_layernorm\.weight appears in two shards: .*model-00001-of-00002\.safetensors and .*model-00002-of-00002\.safetensors/);
  });

  test('neither model.safetensors nor an index', async () => {
    const { dir, ckpt, file } = await bf16();
    await rm(file);
    await expectRefusal(dir, ckpt, /no weights found; expected model\.safetensors, or model\.safetensors\.index\.json plus the shard files it lists/);
  });

  test('NaN in a tensor (found while streaming; partial output is removed)', async () => {
    const { dir, ckpt, file } = await bf16();
    // in the last layer, so that earlier groups have already been written to the temp dir
    await pokeBits(file, 'model.layers.2.mlp.down_proj.weight', [5, 6, 700], 0x7fc0);
    await pokeBits(file, 'model.layers.2.mlp.down_proj.weight', [9], 0xff80); // -Inf
    const e = await expectRefusal(dir, ckpt, /model\.safetensors: tensor model\.layers\.2\.mlp\.down_proj\.weight contains 3 NaN and 1 ±Inf values \(of 11008; first at flat index 5\)/);
    assert.equal(e.tensor, 'model.layers.2.mlp.down_proj.weight');
  });

  test('float16 overflow is refused for float16 storage but fine for float32', async () => {
    const { dir, ckpt } = await sharded();
    await pokeFloat32(join(ckpt, SHARD2), 'model.layers.2.mlp.up_proj.weight', 3, 70000);
    await expectRefusal(dir, ckpt, /tensor model\.layers\.2\.mlp\.up_proj\.weight has 1 value outside the float16 range \(\|x\| > 65504; first 70000 at flat index 3\); store float32 instead \(--dtype float32\)/, { dtype: 'float16' });
    const { out } = await convertTo(dir, ckpt, { dtype: 'float32' });
    assert.equal((await readConverted(out)).values.get('model.layers.2.mlp.up_proj.weight')![3], 70000);
  });

  test('non-empty output dir without force (existing content untouched)', async () => {
    const dir = await scratch();
    const out = join(dir, 'out');
    await mkdir(out);
    await writeFile(join(out, 'keep.txt'), 'mine');
    await assert.rejects(
      convertCheckpoint({ inputDir: BF16_FIXTURE, outputDir: out }),
      (e: unknown) => e instanceof CheckpointError && /output directory .*out exists and is not empty \(1 entry\); pass --force/.test(e.message),
    );
    assert.deepEqual(await readdir(out), ['keep.txt']);
    assert.deepEqual(await readdir(dir), ['out']);
  });

  test('output dir that would replace the input', async () => {
    const { dir, ckpt } = await bf16();
    await assert.rejects(convertCheckpoint({ inputDir: ckpt, outputDir: ckpt, force: true }), /would replace the input checkpoint/);
    await assert.rejects(convertCheckpoint({ inputDir: ckpt, outputDir: dir, force: true }), /would replace the input checkpoint/);
    assert.ok((await readdir(ckpt)).includes(BF16_FILE));
  });

  test('abort signal removes the temp dir', async () => {
    const dir = await scratch();
    const ac = new AbortController();
    await assert.rejects(
      convertCheckpoint({
        inputDir: BF16_FIXTURE,
        outputDir: join(dir, 'out'),
        signal: ac.signal,
        onProgress: () => ac.abort(new Error('stop')),
      }),
      /stop/,
    );
    await assertNothingLeft(dir);
  });
});

// ---- float16 rounding ---------------------------------------------------------------------------

describe('float16 conversion', () => {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const bits = (x: number): number => {
    f[0] = x;
    return u[0];
  };

  test('every half round-trips through float32 exactly', () => {
    for (let h = 0; h < 65536; h++) {
      const fb = halfBitsToFloatBits(h);
      u[0] = fb;
      const x = f[0];
      const want = halfToNumber(h);
      if (Number.isNaN(want)) {
        assert.ok(Number.isNaN(x));
        assert.ok(Number.isNaN(halfToNumber(floatBitsToHalfBits(fb))));
      } else {
        assert.equal(x, want, `half 0x${h.toString(16)}`);
        assert.equal(floatBitsToHalfBits(fb), h, `half 0x${h.toString(16)}`);
      }
    }
  });

  test('float32 → half rounds to nearest, ties to even (random values incl. subnormals)', () => {
    let seed = 12345;
    const rand = (): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    for (let i = 0; i < 20000; i++) {
      const x = Math.fround((rand() - 0.5) * 2 ** (Math.floor(rand() * 44) - 28));
      const h = floatBitsToHalfBits(bits(x));
      const y = halfToNumber(h);
      const err = Math.abs(y - x);
      // neighbours of h on the same side of zero must not be closer
      for (const n of [h - 1, h + 1]) {
        if ((n & 0x7fff) > 0x7bff || (n & 0x8000) !== (h & 0x8000) || n < 0) continue;
        const e2 = Math.abs(halfToNumber(n) - x);
        assert.ok(err < e2 || (err === e2 && (h & 1) === 0), `x=${x}: got ${y}, neighbour ${halfToNumber(n)}`);
      }
    }
    // exact ties
    assert.equal(floatBitsToHalfBits(bits(1 + 2 ** -11)), 0x3c00); // tie → even (1.0)
    assert.equal(floatBitsToHalfBits(bits(1 + 3 * 2 ** -11)), 0x3c02); // tie → even (1 + 2^-9)
    assert.equal(floatBitsToHalfBits(bits(2 ** -25)), 0x0000); // half the smallest subnormal → 0
    assert.equal(floatBitsToHalfBits(bits(3 * 2 ** -25)), 0x0002);
    assert.equal(floatBitsToHalfBits(bits(65504)), 0x7bff);
    assert.equal(floatBitsToHalfBits(bits(65520)), 0x7c00);
    assert.equal(floatBitsToHalfBits(bits(-0)), 0x8000);
  });
});

// ---- CLI ------------------------------------------------------------------------------------------

function sink(isTTY = false): { stream: { write: (s: string) => boolean; isTTY: boolean }; text: () => string } {
  let buf = '';
  return {
    stream: {
      write: (s: string) => {
        buf += s;
        return true;
      },
      isTTY,
    },
    text: () => buf,
  };
}

describe('rsn convert CLI', () => {
  test('converts, prints progress lines and a summary, returns 0', async () => {
    const dir = await scratch();
    const out = sink();
    const err = sink(false);
    const code = await convertCli([F32_SHARDED_FIXTURE, join(dir, 'm'), '--dtype', 'float16', '--shard-mb', '0.05'], { stdout: out.stream, stderr: err.stream });
    assert.equal(code, 0, err.text());
    assert.match(out.text(), /converted 30 tensors \(F32 → float16\)/);
    const lines = err.text().trim().split('\n');
    assert.ok(lines.length >= 2 && lines.length <= 12, err.text());
    assert.match(lines.at(-1)!, /100\.0%/);
    assert.ok(!err.text().includes('\r'));
    const json = (await readConverted(join(dir, 'm'))).json;
    assert.equal(json.storageDtype, 'float16');
    assert.ok(json.weightsManifest[1].paths.length > 1);
  });

  test('errors print "error: <message>" without a stack and return 1 (2 for usage errors)', async () => {
    const dir = await scratch();
    await mkdir(join(dir, 'm'));
    await writeFile(join(dir, 'm', 'x'), '');
    const out = sink();
    const err = sink();
    assert.equal(await convertCli([BF16_FIXTURE, join(dir, 'm')], { stdout: out.stream, stderr: err.stream }), 1);
    assert.match(err.text(), /^error: output directory .* exists and is not empty/);
    assert.ok(!/\n\s+at /.test(err.text()), err.text());
    const err2 = sink();
    assert.equal(await convertCli([BF16_FIXTURE], { stdout: out.stream, stderr: err2.stream }), 2); // usage error
    assert.match(err2.text(), /^error: expected <hf-dir> and <out-dir>, found 1 argument\nusage: rsn convert/);
    const err3 = sink();
    assert.equal(await convertCli(['a', 'b', '--dtype', 'int8'], { stdout: out.stream, stderr: err3.stream }), 2);
    assert.match(err3.text(), /^error: --dtype must be float32 or float16/);
    for (const [mb, message] of [['0x10', /--shard-mb = "0x10": expected a decimal number/], ['1e2', /--shard-mb = "1e2"/], ['', /--shard-mb = "": expected/], ['0', /--shard-mb must be a positive number of MiB, found 0/]] as const) {
      const e = sink();
      assert.equal(await convertCli([BF16_FIXTURE, join(dir, 'n'), `--shard-mb=${mb}`], { stdout: out.stream, stderr: e.stream }), 2, mb);
      assert.match(e.text(), message);
    }
    const help = sink();
    assert.equal(await convertCli(['--help'], { stdout: help.stream, stderr: err.stream }), 0);
    assert.match(help.text(), /usage: rsn convert <hf-dir> <out-dir>/);
  });
});

// ---- progress reporter -------------------------------------------------------------------------------

describe('lib/progress', () => {
  test('line mode prints one line per 10 % and a final line; rate and ETA from the clock', () => {
    let now = 0;
    const s = sink(false);
    const states: ProgressState[] = [];
    const p = new Progress({ total: 1000, unit: 'items', itemName: 'prompts', label: 'collect', stream: s.stream, now: () => now, onUpdate: (st) => states.push(st) });
    for (let i = 1; i <= 100; i++) {
      now += 100; // 10 items per 100 ms = 100 items/s
      p.update(i * 10);
    }
    p.finish();
    const lines = s.text().trim().split('\n');
    assert.equal(lines.length, 10); // 10 %, …, 90 %, final
    assert.match(lines[0], /^collect  10\.0%  100\/1000 prompts  100\.0 prompts\/s  ETA 0:09$/);
    assert.match(lines.at(-1)!, /^collect 100\.0%  1000\/1000 prompts  100\.0 prompts\/s  in 0:10$/);
    assert.equal(states.length, 101);
    assert.equal(states[49].etaSeconds, 5);
  });

  test('tty mode redraws with \\r, throttled; silent prints nothing; bytes format', () => {
    let now = 0;
    const s = sink(true);
    const p = new Progress({ total: 4 * 1024 ** 3, unit: 'bytes', stream: s.stream, now: () => now, minIntervalMs: 100 });
    for (let i = 1; i <= 40; i++) {
      now += 50;
      p.update(i * 0.1 * 1024 ** 3, `tensor${i}`);
    }
    p.finish();
    const draws = s.text().split('\r').length - 1;
    assert.ok(draws >= 19 && draws <= 22, `draws: ${draws}`);
    assert.match(s.text(), /\[#+\.*\] +\d+\.\d%  [\d.]+ GiB\/4\.00 GiB  [\d.]+ GiB\/s  ETA \d+:\d\d  tensor\d+/);
    assert.ok(s.text().endsWith('\n'));
    const quiet = sink(true);
    const q = new Progress({ total: 10, stream: quiet.stream, silent: true });
    q.update(5);
    q.finish();
    assert.equal(quiet.text(), '');
    assert.equal(formatBytes(1536), '1.50 KiB');
    assert.equal(formatDuration(3725), '1:02:05');
    assert.equal(formatDuration(null), '?');
  });
});
