/**
 * Hostile inputs to loading and running a converted model: damaged model.json, unknown format
 * versions, NaN/Inf in the weights (float32 and float16 storage, resident and streamed plans),
 * missing or truncated shards, prompts past max_position_embeddings, and CLI numbers that
 * Number() would misread. Each case damages a fresh copy of a real conversion of the tiny
 * fixture, runs the real `rsn` command (a child process) or LlamaModel.load, and checks the
 * exit status or error class, that the message names the file/field/tensor, and that nothing
 * in the model directory was changed by the attempt.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, closeSync, cpSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { convertCheckpoint } from '../weights-converter/convert.ts';
import { initBackend } from '../lib/backend.ts';
import { readLlamaConfig } from '../lib/model/config.ts';
import { LlamaModel } from '../lib/model/llama.ts';
import { WeightStore } from '../lib/model/weights.ts';
import { seal } from '../lib/data/sealed-json.ts';
import { CheckpointError, ConfigError, OutOfMemoryError, ShapeError } from '../lib/errors.ts';
import { fixturesDir } from './helpers/reference.ts';

const exec = promisify(execFile);
const repo = new URL('..', import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), 'rsn-hostile-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** Clean conversions every case copies from (never damaged themselves). */
const BASES = {
  f32: join(work, 'base-f32'),
  f16: join(work, 'base-f16'),
  /** float32 with 64 KiB shards: each decoder layer's group spans 3 shard files. */
  f32sharded: join(work, 'base-f32-sharded'),
  /** The organism, which has a tokenizer (for --prompt). */
  organism: join(work, 'base-organism'),
};
type Base = keyof typeof BASES;

before(async () => {
  await initBackend({ backend: 'cpu', log: null });
  const tiny = join(fixturesDir, 'tiny-llama-bf16');
  await convertCheckpoint({ inputDir: tiny, outputDir: BASES.f32, dtype: 'float32' });
  await convertCheckpoint({ inputDir: tiny, outputDir: BASES.f16, dtype: 'float16' });
  await convertCheckpoint({ inputDir: tiny, outputDir: BASES.f32sharded, dtype: 'float32', shardBytes: 64 * 1024 });
  await convertCheckpoint({ inputDir: join(repo, 'data/organism'), outputDir: BASES.organism, dtype: 'float16' });
});

let copies = 0;
function copyOf(base: Base): string {
  const dir = join(work, `case-${++copies}`);
  cpSync(BASES[base], dir, { recursive: true });
  return dir;
}

/** sha256 over every file's name and bytes, to show a failed run left the directory as it was. */
function hashDir(dir: string): string {
  const h = createHash('sha256');
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    h.update(name + '\0');
    if (statSync(p).isFile()) h.update(readFileSync(p));
    h.update('\0');
  }
  return h.digest('hex');
}

type Manifest = { weightsManifest: { paths: string[]; weights: { name: string; shape: number[]; quantization?: unknown }[] }[]; [k: string]: unknown };

/**
 * Edit model.json and seal it again, as a hand-made manifest that knows the checksum would be:
 * these cases test the reader's checks behind the checksum (the checksum itself: its own cases).
 */
function editManifest(dir: string, edit: (m: Manifest) => unknown, opts: { reseal?: boolean } = {}): void {
  const file = join(dir, 'model.json');
  const m = JSON.parse(readFileSync(file, 'utf8')) as Manifest;
  const replaced = edit(m) ?? m;
  const plain = typeof replaced === 'object' && replaced !== null && !Array.isArray(replaced);
  writeFileSync(file, JSON.stringify(plain && opts.reseal !== false ? seal(replaced) : replaced, null, 2));
}

/** Record a changed file's new size and digest in model.json (sealed again), as if the converter had written it. */
function recordDigest(dir: string, name: string): void {
  const bytes = readFileSync(join(dir, name));
  editManifest(dir, (m) => void ((m['files'] as Record<string, unknown>)[name] = { size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') }));
}

/** Where flat element `index` of `tensor` lives: shard file and byte position in it. */
function locate(dir: string, tensor: string, index: number): { file: string; position: number; bytesPerValue: number } {
  const m = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as Manifest;
  for (const g of m.weightsManifest) {
    let offset = 0;
    for (const w of g.weights) {
      const bytesPerValue = w.quantization ? 2 : 4;
      if (w.name === tensor) {
        let at = offset + index * bytesPerValue;
        for (const p of g.paths) {
          const size = statSync(join(dir, p)).size;
          if (at < size) return { file: join(dir, p), position: at, bytesPerValue };
          at -= size;
        }
      }
      offset += w.shape.reduce((a, b) => a * b, 1) * bytesPerValue;
    }
  }
  throw new Error(`test helper: no tensor ${tensor} in ${dir}`);
}

const FLOAT32_BITS = { NaN: 0x7fc00000, Inf: 0x7f800000, '-Inf': 0xff800000 };
const FLOAT16_BITS = { NaN: 0x7e00, Inf: 0x7c00, '-Inf': 0xfc00 };

/** Overwrites element `index` of `tensor` with NaN / ±Inf in the storage dtype. */
function poke(dir: string, tensor: string, index: number, value: keyof typeof FLOAT32_BITS): void {
  const { file, position, bytesPerValue } = locate(dir, tensor, index);
  const buf = Buffer.alloc(bytesPerValue);
  if (bytesPerValue === 4) buf.writeUInt32LE(FLOAT32_BITS[value]);
  else buf.writeUInt16LE(FLOAT16_BITS[value]);
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, buf, 0, buf.length, position);
  } finally {
    closeSync(fd);
  }
  // The digest of the shard is updated too: these cases test the non-finite checks behind it.
  recordDigest(dir, basename(file));
}

interface Expected {
  /** CLI: exit status. */
  code?: number;
  /** API: error class. */
  error?: typeof CheckpointError | typeof ConfigError | typeof ShapeError;
  message: RegExp;
  /** Error properties (API): the basename of `file`, `field`, `tensor`. */
  file?: string;
  field?: string;
  tensor?: string;
}

interface Case {
  name: string;
  base: Base;
  damage?: (dir: string) => void;
  /** Run the CLI with these arguments (after the command), or the API. */
  cli?: (dir: string) => string[];
  /** API: load with this plan, then call `run` (default: a 3-token forward). */
  plan?: 'resident' | 'streamed';
  run?: (m: LlamaModel) => Promise<unknown>;
  expect: Expected;
}

async function rsn(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec(process.execPath, ['--import', 'tsx', join(repo, 'cli/rsn.ts'), ...args], { cwd: repo, env: { ...process.env, RSN_BACKEND: 'cpu' } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

async function runCase(c: Case): Promise<void> {
  const dir = copyOf(c.base);
  c.damage?.(dir);
  const before = hashDir(dir);
  if (c.cli) {
    const r = await rsn(c.cli(dir));
    assert.equal(r.code, c.expect.code, `exit status; stderr:\n${r.stderr}`);
    assert.match(r.stderr, c.expect.message);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(r.stdout, '', 'nothing printed as a result');
  } else {
    const tensorsBefore = tf.memory().numTensors;
    let model: LlamaModel | null = null;
    const err = await (async () => {
      model = await LlamaModel.load(dir, { backend: 'cpu', log: null, plan: c.plan ?? 'resident' });
      await (c.run ?? ((m: LlamaModel) => m.forward([[1, 5, 9]])))(model);
    })().then(
      () => null,
      (e: unknown) => e,
    );
    (model as LlamaModel | null)?.dispose();
    assert.ok(err, 'expected an error');
    assert.ok(err instanceof c.expect.error!, `expected ${c.expect.error!.name}, got ${String((err as Error).stack)}`);
    assert.match(err.message, c.expect.message);
    const props = err as unknown as { file?: string; field?: string; tensor?: string };
    if (c.expect.file) assert.equal(basename(props.file ?? ''), c.expect.file, 'error.file');
    if (c.expect.field) assert.equal(props.field, c.expect.field, 'error.field');
    if (c.expect.tensor) assert.equal(props.tensor, c.expect.tensor, 'error.tensor');
    assert.equal(tf.memory().numTensors, tensorsBefore, 'every tensor created before the error is released');
  }
  assert.equal(hashDir(dir), before, 'the model directory is unchanged');
}

/** Field errors name model.json and the JSON path of the field. */
function field(path: string, what: string): Expected {
  const quoted = path.replace(/[[\].]/g, (ch) => `\\${ch}`);
  return { error: ConfigError, message: new RegExp(`model\\.json: field "${quoted}" must be ${what}`), file: 'model.json', field: path };
}

const L0 = 'model.layers.0';
const L1 = 'model.layers.1';
const L2 = 'model.layers.2';

const MANIFEST_CASES: Case[] = [
  { name: 'model.json is an array', base: 'f32', damage: (d) => editManifest(d, () => []), expect: { error: ConfigError, message: /model\.json: expected a JSON object, found \[\]/, file: 'model.json' } },
  { name: 'no "format"', base: 'f32', damage: (d) => editManifest(d, (m) => void delete m['format']), expect: field('format', '"rsn-llama-tfjs", found nothing') },
  {
    name: 'formatVersion 3 (CLI)',
    base: 'f32',
    damage: (d) => editManifest(d, (m) => void (m['formatVersion'] = 3)),
    cli: (d) => ['logits', '--model', d, '--ids', '1,5,9'],
    expect: { code: 1, message: /model\.json: formatVersion 3 is not supported; this reader supports formatVersion 1, 2 \(re-convert/ },
  },
  { name: 'formatVersion missing', base: 'f16', damage: (d) => editManifest(d, (m) => void delete m['formatVersion']), expect: { error: ConfigError, message: /model\.json: formatVersion is missing; this reader supports formatVersion 1, 2/, field: 'formatVersion' } },
  { name: 'formatVersion "1" (a string)', base: 'f32', damage: (d) => editManifest(d, (m) => void (m['formatVersion'] = '1')), expect: { error: ConfigError, message: /formatVersion "1" is not supported; this reader supports formatVersion 1, 2/, field: 'formatVersion' } },
  { name: 'storageDtype bfloat16', base: 'f32', damage: (d) => editManifest(d, (m) => void (m['storageDtype'] = 'bfloat16')), expect: field('storageDtype', '"float32" or "float16", found "bfloat16"') },
  { name: 'weightsManifest an object', base: 'f32', damage: (d) => editManifest(d, (m) => void (m.weightsManifest = {} as never)), expect: field('weightsManifest', 'a non-empty array of weight groups, found \\{\\}') },
  { name: 'weightsManifest empty', base: 'f32', damage: (d) => editManifest(d, (m) => void (m.weightsManifest = [])), expect: field('weightsManifest', 'a non-empty array') },
  { name: 'a group is null', base: 'f32', damage: (d) => editManifest(d, (m) => void (m.weightsManifest[1] = null as never)), expect: field('weightsManifest[1]', 'an object with "paths" and "weights", found null') },
  { name: 'paths missing', base: 'f32', damage: (d) => editManifest(d, (m) => void delete (m.weightsManifest[0] as Partial<Manifest['weightsManifest'][0]>).paths), expect: field('weightsManifest[0].paths', 'a non-empty array of shard file names, found nothing') },
  { name: 'a path is a number', base: 'f32', damage: (d) => editManifest(d, (m) => void (m.weightsManifest[2]!.paths[0] = 7 as never)), expect: field('weightsManifest[2].paths[0]', 'a shard file name \\(string\\), found 7') },
  { name: 'a path leaves the directory', base: 'f32', damage: (d) => editManifest(d, (m) => void (m.weightsManifest[1]!.paths[0] = '../group1-shard1of1.bin')), expect: field('weightsManifest[1].paths[0]', 'a plain file name inside the model directory') },
  { name: 'two groups list one shard', base: 'f32', damage: (d) => editManifest(d, (m) => void (m.weightsManifest[2]!.paths = m.weightsManifest[1]!.paths)), expect: field('weightsManifest[2].paths[0]', 'a shard no other group lists') },
  { name: 'weights not an array', base: 'f32', damage: (d) => editManifest(d, (m) => void (m.weightsManifest[3]!.weights = 'all' as never)), expect: field('weightsManifest[3].weights', 'an array of weight entries, found "all"') },
  { name: 'a weight without a name', base: 'f16', damage: (d) => editManifest(d, (m) => void delete (m.weightsManifest[1]!.weights[3] as Partial<Manifest['weightsManifest'][0]['weights'][0]>).name), expect: field('weightsManifest[1].weights[3].name', 'a non-empty string, found nothing') },
  {
    name: 'a shape that is not an array (CLI)',
    base: 'f32',
    damage: (d) => editManifest(d, (m) => void (m.weightsManifest[1]!.weights[3]!.shape = '64' as never)),
    cli: (d) => ['generate', '--model', d, '--ids', '1,5,9', '--max-new-tokens', '2'],
    expect: { code: 1, message: /model\.json: field "weightsManifest\[1\]\.weights\[3\]\.shape" must be an array of non-negative integers, found "64"/ },
  },
  { name: 'a negative dimension', base: 'f32', damage: (d) => editManifest(d, (m) => void (m.weightsManifest[2]!.weights[1]!.shape = [64, -1])), expect: field('weightsManifest[2].weights[1].shape', 'an array of non-negative integers, found \\[64,-1\\]') },
  { name: 'a fractional dimension', base: 'f32', damage: (d) => editManifest(d, (m) => void (m.weightsManifest[0]!.weights[1]!.shape = [64.5])), expect: field('weightsManifest[0].weights[1].shape', 'an array of non-negative integers, found \\[64\\.5\\]') },
  { name: 'a string dimension', base: 'f16', damage: (d) => editManifest(d, (m) => void (m.weightsManifest[0]!.weights[0]!.shape = ['300', 64] as never)), expect: field('weightsManifest[0].weights[0].shape', 'an array of non-negative integers') },
  { name: 'a shape too large to address', base: 'f32', damage: (d) => editManifest(d, (m) => void (m.weightsManifest[0]!.weights[0]!.shape = [2 ** 40, 2 ** 20])), expect: field('weightsManifest[0].weights[0].shape', 'a shape whose size fits in memory') },
  { name: 'dtype missing', base: 'f32', damage: (d) => editManifest(d, (m) => void delete (m.weightsManifest[1]!.weights[0] as Record<string, unknown>)['dtype']), expect: field('weightsManifest[1].weights[0].dtype', '"float32"') },
  { name: 'dtype int32', base: 'f32', damage: (d) => editManifest(d, (m) => void ((m.weightsManifest[1]!.weights[0] as Record<string, unknown>)['dtype'] = 'int32')), expect: field('weightsManifest[1].weights[0].dtype', '"float32" .*found "int32"') },
  { name: 'float16 storage without quantization', base: 'f16', damage: (d) => editManifest(d, (m) => void delete m.weightsManifest[2]!.weights[4]!.quantization), expect: field('weightsManifest[2].weights[4].quantization', '\\{"dtype": "float16", ...\\} \\(storageDtype is "float16"\\), found nothing') },
  { name: 'float32 storage with quantization', base: 'f32', damage: (d) => editManifest(d, (m) => void (m.weightsManifest[2]!.weights[4]!.quantization = { dtype: 'uint8' })), expect: field('weightsManifest[2].weights[4].quantization', 'absent \\(storageDtype is "float32"\\)') },
  { name: 'a weight listed twice', base: 'f32', damage: (d) => editManifest(d, (m) => void (m.weightsManifest[1]!.weights[2]!.name = m.weightsManifest[1]!.weights[1]!.name)), expect: field('weightsManifest[1].weights[2].name', 'a weight name listed once') },
  { name: 'source.files not an array', base: 'f32', damage: (d) => editManifest(d, (m) => void ((m['source'] as Record<string, unknown>)['files'] = 'model.safetensors')), expect: field('source.files', 'an array of strings') },
  // Refused before model.json had a schema; kept so they stay refused.
  { name: 'no model.json', base: 'f32', damage: (d) => rmSync(join(d, 'model.json')), expect: { error: CheckpointError, message: /no model\.json; this is not a converted model directory/, file: 'model.json' } },
  { name: 'model.json not JSON', base: 'f32', damage: (d) => writeFileSync(join(d, 'model.json'), '{"format": '), expect: { error: CheckpointError, message: /model\.json: not valid JSON/, file: 'model.json' } },
  { name: 'a weight the config needs is not listed', base: 'f32', damage: (d) => editManifest(d, (m) => void (m.weightsManifest[0]!.weights[2]!.name = 'lm_head.weights')), expect: { error: CheckpointError, message: /model\.json: weight lm_head\.weight is missing/, tensor: 'lm_head.weight' } },
  { name: 'a shape the config does not imply', base: 'f32', damage: (d) => editManifest(d, (m) => void (m.weightsManifest[0]!.weights[2]!.shape = [64, 300])), expect: { error: ShapeError, message: /weight lm_head\.weight has shape \[64,300\], config\.json implies \[300,64\]/ } },
  // The file record: model.json is sealed, and every file it names is checked against its digest.
  {
    name: 'two weight entries swapped by hand (not sealed again)',
    base: 'f32',
    damage: (d) => editManifest(d, (m) => void m.weightsManifest[1]!.weights.reverse(), { reseal: false }),
    expect: { error: CheckpointError, message: /model\.json: its content does not match its checksum \(edited or damaged after it was written\)/, file: 'model.json' },
  },
  {
    name: 'one bit of a weight flipped (CLI)',
    base: 'f16',
    damage: (d) => {
      const f = join(d, 'group2-shard1of1.bin');
      const b = readFileSync(f);
      b[1001]! ^= 0x01;
      writeFileSync(f, b);
    },
    cli: (d) => ['logits', '--model', d, '--ids', '1,5,9'],
    expect: { code: 1, message: /group2-shard1of1\.bin: its bytes are not those the converter wrote \(sha256 [0-9a-f]{12}…, model\.json records [0-9a-f]{12}…\): the file was changed or damaged; convert the checkpoint again/ },
  },
  {
    name: 'tokenizer.json replaced',
    base: 'organism',
    damage: (d) => writeFileSync(join(d, 'tokenizer.json'), readFileSync(join(d, 'tokenizer.json'), 'utf8').replace('"<s>"', '"<S>"')),
    expect: { error: CheckpointError, message: /tokenizer\.json: its bytes are not those the converter wrote/, file: 'tokenizer.json' },
  },
  {
    name: 'config.json grown by a byte',
    base: 'f32',
    damage: (d) => appendFileSync(join(d, 'config.json'), ' '),
    expect: { error: CheckpointError, message: /config\.json: \d+ bytes, but model\.json records \d+: the file was changed or cut short since it was converted/, file: 'config.json' },
  },
  {
    name: 'a shard the file record does not name',
    base: 'f32',
    damage: (d) => editManifest(d, (m) => void delete (m['files'] as Record<string, unknown>)['group1-shard1of1.bin']),
    expect: field('weightsManifest[1].paths[0]', 'a shard whose digest "files" records'),
  },
];

const SHARD_CASES: Case[] = [
  {
    name: 'a truncated shard (CLI)',
    base: 'f32',
    damage: (d) => truncateSync(join(d, 'group2-shard1of1.bin'), statSync(join(d, 'group2-shard1of1.bin')).size - 100),
    cli: (d) => ['logits', '--model', d, '--ids', '1,5,9'],
    expect: { code: 1, message: /group2-shard1of1\.bin: shard of weight group 2 is shorter than .*model\.json says: it has 181660 bytes, expected 181760; weight model\.layers\.1\.mlp\.down_proj\.weight is incomplete/ },
  },
  { name: 'a missing shard', base: 'f16', damage: (d) => rmSync(join(d, 'group3-shard1of1.bin')), expect: { error: CheckpointError, message: /group3-shard1of1\.bin: shard group3-shard1of1\.bin of weight group 3 \(listed in .*model\.json\) is missing/, file: 'group3-shard1of1.bin' } },
  { name: 'an empty shard', base: 'f16', damage: (d) => writeFileSync(join(d, 'group0-shard1of1.bin'), ''), expect: { error: CheckpointError, message: /group0-shard1of1\.bin: shard of weight group 0 is shorter .*: it has 0 bytes, expected 76928; weight model\.embed_tokens\.weight is incomplete/, file: 'group0-shard1of1.bin', tensor: 'model.embed_tokens.weight' } },
  { name: 'a shard with trailing bytes', base: 'f32', damage: (d) => appendFileSync(join(d, 'group1-shard1of1.bin'), Buffer.alloc(8)), expect: { error: CheckpointError, message: /group1-shard1of1\.bin: shard of weight group 1 is longer than .*model\.json says: it has 181768 bytes, expected 181760/, file: 'group1-shard1of1.bin' } },
  { name: 'a shard that is a directory', base: 'f32', damage: (d) => (rmSync(join(d, 'group1-shard1of1.bin')), mkdirSync(join(d, 'group1-shard1of1.bin'))), expect: { error: CheckpointError, message: /group1-shard1of1\.bin of weight group 1 .* is not a regular file/, file: 'group1-shard1of1.bin' } },
  {
    name: 'the middle one of three shards truncated',
    base: 'f32sharded',
    damage: (d) => truncateSync(join(d, 'group2-shard2of3.bin'), 1000),
    expect: { error: CheckpointError, message: /group2-shard2of3\.bin: shard of weight group 2 is shorter .*: it has 1000 bytes, expected 65536; weight model\.layers\.1\.mlp\.gate_proj\.weight is incomplete/, file: 'group2-shard2of3.bin', tensor: `${L1}.mlp.gate_proj.weight` },
  },
  { name: 'the last of three shards missing', base: 'f32sharded', damage: (d) => rmSync(join(d, 'group1-shard3of3.bin')), expect: { error: CheckpointError, message: /group1-shard3of3\.bin: shard .* is missing/, file: 'group1-shard3of3.bin' } },
];

/** A non-finite weight: the message names the tensor, the shard and the first bad index. */
function nonFinite(file: string, tensor: string, count: number, first: string, index: number): Expected {
  const t = tensor.replace(/\./g, '\\.');
  return {
    error: CheckpointError,
    message: new RegExp(`${file.replace(/\./g, '\\.')}: weight ${t} holds ${count} non-finite values? \\(NaN or ±Inf\\), the first ${first} at flat index ${index} of shape`),
    file,
    tensor,
  };
}

const NONFINITE_CASES: Case[] = [
  {
    name: 'NaN in a float32 layer weight (CLI)',
    base: 'f32',
    damage: (d) => poke(d, `${L1}.mlp.up_proj.weight`, 77, 'NaN'),
    cli: (d) => ['logits', '--model', d, '--ids', '1,5,9'],
    expect: { code: 1, message: /group2-shard1of1\.bin: weight model\.layers\.1\.mlp\.up_proj\.weight holds 1 non-finite value \(NaN or ±Inf\), the first NaN at flat index 77 of shape \[172,64\]/ },
  },
  {
    name: 'Inf in a float16 layer weight (CLI generate)',
    base: 'f16',
    damage: (d) => poke(d, `${L0}.self_attn.v_proj.weight`, 5, 'Inf'),
    cli: (d) => ['generate', '--model', d, '--ids', '1,5,9', '--max-new-tokens', '2'],
    expect: { code: 1, message: /group1-shard1of1\.bin: weight model\.layers\.0\.self_attn\.v_proj\.weight holds 1 non-finite value \(NaN or ±Inf\), the first Infinity at flat index 5/ },
  },
  { name: 'float32 +Inf in the embeddings', base: 'f32', damage: (d) => poke(d, 'model.embed_tokens.weight', 0, 'Inf'), expect: nonFinite('group0-shard1of1.bin', 'model.embed_tokens.weight', 1, 'Infinity', 0) },
  {
    name: 'float32: three bad values in one tensor are counted',
    base: 'f32',
    damage: (d) => {
      for (const [i, v] of [[10, '-Inf'], [11, 'NaN'], [4095, 'Inf']] as const) poke(d, `${L2}.self_attn.q_proj.weight`, i, v);
    },
    expect: nonFinite('group3-shard1of1.bin', `${L2}.self_attn.q_proj.weight`, 3, '-Infinity', 10),
  },
  { name: 'float32 NaN in the last value of lm_head', base: 'f32', damage: (d) => poke(d, 'lm_head.weight', 300 * 64 - 1, 'NaN'), expect: nonFinite('group0-shard1of1.bin', 'lm_head.weight', 1, 'NaN', 300 * 64 - 1) },
  { name: 'float16 NaN in a norm weight', base: 'f16', damage: (d) => poke(d, `${L0}.input_layernorm.weight`, 63, 'NaN'), expect: nonFinite('group1-shard1of1.bin', `${L0}.input_layernorm.weight`, 1, 'NaN', 63) },
  { name: 'float16 -Inf in lm_head', base: 'f16', damage: (d) => poke(d, 'lm_head.weight', 1234, '-Inf'), expect: nonFinite('group0-shard1of1.bin', 'lm_head.weight', 1, '-Infinity', 1234) },
  { name: 'float32 NaN in a tensor that straddles two shards', base: 'f32sharded', damage: (d) => poke(d, `${L0}.mlp.up_proj.weight`, 172 * 64 - 1, 'NaN'), expect: nonFinite('group1-shard3of3.bin', `${L0}.mlp.up_proj.weight`, 1, 'NaN', 172 * 64 - 1) },
  // Streamed plan: decoder layers are read at call time (the first layer at the call, the next one prefetched).
  { name: 'streamed, float16: NaN in a layer is refused at the call', base: 'f16', plan: 'streamed', damage: (d) => poke(d, `${L2}.mlp.down_proj.weight`, 100, 'NaN'), expect: nonFinite('group3-shard1of1.bin', `${L2}.mlp.down_proj.weight`, 1, 'NaN', 100) },
  {
    name: 'streamed, float32: Inf in a layer is refused by generate',
    base: 'f32',
    plan: 'streamed',
    damage: (d) => poke(d, `${L1}.self_attn.k_proj.weight`, 9, 'Inf'),
    run: (m) => m.generate([[1, 5, 9]], { maxNewTokens: 3 }),
    expect: nonFinite('group2-shard1of1.bin', `${L1}.self_attn.k_proj.weight`, 1, 'Infinity', 9),
  },
  { name: 'streamed, float16: NaN in the final norm is refused at load', base: 'f16', plan: 'streamed', damage: (d) => poke(d, 'model.norm.weight', 3, 'NaN'), expect: nonFinite('group0-shard1of1.bin', 'model.norm.weight', 1, 'NaN', 3) },
  { name: 'streamed, float32 sharded: -Inf in a straddling tensor', base: 'f32sharded', plan: 'streamed', damage: (d) => poke(d, `${L2}.mlp.gate_proj.weight`, 5000, '-Inf'), expect: nonFinite('group3-shard2of3.bin', `${L2}.mlp.gate_proj.weight`, 1, '-Infinity', 5000) },
];

const range = (n: number) => Array.from({ length: n }, (_, i) => (i % 250) + 1).join(',');

const POSITION_CASES: Case[] = [
  {
    name: 'generate: prompt + new tokens past the limit (CLI)',
    base: 'f32',
    cli: (d) => ['generate', '--model', d, '--ids', range(60), '--max-new-tokens', '5'],
    expect: { code: 2, message: /prompt length 60 \+ max new tokens 5 = 65 exceeds the model's position limit max_position_embeddings = 64 \(.*config\.json\)/ },
  },
  { name: 'logits: a prompt past the limit (CLI)', base: 'f32', cli: (d) => ['logits', '--model', d, '--ids', range(65)], expect: { code: 2, message: /prompt length 65 exceeds the model's position limit max_position_embeddings = 64/ } },
  {
    name: 'generate --prompt: tokenized prompt past the limit (CLI, organism)',
    base: 'organism',
    cli: (d) => ['generate', '--model', d, '--prompt', 'the father of '.repeat(60), '--max-new-tokens', '2'],
    expect: { code: 2, message: /prompt length \d{3} \+ max new tokens 2 = \d{3} exceeds the model's position limit max_position_embeddings = 128/ },
  },
  { name: 'forward: a row past the limit', base: 'f16', run: (m) => m.forward([[1, 2], Array(65).fill(3)]), expect: { error: ConfigError, message: /prompt length 65 exceeds the model's position limit max_position_embeddings = 64 \(.*config\.json\)/, file: 'config.json', field: 'max_position_embeddings' } },
  { name: 'generate: prompt + new tokens past the limit', base: 'f32', plan: 'streamed', run: (m) => m.generate([Array(62).fill(3)], { maxNewTokens: 3 }), expect: { error: ConfigError, message: /prompt length 62 \+ max new tokens 3 = 65 exceeds/, field: 'max_position_embeddings' } },
  { name: 'generate in micro-batches: past the limit', base: 'f32', run: (m) => m.generate([[1], Array(60).fill(3), [2]], { maxNewTokens: 5, microBatch: 1 }), expect: { error: ConfigError, message: /prompt length 60 \+ max new tokens 5 = 65 exceeds/ } },
];

const cliNumber = (args: string[], message: RegExp): Omit<Case, 'name'> => ({ base: 'f32', cli: (d) => [...args.map((a) => a.replace('MODEL', d))], expect: { code: 2, message } });

const NUMBER_CASES: Case[] = [
  { name: '--ids 0x10', ...cliNumber(['logits', '--model', 'MODEL', '--ids', '0x10,1e2'], /--ids must be comma-separated token ids .*--ids item 1 = "0x10": expected a decimal integer ≥ 0/) },
  { name: '--ids 1e2', ...cliNumber(['generate', '--model', 'MODEL', '--ids', '1,1e2'], /--ids item 2 = "1e2": expected a decimal integer ≥ 0/) },
  { name: '--ids with an empty item', ...cliNumber(['logits', '--model', 'MODEL', '--ids', '1,,2'], /--ids item 2 = "": expected a decimal integer/) },
  { name: '--ids=-1', ...cliNumber(['logits', '--model', 'MODEL', '--ids=-1'], /--ids item 1 = -1: expected an integer ≥ 0/) },
  { name: '--ids 1,x (refused before)', ...cliNumber(['logits', '--model', 'MODEL', '--ids', '1,x'], /--ids must be comma-separated token ids/) },
  { name: '--ids 2.0', ...cliNumber(['logits', '--model', 'MODEL', '--ids', '2.0'], /--ids item 1 = "2\.0": expected a decimal integer/) },
  { name: 'token id = vocab_size', ...cliNumber(['generate', '--model', 'MODEL', '--ids', '1,300,5'], /--ids: token id 300 is not below vocab_size 300 \(.*config\.json\)/) },
  { name: '--max-new-tokens= (empty)', ...cliNumber(['generate', '--model', 'MODEL', '--ids', '1', '--max-new-tokens='], /--max-new-tokens = "": expected a decimal integer ≥ 0/) },
  { name: '--max-new-tokens=-1', ...cliNumber(['generate', '--model', 'MODEL', '--ids', '1', '--max-new-tokens=-1'], /--max-new-tokens = -1: expected an integer ≥ 0/) },
  { name: '--max-new-tokens 1e2', ...cliNumber(['generate', '--model', 'MODEL', '--ids', '1', '--max-new-tokens', '1e2'], /--max-new-tokens = "1e2": expected a decimal integer ≥ 0/) },
  { name: '--max-new-tokens 100000', ...cliNumber(['generate', '--model', 'MODEL', '--ids', '1,5,9', '--max-new-tokens', '100000'], /prompt length 3 \+ max new tokens 100000 = 100003 exceeds the model's position limit max_position_embeddings = 64/) },
  { name: '--max-new-tokens beyond 2^53', ...cliNumber(['generate', '--model', 'MODEL', '--ids', '1', '--max-new-tokens', '99999999999999999999'], /--max-new-tokens = 99999999999999999999: too large for an exact integer/) },
  // Refused before; kept so they stay refused.
  { name: 'a model directory that does not exist', base: 'f32', cli: (d) => ['logits', '--model', join(d, 'nope'), '--ids', '1'], expect: { code: 1, message: /nope\/config\.json: cannot read config/ } },
  { name: '--prompt without a tokenizer', ...cliNumber(['generate', '--model', 'MODEL', '--prompt', 'hello'], /has no tokenizer\.json; pass token ids with --ids/) },
];

const FAMILIES = [
  ['model.json', MANIFEST_CASES],
  ['shard files', SHARD_CASES],
  ['non-finite weights', NONFINITE_CASES],
  ['position limit', POSITION_CASES],
  ['CLI numbers', NUMBER_CASES],
] as const;

// Every family goes through the CLI at least once; the rest go through the API, where the
// checks live, without a child process's start-up time. API cases run one at a time because
// each compares the process-wide tensor count; CLI cases run two at a time.
for (const [family, cases] of FAMILIES) {
  const api = cases.filter((c) => !c.cli);
  if (api.length) {
    describe(`hostile input, API: ${family}`, () => {
      for (const c of api) test(`${c.name} → ${c.expect.error!.name}`, () => runCase(c));
    });
  }
}
describe('hostile input, CLI', { concurrency: 2 }, () => {
  for (const [family, cases] of FAMILIES) {
    for (const c of cases.filter((x) => x.cli)) test(`${family}: ${c.name} → exit ${c.expect.code}`, () => runCase(c));
  }
});

test('in-memory weights (LlamaModel.fromArrays) holding NaN are refused, naming the tensor', async () => {
  const store = new WeightStore(BASES.f32);
  const config = readLlamaConfig(join(BASES.f32, 'config.json'));
  const tensorsBefore = tf.memory().numTensors;
  const read = (name: string) => {
    const data = Float32Array.from(store.read(name));
    if (name === `${L1}.mlp.gate_proj.weight`) data[42] = NaN;
    return { data, shape: store.shape(name) };
  };
  await assert.rejects(LlamaModel.fromArrays(config, read, { backend: 'cpu', log: null }), (e: unknown) => {
    assert.ok(e instanceof CheckpointError, String(e));
    assert.match(e.message, /in-memory weights: weight model\.layers\.1\.mlp\.gate_proj\.weight holds a non-finite value \(NaN\) at flat index 42 of shape \[172,64\]/);
    assert.equal(e.tensor, `${L1}.mlp.gate_proj.weight`);
    return true;
  });
  assert.equal(tf.memory().numTensors, tensorsBefore);
});

describe('the undamaged conversions still work at the edges of the checks', () => {
  test('every base loads and runs on both plans; prompts exactly at the position limit run', async () => {
    for (const base of ['f32', 'f16', 'f32sharded'] as const) {
      for (const plan of ['resident', 'streamed'] as const) {
        const m = await LlamaModel.load(BASES[base], { backend: 'cpu', log: null, plan });
        try {
          const r = await m.forward([[1, 5, 9]]);
          assert.ok(r.logits!.data.every(Number.isFinite), `${base} ${plan}`);
          if (base === 'f16' && plan === 'resident') {
            assert.ok((await m.forward([Array(64).fill(3), [1]])).logits!.data.every(Number.isFinite));
            assert.equal((await m.generate([Array(60).fill(3)], { maxNewTokens: 4 })).tokens[0]!.length, 4);
          }
        } finally {
          m.dispose();
        }
      }
    }
  });

  test('CLI: --ids with spaces after commas, the largest token id and the largest --max-new-tokens run', async () => {
    const r = await rsn(['generate', '--model', BASES.f32, '--ids', '1, 5, 299', '--max-new-tokens', '61']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^prompt ids: 1 5 299\nnew tokens: (\d+ ){60}\d+\n$/);
  });
});

describe('memory exhaustion', () => {
  test('without any memory option, a call predicted not to fit is refused before any work with the planner\'s advice; the model stays usable and gives the same result', async () => {
    const m = await LlamaModel.load(BASES.f32, { backend: 'cpu', log: null });
    try {
      const before = Array.from((await m.forward([[1, 5, 9]])).logits!.data);
      const tensorsBefore = tf.memory().numTensors;
      const row = Array.from({ length: 64 }, (_, i) => (i * 7) % 300);
      // 10^6 rows × 64 tokens: the activations alone are far beyond any host here.
      const t0 = performance.now();
      await assert.rejects(m.forward(Array.from({ length: 1_000_000 }, () => row)), (e: Error) =>
        e instanceof OutOfMemoryError && /batch 1000000 × 64 tokens needs [\d.]+ [GT]B resident .* but the device has [\d.]+ GB; the resident plan fits with batch size ≤ \d+/.test(e.message));
      assert.ok(performance.now() - t0 < 30_000, 'refused before the work, not after it');
      assert.equal(tf.memory().numTensors, tensorsBefore, 'nothing was allocated for it');
      assert.deepEqual(Array.from((await m.forward([[1, 5, 9]])).logits!.data), before);
    } finally {
      m.dispose();
    }
  });
});
