/**
 * The `rsn` command as a user runs it (a real child process through bin/rsn.js), checked
 * against the independent reference logits and greedy tokens.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixturesDir, loadReference, maxAbsDiff } from './helpers/reference.ts';
import { rsn } from './helpers/cli.ts';

const ref = loadReference();
const work = mkdtempSync(join(tmpdir(), 'rsn-cli-test-'));
const model = join(work, 'tiny');
after(() => rmSync(work, { recursive: true, force: true }));


before(async () => {
  const r = await rsn(['convert', join(fixturesDir, 'tiny-llama-f32-sharded'), model, '--dtype', 'float32']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(join(model, 'model.json')));
});

test('rsn logits prints the last-position logits as JSON, on the backend RSN_BACKEND forces', async () => {
  for (const backend of ['cpu', 'wasm']) {
    for (const c of [ref.cases[2]!, ref.cases[5]!]) {
      const r = await rsn(['logits', '--model', model, '--ids', c.input_ids.join(',')], { RSN_BACKEND: backend });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`backend: ${backend} \\(forced by environment\\)`));
      const { logits } = JSON.parse(r.stdout) as { logits: number[] };
      assert.equal(logits.length, 300);
      assert.ok(maxAbsDiff(c.logits[c.logits.length - 1]!, logits) < 1e-3);
    }
  }
});

test('rsn generate --ids prints the reference greedy tokens; --backend overrides', async () => {
  const c = ref.cases[4]!;
  const r = await rsn(['generate', '--model', model, '--ids', c.input_ids.join(','), '--max-new-tokens', '4', '--backend', 'cpu']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /backend: cpu \(forced by argument\)/);
  assert.match(r.stdout, new RegExp(`new tokens: ${c.greedy_4.join(' ')}\\n`));
});

test('clear errors and exit codes', async () => {
  const noTok = await rsn(['generate', '--model', model, '--prompt', 'hello']);
  assert.equal(noTok.code, 2);
  assert.match(noTok.stderr, /has no tokenizer\.json; pass token ids with --ids/);
  const missing = await rsn(['logits', '--model', join(work, 'nope'), '--ids', '1']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /nope\/config\.json: cannot read config/);
  assert.doesNotMatch(missing.stderr, /\n\s+at /, 'no stack trace for our own errors');
  const badIds = await rsn(['logits', '--model', model, '--ids', '1,x']);
  assert.equal(badIds.code, 2);
  assert.match(badIds.stderr, /--ids must be comma-separated token ids/);
  const badBackend = await rsn(['logits', '--model', model, '--ids', '1'], { RSN_BACKEND: 'tpu' });
  assert.equal(badBackend.code, 1);
  assert.match(badBackend.stderr, /RSN_BACKEND=tpu: unknown backend "tpu"; expected one of tensorflow-gpu, webgpu, tensorflow, wasm, cpu/);
  // A name that is not a backend but says what was meant gets a hint.
  const vulkan = await rsn(['logits', '--model', model, '--ids', '1'], { RSN_BACKEND: 'vulkan' });
  assert.equal(vulkan.code, 1);
  assert.match(vulkan.stderr, /RSN_BACKEND=vulkan: unknown backend "vulkan"; expected one of .* \(for "vulkan", try webgpu \(Dawn on Vulkan\)\)/);
  // "gpu" is TF.js's CUDA binding; where that cannot start, the error says what the Vulkan path is called.
  const gpu = await rsn(['logits', '--model', model, '--ids', '1'], { RSN_BACKEND: 'gpu' });
  if (gpu.code !== 0) assert.match(gpu.stderr, /backend "tensorflow-gpu" \(forced by environment\) failed to initialise: .*; note: "gpu" means tensorflow-gpu \(TF\.js's CUDA binding, @tensorflow\/tfjs-node-gpu\); for the GPU through Vulkan use webgpu/);
  const unknown = await rsn(['frobnicate']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command "frobnicate"/);
});

test('auto backend selection says why the native backends were skipped', async () => {
  const r = await rsn(['logits', '--model', model, '--ids', '1'], { RSN_BACKEND: '' });
  assert.equal(r.code, 0, r.stderr);
  // On machines without libtensorflow the two native backends are skipped with a reason.
  const line = r.stderr.split('\n').find((l) => l.startsWith('[rsn] backend:'))!;
  assert.ok(line, r.stderr);
  if (/backend: wasm|backend: cpu/.test(line)) assert.match(line, /skipped tensorflow-gpu: .+; tensorflow: .+/);
});

test('rsn verify reads every byte, remembered checks or not: a shard changed with its size and time put back is found', async () => {
  const copy = join(work, 'tiny-verify');
  cpSync(model, copy, { recursive: true });
  const good = await rsn(['verify', '--model', copy]);
  assert.equal(good.code, 0, good.stderr);
  assert.match(good.stdout, /^\d+ files, [\d.]+ MB: every file matches the size and sha256 model\.json records\nmodel identity: [0-9a-f]{64}\n$/);
  // A load re-reads a file only when its size, time or inode changed since the last check; verify reads it anyway.
  const shard = join(copy, 'group1-shard1of1.bin');
  const { mtime, atime } = statSync(shard);
  const bytes = readFileSync(shard);
  bytes[100]! ^= 0x01;
  writeFileSync(shard, bytes);
  utimesSync(shard, atime, mtime);
  const found = await rsn(['verify', '--model', copy]);
  assert.equal(found.code, 1);
  assert.match(found.stderr, /group1-shard1of1\.bin: its bytes are not those the converter wrote/);
});
