/**
 * The wasm backend's replaced kernels (lib/wasm-kernels): matMul on OpenBLAS, built by the
 * project's setup (or on first use) — these tests fail, never skip, when it is not available —
 * and first-axis gathers by row copies. Every operand layout the matMul accepts (transposes,
 * batched and shared operands, broadcast batch shapes, empty and degenerate sizes, a product that
 * grows the wasm heap) is checked against a float64 product computed here, and every gather
 * against the rows picked here, bit for bit; the addon's own guards reject offsets outside the
 * heap; a failed build leaves nothing behind; RSN_MATMUL is honoured or refused loudly.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendChoice } from '../lib/backend.ts';
import { addonPath, ensureAddon } from '../lib/wasm-kernels/build.ts';
import { mulberry32 } from '../lib/rng.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
let choice: BackendChoice;
const logs: string[] = [];

before(async () => {
  process.env['RSN_MATMUL'] = 'openblas';
  try {
    choice = await initBackend({ backend: 'wasm', log: (l) => logs.push(l) });
  } catch (e) {
    throw new Error(`these tests need the OpenBLAS matMul and it is unavailable — ${(e as Error).message}. Run \`npm run native:setup\` (as root on Debian it installs libopenblas-dev).`);
  }
});

/** Row-major values in [-1, 1) from a seeded generator. */
function values(n: number, seed: number): Float32Array {
  const rng = mulberry32(seed);
  return Float32Array.from({ length: n }, () => rng.next() * 2 - 1);
}

/** op(A)·op(B) in float64 for operands already flattened to [batch, rows, cols] (batch 1 = shared). */
function reference(a: Float32Array, aShape: number[], b: Float32Array, bShape: number[], tA: boolean, tB: boolean, batch: number): Float64Array {
  const [ba, ra, ca] = aShape as [number, number, number];
  const [bb, rb, cb] = bShape as [number, number, number];
  const m = tA ? ca : ra;
  const k = tA ? ra : ca;
  const n = tB ? rb : cb;
  const out = new Float64Array(batch * m * n);
  for (let i = 0; i < batch; i++) {
    const ao = (ba === 1 ? 0 : i) * ra * ca;
    const bo = (bb === 1 ? 0 : i) * rb * cb;
    for (let r = 0; r < m; r++) {
      for (let c = 0; c < n; c++) {
        let s = 0;
        for (let j = 0; j < k; j++) s += a[ao + (tA ? j * ca + r : r * ca + j)]! * b[bo + (tB ? c * cb + j : j * cb + c)]!;
        out[(i * m + r) * n + c] = s;
      }
    }
  }
  return out;
}

function maxRelErr(expected: Float64Array, actual: Float32Array): number {
  assert.equal(actual.length, expected.length);
  let scale = 1e-30;
  for (const v of expected) scale = Math.max(scale, Math.abs(v));
  let err = 0;
  for (let i = 0; i < expected.length; i++) err = Math.max(err, Math.abs(expected[i]! - actual[i]!));
  return err / scale;
}

describe('OpenBLAS matMul on the wasm backend', () => {
  test('is the engine, and the backend log says so', () => {
    assert.equal(choice.name, 'wasm');
    assert.equal(choice.matMul?.name, 'openblas', `engine: ${JSON.stringify(choice.matMul)}`);
    assert.match(choice.matMul!.detail, /^OpenBLAS \d+\.\d+/);
    assert.match(logs.join('\n'), /\[rsn\] backend: wasm .*matMul: OpenBLAS \d/);
  });

  test('every layout equals a float64 product: transposes, batched, shared and broadcast operands', async () => {
    const [m, k, n] = [5, 7, 3];
    // [a's batch dims, b's batch dims, the output's batch dims]
    const batches: [number[], number[], number[]][] = [
      [[], [], []],
      [[4], [], [4]],
      [[], [4], [4]],
      [[2, 3], [2, 3], [2, 3]],
      [[2, 3], [1], [2, 3]],
      [[1, 1], [2, 3], [2, 3]],
    ];
    let seed = 1;
    const before = tf.memory().numTensors;
    for (const [ab, bb, ob] of batches) {
      for (const tA of [false, true]) {
        for (const tB of [false, true]) {
          const aShape = [...ab, ...(tA ? [k, m] : [m, k])];
          const bShape = [...bb, ...(tB ? [n, k] : [k, n])];
          const av = values(aShape.reduce((p, d) => p * d, 1), seed++);
          const bv = values(bShape.reduce((p, d) => p * d, 1), seed++);
          const y = tf.tidy(() => tf.matMul(tf.tensor(av, aShape), tf.tensor(bv, bShape), tA, tB));
          assert.deepEqual(y.shape, [...ob, m, n], `shape for a ${aShape} b ${bShape}`);
          const batch = ob.reduce((p, d) => p * d, 1);
          const size = (s: number[]) => s.slice(0, -2).reduce((p, d) => p * d, 1);
          const ref = reference(av, [size(aShape), ...aShape.slice(-2)], bv, [size(bShape), ...bShape.slice(-2)], tA, tB, batch);
          const err = maxRelErr(ref, (await y.data()) as Float32Array);
          y.dispose();
          assert.ok(err < 1e-6, `a ${aShape}${tA ? 'ᵀ' : ''} · b ${bShape}${tB ? 'ᵀ' : ''}: relative error ${err}`);
        }
      }
    }
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
  });

  test('the forward pass shapes: a weight shared by every row, and attention batches', async () => {
    for (const [aShape, bShape, tB] of [[[64, 512], [512, 1376], false], [[4, 8, 16, 64], [4, 8, 16, 64], true], [[32, 512], [512, 3000], false]] as [number[], number[], boolean][]) {
      const av = values(aShape.reduce((p, d) => p * d, 1), 11);
      const bv = values(bShape.reduce((p, d) => p * d, 1), 12);
      const y = tf.tidy(() => tf.matMul(tf.tensor(av, aShape), tf.tensor(bv, bShape), false, tB));
      const size = (s: number[]) => s.slice(0, -2).reduce((p, d) => p * d, 1);
      const ref = reference(av, [size(aShape), ...aShape.slice(-2)], bv, [size(bShape), ...bShape.slice(-2)], false, tB, size(aShape));
      const err = maxRelErr(ref, (await y.data()) as Float32Array);
      y.dispose();
      assert.ok(err < 1e-6, `${aShape} · ${bShape}: relative error ${err}`);
    }
  });

  test('empty and degenerate sizes: zero rows, zero columns, an empty contraction (zeros), 1×1', async () => {
    const z = tf.matMul(tf.zeros([0, 4]), tf.ones([4, 3]));
    assert.deepEqual(z.shape, [0, 3]);
    const e = tf.matMul(tf.ones([3, 0]), tf.ones([0, 2]));
    assert.deepEqual(e.shape, [3, 2]);
    assert.deepEqual([...(await e.data())], [0, 0, 0, 0, 0, 0]);
    const c = tf.matMul(tf.ones([2, 4]), tf.zeros([4, 0]));
    assert.deepEqual(c.shape, [2, 0]);
    const one = tf.matMul(tf.tensor2d([[3]]), tf.tensor2d([[-2]]));
    assert.deepEqual([...(await one.data())], [-6]);
    tf.dispose([z, e, c, one]);
  });

  test('a product whose output grows the wasm heap reads the grown heap', async () => {
    const backend = tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } };
    const heapBefore = backend.wasm.HEAPU8.buffer.byteLength;
    // The output alone is larger than the heap so far, so allocating it must grow the heap.
    const rows = Math.ceil(Math.sqrt(heapBefore / 4)) + 64;
    const av = values(rows * 2, 21);
    const bv = values(2 * rows, 22);
    const y = tf.tidy(() => tf.matMul(tf.tensor(av, [rows, 2]), tf.tensor(bv, [2, rows])));
    assert.ok(backend.wasm.HEAPU8.buffer.byteLength > heapBefore, 'the heap did not grow; the test does not test what it says');
    const got = await y.data();
    y.dispose();
    const rng = mulberry32(5);
    for (let s = 0; s < 200; s++) {
      const r = rng.intUniform(rows);
      const c = rng.intUniform(rows);
      const want = av[r * 2]! * bv[c]! + av[r * 2 + 1]! * bv[rows + c]!;
      assert.ok(Math.abs(got[r * rows + c]! - want) <= 1e-6 * (1 + Math.abs(want)), `[${r}, ${c}]: ${got[r * rows + c]} vs ${want}`);
    }
  });

  test("what OpenBLAS does not take goes to TF.js's kernel, with its errors", () => {
    const before = tf.memory().numTensors;
    assert.throws(() => tf.tidy(() => tf.matMul(tf.ones([2, 3], 'int32'), tf.ones([3, 2], 'int32'))), /non-float32|float32/);
    assert.throws(() => tf.tidy(() => tf.matMul(tf.ones([2, 3]), tf.ones([4, 2]))), /inner shapes/);
    assert.equal(tf.memory().numTensors, before, 'tensors leaked by a call that threw');
  });

  test('the addon refuses ranges outside the heap and malformed arguments', () => {
    const addon = createRequire(import.meta.url)(addonPath()) as { matMul(...args: unknown[]): void };
    const heap = new ArrayBuffer(4 * (6 + 6 + 4));
    const f = new Float32Array(heap);
    f.set([1, 2, 3, 4, 5, 6], 0); // A 2×3
    f.set([1, 0, 0, 1, 1, 1], 6); // B 3×2
    addon.matMul(heap, 0, 24, 48, 1, 0, 0, 2, 2, 3, 0, 0);
    assert.deepEqual([...f.slice(12)], [4, 5, 10, 11]);
    assert.throws(() => addon.matMul(heap, 0, 24, 52, 1, 0, 0, 2, 2, 3, 0, 0), /C .*outside the heap/);
    assert.throws(() => addon.matMul(heap, 0, 24, 48, 2, 0, 0, 2, 2, 3, 0, 0), /C .*outside the heap/);
    assert.throws(() => addon.matMul(heap, 2, 24, 48, 1, 0, 0, 2, 2, 3, 0, 0), /A .*misaligned/);
    assert.throws(() => addon.matMul(heap, 0, 24, 48, 1, 0, 0, 2, 2, 3e9, 0, 0), RangeError);
    assert.throws(() => addon.matMul(heap, -4, 24, 48, 1, 0, 0, 2, 2, 3, 0, 0), /aOffset must be a non-negative integer/);
    assert.throws(() => addon.matMul(new Float32Array(4), 0, 0, 0, 1, 0, 0, 1, 1, 1, 0, 0), /heap must be an ArrayBuffer/);
    assert.throws(() => addon.matMul(heap, 0, 24), /12 arguments/);
    assert.deepEqual([...f.slice(12)], [4, 5, 10, 11], 'a refused call wrote into the heap');
  });

  test('a failed build leaves no addon and no partial file, and says why', () => {
    const saved = process.env['CC'];
    process.env['CC'] = 'false';
    try {
      const path = addonPath();
      const r = ensureAddon();
      assert.equal(r.ok, false);
      assert.match(r.ok ? '' : r.reason, /compile failed/);
      assert.equal(existsSync(path), false);
      assert.deepEqual(readdirSync(dirname(path)).filter((f) => f.endsWith('.tmp')), []);
    } finally {
      if (saved === undefined) delete process.env['CC'];
      else process.env['CC'] = saved;
    }
  });

  test('a damaged addon (cut short, or one byte changed) is never loaded: it is removed and built again', () => {
    // Another compiler name gives another addon file, so the shared one is left alone.
    const env = { ...process.env, CC: 'gcc', RSN_MATMUL: 'openblas' };
    const saved = process.env['CC'];
    process.env['CC'] = 'gcc';
    const path = addonPath();
    if (saved === undefined) delete process.env['CC'];
    else process.env['CC'] = saved;
    const run = () => spawnSync(process.execPath, ['--import', 'tsx', '-e', "const b = await import('./lib/backend.ts'); const c = await b.initBackend({ backend: 'wasm', log: null }); console.log(c.matMul.name);"], { cwd: ROOT, encoding: 'utf8', env });
    const intact = () => createHash('sha256').update(readFileSync(path)).digest('hex') === readFileSync(`${path}.sha256`, 'utf8').trim();
    const first = run();
    assert.equal(first.status, 0, first.stderr);
    assert.ok(intact(), 'the build recorded the digest of what it wrote');
    const damages: [string, () => void][] = [
      ['cut short', () => truncateSync(path, 1000)],
      ['one byte changed', () => {
        const b = readFileSync(path);
        b[b.length >> 1]! ^= 0xff;
        writeFileSync(path, b);
      }],
    ];
    for (const [name, damage] of damages) {
      damage();
      const r = run();
      assert.deepEqual([r.status, r.signal], [0, null], `${name}: ${r.stderr}`);
      assert.equal(r.stdout.trim().split('\n').pop(), 'openblas', `${name}: the rebuilt addon is used`);
      assert.ok(intact(), `${name}: rebuilt whole`);
    }
  });

  test('RSN_MATMUL: wasm uses TF.js\'s kernel; a bad value and an unavailable forced engine stop the run', () => {
    const run = (env: Record<string, string>) =>
      spawnSync(process.execPath, ['--import', 'tsx', '-e', "const b = await import('./lib/backend.ts'); const c = await b.initBackend({ backend: 'wasm' }); console.log(JSON.stringify(c.matMul));"], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env } });
    const own = run({ RSN_MATMUL: 'wasm' });
    assert.equal(own.status, 0, own.stderr);
    assert.equal(JSON.parse(own.stdout.trim().split('\n').pop()!).name, 'wasm');
    assert.match(own.stderr, /matMul: TF\.js's own \(RSN_MATMUL=wasm\)/);
    const bad = run({ RSN_MATMUL: 'mkl' });
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /RSN_MATMUL=mkl: expected auto, openblas or wasm/);
    // A compiler that cannot build forces "unavailable": forced → an error, auto → wasm's own, saying why.
    const forced = run({ RSN_MATMUL: 'openblas', CC: 'false' });
    assert.notEqual(forced.status, 0);
    assert.match(forced.stderr, /RSN_MATMUL=openblas, but the OpenBLAS matMul is unavailable: the compile failed/);
    const auto = run({ RSN_MATMUL: 'auto', CC: 'false' });
    assert.equal(auto.status, 0, auto.stderr);
    assert.match(auto.stderr, /matMul: TF\.js's own; OpenBLAS unavailable: the compile failed/);
  });
});

/** x's rows `ids` (first axis), as the gather must give them. */
function pickRows(x: Float32Array | Int32Array, rowSize: number, ids: readonly number[]): number[] {
  return ids.flatMap((id) => [...x.subarray(id * rowSize, (id + 1) * rowSize)]);
}

describe('row gathers on the wasm backend', () => {
  test('first-axis gathers copy the rows bit for bit: float32 and int32, repeated ids, nd ids and rows, negative axis', async () => {
    const before = tf.memory().numTensors;
    const table = values(7 * 5, 31);
    const ids = [6, 0, 3, 3, 6, 1];
    const g = tf.tidy(() => tf.gather(tf.tensor2d(table, [7, 5]), tf.tensor1d(ids, 'int32')));
    assert.deepEqual(g.shape, [6, 5]);
    assert.deepEqual([...(await g.data())], pickRows(table, 5, ids));
    const ints = Int32Array.from({ length: 5 * 2 * 3 }, (_, i) => i * 37 - 400);
    const g3 = tf.tidy(() => tf.gather(tf.tensor3d(ints, [5, 2, 3], 'int32'), tf.tensor2d([[4, 0], [2, 4]], [2, 2], 'int32'), -3));
    assert.deepEqual(g3.shape, [2, 2, 2, 3]);
    assert.equal(g3.dtype, 'int32');
    assert.deepEqual([...(await g3.data())], pickRows(ints, 6, [4, 0, 2, 4]));
    const empty = tf.tidy(() => tf.gather(tf.tensor2d(table, [7, 5]), tf.tensor1d([], 'int32')));
    assert.deepEqual(empty.shape, [0, 5]);
    tf.dispose([g, g3, empty]);
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
  });

  test("other gathers go to TF.js's kernel; an index out of range is refused with TF.js's message", async () => {
    const before = tf.memory().numTensors;
    const x = tf.tensor2d([[1, 2, 3], [4, 5, 6]]);
    const cols = tf.tidy(() => tf.gather(x, tf.tensor1d([2, 0], 'int32'), 1));
    assert.deepEqual(await cols.array(), [[3, 1], [6, 4]]);
    assert.throws(() => tf.tidy(() => tf.gather(x, tf.tensor1d([1, 2], 'int32'))), /GatherV2: the index value 2 is not in \[0, 1\]/);
    assert.throws(() => tf.tidy(() => tf.gather(x, tf.tensor1d([-1], 'int32'))), /GatherV2: the index value -1 is not in \[0, 1\]/);
    tf.dispose([x, cols]);
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
  });

  test('a gather whose output grows the wasm heap copies from the right rows', async () => {
    const backend = tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } };
    const heapBefore = backend.wasm.HEAPU8.buffer.byteLength;
    const rowSize = 1024;
    const table = values(3 * rowSize, 41);
    const n = Math.ceil(heapBefore / (4 * rowSize)) + 16;
    const rng = mulberry32(9);
    const ids = Array.from({ length: n }, () => rng.intUniform(3));
    const g = tf.tidy(() => tf.gather(tf.tensor2d(table, [3, rowSize]), tf.tensor1d(ids, 'int32')));
    assert.ok(backend.wasm.HEAPU8.buffer.byteLength > heapBefore, 'the heap did not grow; the test does not test what it says');
    const got = await g.data();
    g.dispose();
    for (const i of [0, 1, n >> 1, n - 1]) assert.deepEqual([...got.subarray(i * rowSize, (i + 1) * rowSize)], [...table.subarray(ids[i]! * rowSize, (ids[i]! + 1) * rowSize)], `row ${i}`);
  });
});
