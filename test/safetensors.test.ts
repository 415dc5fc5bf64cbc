/**
 * lib/safetensors.ts against the format's definition (8-byte little-endian header length, JSON
 * header with data_offsets relative to the data section, data section starting 8-byte aligned,
 * little-endian values), and the organism's training checkpoint stored in that format.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointError } from '../lib/errors.ts';
import { TrainableLlama } from '../lib/organism/model.ts';
import { parseLlamaConfig } from '../lib/model/config.ts';
import { DEFAULT_TRAIN_OPTIONS, loadCheckpoint, saveCheckpoint, type Checkpoint } from '../lib/organism/train.ts';
import { readSafetensorsF32, readSafetensorsHeader, writeSafetensors } from '../lib/safetensors.ts';

const work = mkdtempSync(join(tmpdir(), 'rsn-safetensors-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** A file laid out by hand: header JSON as given (unpadded), then `data`. */
function handMade(header: Record<string, unknown>, data: number[]): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, Buffer.from(data)]);
}

describe('safetensors writer and reader', () => {
  const tensors = [
    { name: 'a.weight', shape: [2, 3], data: Float32Array.from([1, -2, 0.5, 3.25, -0, 1e-30]) },
    { name: 'b', shape: [], data: Float32Array.from([Math.PI]) },
    { name: 'c.bias', shape: [4], data: Float32Array.from([Infinity, -Infinity, 65504, -1.5]) },
  ];

  test('byte layout follows the format: length prefix, aligned JSON header, contiguous little-endian data', async () => {
    const file = join(work, 'layout.safetensors');
    writeSafetensors(file, tensors, { purpose: 'test' });
    assert.deepEqual(readdirSync(work).filter((f) => f.includes('layout')), ['layout.safetensors'], 'no temporary file left behind');
    const bytes = readFileSync(file);
    const n = Number(bytes.readBigUInt64LE(0));
    assert.equal((8 + n) % 8, 0, 'data section starts 8-byte aligned');
    const text = bytes.subarray(8, 8 + n).toString('utf8');
    assert.match(text, /^\{.*\} *$/s, 'JSON padded with trailing spaces only');
    const header = JSON.parse(text) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    assert.deepEqual(header['__metadata__'], { format: 'pt', purpose: 'test' });
    let offset = 0;
    for (const t of tensors) {
      const e = header[t.name]!;
      assert.equal(e.dtype, 'F32');
      assert.deepEqual(e.shape, t.shape);
      assert.deepEqual(e.data_offsets, [offset, offset + 4 * t.data.length], t.name);
      for (let i = 0; i < t.data.length; i++) {
        assert.ok(Object.is(bytes.readFloatLE(8 + n + offset + 4 * i), t.data[i]), `${t.name}[${i}]`);
      }
      offset += 4 * t.data.length;
    }
    assert.equal(bytes.length, 8 + n + offset, 'nothing after the last tensor');

    const parsed = await readSafetensorsHeader(file);
    assert.equal(parsed.dataStart, 8 + n);
    assert.deepEqual(parsed.metadata, { format: 'pt', purpose: 'test' });
    assert.deepEqual(
      parsed.entries.map((e) => [e.name, e.begin - parsed.dataStart, e.end - parsed.dataStart, e.numel]),
      tensors.map((t) => [t.name, header[t.name]!.data_offsets[0], header[t.name]!.data_offsets[1], t.data.length]),
    );
    const back = readSafetensorsF32(bytes, file);
    for (const t of tensors) {
      assert.deepEqual(back.get(t.name)!.shape, t.shape);
      assert.deepEqual(back.get(t.name)!.data, t.data);
    }
  });

  test('F16 and BF16 values are widened exactly', () => {
    // F16 0x3c00 = 1, 0xc000 = -2, 0x7bff = 65504; BF16 0x3f80 = 1, 0x4049 = 3.140625, 0xff80 = -inf.
    const bytes = handMade(
      { h: { dtype: 'F16', shape: [3], data_offsets: [0, 6] }, b: { dtype: 'BF16', shape: [3], data_offsets: [6, 12] } },
      [0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x80, 0x3f, 0x49, 0x40, 0x80, 0xff],
    );
    const got = readSafetensorsF32(bytes);
    assert.deepEqual([...got.get('h')!.data], [1, -2, 65504]);
    assert.deepEqual([...got.get('b')!.data], [1, 3.140625, -Infinity]);
  });

  test('bad files give errors naming the file', () => {
    const file = join(work, 'whole.safetensors');
    writeSafetensors(file, tensors);
    const bytes = readFileSync(file);
    assert.throws(() => readSafetensorsF32(bytes.subarray(0, bytes.length - 2), file), (e: unknown) => e instanceof CheckpointError && e.file === file && /run past the data section/.test(e.message));
    assert.throws(() => readSafetensorsF32(bytes.subarray(0, 5), file), { name: 'CheckpointError', message: `${file}: file is truncated: 5 bytes, shorter than the 8-byte safetensors header-length prefix` });
    assert.throws(() => readSafetensorsF32(bytes.subarray(0, 20), file), /header length \d+ needs \d+ bytes but the file has 20/);
    const i64 = handMade({ x: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, [1, 0, 0, 0, 0, 0, 0, 0]);
    assert.throws(() => readSafetensorsF32(i64, 'ints.safetensors'), /unsupported dtype I64 for tensor x in file ints\.safetensors/);
    assert.throws(() => writeSafetensors(join(work, 'dup.safetensors'), [tensors[1]!, tensors[1]!]), /given twice/);
    assert.throws(() => writeSafetensors(join(work, 'short.safetensors'), [{ name: 'x', shape: [2, 2], data: new Float32Array(3) }]), /shape \[2,2\] has 4 elements, data has 3/);
  });
});

describe('training checkpoint', () => {
  const arch = parseLlamaConfig({ hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 2, vocab_size: 40, tie_word_embeddings: true, max_position_embeddings: 32, rms_norm_eps: 1e-5, bos_token_id: 1, eos_token_id: 2, pad_token_id: 0 });
  const weights = TrainableLlama.initialValues(arch, 5);
  const scaled = (k: number) => new Map([...weights].map(([n, w]) => [n, w.map((x, i) => x * k + i * 1e-7)]));
  const checkpoint: Checkpoint = {
    step: 1234,
    tokensSeen: 987654321,
    secondsSoFar: 61.25,
    log: {
      options: DEFAULT_TRAIN_OPTIONS,
      config: arch,
      losses: [{ step: 50, loss: 3.5, tokens: 1000, seconds: 1.5 }],
      probes: [{ step: 300, accuracy: 0.25, perRelation: { person_father: 0.5, 'company "ceo"': 0 }, seconds: 9 }],
      stoppedBecause: '',
      steps: 0,
      seconds: 0,
      tokensSeen: 0,
    },
    weights,
    m: scaled(0.1),
    v: scaled(0.01),
  };

  test('round trip: a safetensors file with param/, adam_m/, adam_v/ tensors and JSON metadata', () => {
    const file = join(work, 'ckpt', 'train.ckpt');
    saveCheckpoint(file, checkpoint);
    saveCheckpoint(file, checkpoint); // over an existing file
    assert.deepEqual(readdirSync(join(work, 'ckpt')), ['train.ckpt'], 'no temporary file left behind');
    assert.deepEqual(loadCheckpoint(file), checkpoint);

    const bytes = readFileSync(file);
    const tensors = readSafetensorsF32(bytes, file);
    assert.equal(tensors.size, 3 * weights.size);
    for (const [name, w] of weights) {
      assert.deepEqual(tensors.get(`param/${name}`)!.data, w);
      assert.deepEqual(tensors.get(`adam_m/${name}`)!.data, checkpoint.m.get(name));
      assert.deepEqual(tensors.get(`adam_v/${name}`)!.data, checkpoint.v.get(name));
    }
    const n = Number(bytes.readBigUInt64LE(0));
    const meta = (JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as { __metadata__: Record<string, string> }).__metadata__;
    assert.equal(meta['step'], '1234');
    assert.equal(meta['secondsSoFar'], '61.25');
    assert.deepEqual(JSON.parse(meta['log']!), checkpoint.log);
  });

  test('a truncated, foreign or inconsistent checkpoint is refused with the file named', () => {
    const file = join(work, 'bad.ckpt');
    saveCheckpoint(file, checkpoint);
    const size = readFileSync(file).length;
    truncateSync(file, size - 100);
    assert.throws(() => loadCheckpoint(file), (e: unknown) => e instanceof CheckpointError && e.message.startsWith(`${file}: `) && /truncated/.test(e.message));
    writeSafetensors(file, [{ name: 'model.norm.weight', shape: [1], data: Float32Array.from([1]) }]);
    assert.throws(() => loadCheckpoint(file), { name: 'CheckpointError', message: `${file}: not a training checkpoint of this project ("__metadata__.checkpoint" is undefined, expected "rsn-organism-train-checkpoint/1")` });
    writeFileSync(file, 'not a checkpoint at all');
    assert.throws(() => loadCheckpoint(file), (e: unknown) => e instanceof CheckpointError && e.file === file);

    // A failed save leaves the previous checkpoint in place.
    saveCheckpoint(file, checkpoint);
    const before = readFileSync(file);
    const first = [...weights.keys()][0]!;
    const broken = { ...checkpoint, v: new Map([...checkpoint.v].filter(([name]) => name !== first)) };
    assert.throws(() => saveCheckpoint(file, broken), /v has \d+ tensors, weights \d+/);
    assert.deepEqual(readFileSync(file), before);
  });
});
