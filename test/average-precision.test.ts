import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { averagePrecision } from '../lib/stats/average-precision.ts';
import {
  computeNeuronAp,
  computeNeuronApSync,
  topK,
  type ActivationSource,
  type RelationTask,
  type TaskAp,
} from '../lib/stats/ap-engine.ts';
import { mulberry32, sampleNegatives } from '../lib/rng.ts';

// Fixture from sklearn.metrics.average_precision_score: scores[example][neuron], labels[example].
const fixturePath = new URL('./fixtures/average-precision/reference.json', import.meta.url);
const ref = JSON.parse(readFileSync(fixturePath, 'utf8')) as { labels: number[]; scores: number[][]; ap: number[] };
const P = ref.labels.length;
const N = ref.ap.length;
const column = (j: number): number[] => ref.scores.map((row) => row[j]);

// The engine works on float32; the reference function then gets the same float32 values so the
// comparison is exact (rounding to float32 could in principle merge two close scores into a tie).
const matrix = new Float32Array(P * N);
for (let p = 0; p < P; p++) for (let j = 0; j < N; j++) matrix[p * N + j] = ref.scores[p][j];
const f32Column = (j: number, prompts: readonly number[]): number[] => prompts.map((p) => matrix[p * N + j]);

test('fixture layout is scores[example][neuron]', () => {
  assert.equal(ref.scores.length, P);
  assert.equal(ref.scores[0].length, N);
  assert.equal(P, 250);
  assert.equal(N, 40);
});

test('averagePrecision equals sklearn on every fixture column (ties, constant, anti-correlated)', () => {
  for (let j = 0; j < N; j++) {
    const got = averagePrecision(column(j), ref.labels);
    assert.ok(Math.abs(got - ref.ap[j]) <= 1e-9, `neuron ${j}: got ${got}, sklearn ${ref.ap[j]}`);
  }
  // The special columns are really in there: one constant column (AP = positive rate) and heavy ties.
  const positiveRate = ref.labels.filter((l) => l === 1).length / P;
  const constant = Array.from({ length: N }, (_, j) => j).filter((j) => new Set(column(j)).size === 1);
  assert.ok(constant.length >= 1, 'fixture should contain a constant column');
  for (const j of constant) assert.ok(Math.abs(averagePrecision(column(j), ref.labels) - positiveRate) < 1e-12);
  assert.ok(
    Array.from({ length: N }, (_, j) => new Set(column(j)).size).some((d) => d < P / 2),
    'fixture should contain a heavily tied column',
  );
});

test('averagePrecision accepts boolean labels and typed arrays', () => {
  const bools = ref.labels.map((l) => l === 1);
  assert.equal(averagePrecision(Float64Array.from(column(3)), bools), averagePrecision(column(3), ref.labels));
});

test('averagePrecision tie handling: a tie across labels is one threshold', () => {
  // Scores [1, 1, 0] with labels [0, 1, 1]: the tied pair enters together (P = 1/2 at R = 1/2),
  // then R = 1 at P = 2/3 → AP = 1/2·1/2 + 1/2·2/3 = 7/12 (sklearn gives the same).
  assert.ok(Math.abs(averagePrecision([1, 1, 0], [0, 1, 1]) - 7 / 12) < 1e-15);
  // −0 and +0 are the same score.
  assert.equal(averagePrecision([0, -0, -1], [1, 0, 1]), averagePrecision([0, 0, -1], [1, 0, 1]));
});

test('invariants: perfect separator = 1, all positive = 1, reversed separator = sklearn value', () => {
  assert.equal(averagePrecision([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]), 1);
  assert.equal(averagePrecision([3, 3, 1, -2], [1, 1, 1, 1]), 1);
  // Positives ranked last: precisions 1/3 and 2/4 → AP = (1/3 + 1/2) / 2.
  assert.ok(Math.abs(averagePrecision([4, 3, 2, 1], [0, 0, 1, 1]) - (1 / 3 + 1 / 2) / 2) < 1e-15);
});

test('averagePrecision errors: length mismatch, no positives, NaN, bad label, empty', () => {
  assert.throws(() => averagePrecision([1, 2, 3], [1, 0]), { name: 'RangeError', message: /3 scores but 2 labels/ });
  assert.throws(() => averagePrecision([1, 2], [0, 0]), { name: 'RangeError', message: /no positive labels/ });
  assert.throws(() => averagePrecision([1, NaN], [1, 0]), { name: 'RangeError', message: /score 1 is NaN/ });
  assert.throws(() => averagePrecision([1, Infinity], [1, 0]), { name: 'RangeError', message: /finite/ });
  assert.throws(() => averagePrecision([1, 2], [1, 2]), { name: 'RangeError', message: /label 1 is 2/ });
  assert.throws(() => averagePrecision([], []), { name: 'RangeError', message: /empty/ });
});

// ---- engine ------------------------------------------------------------------------------------

const all = Array.from({ length: P }, (_, p) => p);
const fixturePositives = all.filter((p) => ref.labels[p] === 1);
const fixtureNegatives = all.filter((p) => ref.labels[p] === 0);
// A second task over a different subset: every third positive, and negatives sampled from the
// rest, labelled the same way as in the fixture. A third task flips the labels on another subset.
const subPositives = fixturePositives.filter((_, i) => i % 3 !== 1);
const subNegatives = sampleNegatives(fixtureNegatives, 90, 7);
const flipPositives = fixtureNegatives.filter((p) => p % 5 === 0);
const flipNegatives = fixturePositives.filter((p) => p % 2 === 0);
const tasks: RelationTask[] = [
  { name: 'fixture', positives: fixturePositives, negatives: fixtureNegatives },
  { name: 'subset', positives: subPositives, negatives: subNegatives },
  { name: 'flipped', positives: flipPositives, negatives: flipNegatives },
];

function expectedFor(task: RelationTask, j: number): number {
  const prompts = [...Array.from(task.positives), ...Array.from(task.negatives)];
  const labels = prompts.map((_, i) => (i < task.positives.length ? 1 : 0));
  return averagePrecision(f32Column(j, prompts), labels);
}

function assertMatchesReference(results: TaskAp[], label: string): void {
  assert.equal(results.length, tasks.length);
  for (let r = 0; r < tasks.length; r++) {
    assert.equal(results[r].name, tasks[r].name);
    assert.equal(results[r].ap.length, N);
    assert.equal(results[r].numPositives, tasks[r].positives.length);
    assert.equal(results[r].numNegatives, tasks[r].negatives.length);
    for (let j = 0; j < N; j++) {
      const want = expectedFor(tasks[r], j);
      const got = results[r].ap[j];
      assert.ok(Math.abs(got - want) <= 1e-12, `${label}: task ${tasks[r].name}, neuron ${j}: ${got} vs ${want}`);
    }
  }
  // And the full-fixture task against sklearn itself.
  for (let j = 0; j < N; j++) assert.ok(Math.abs(results[0].ap[j] - ref.ap[j]) <= 1e-9, `${label}: neuron ${j} vs sklearn`);
}

const dense = { data: matrix, numPrompts: P, numNeurons: N };

test('engine (sync, chunk sizes that do not divide N) equals averagePrecision per task and neuron', () => {
  for (const chunkSize of [1, 7, 16, 17, 40, 1000]) {
    assertMatchesReference(computeNeuronApSync(dense, tasks, { chunkSize }), `sync chunk ${chunkSize}`);
  }
});

test('engine on the calling thread (workers: 0) with an async source', async () => {
  let calls = 0;
  const source: ActivationSource = {
    numPrompts: P,
    numNeurons: N,
    async getChunk(start, end) {
      calls++;
      const w = end - start;
      const out = new Float32Array(P * w);
      for (let p = 0; p < P; p++) out.set(matrix.subarray(p * N + start, p * N + end), p * w);
      return out;
    },
  };
  assertMatchesReference(await computeNeuronAp(source, tasks, { workers: 0, chunkSize: 9 }), 'workers 0');
  assert.equal(calls, Math.ceil(N / 9));
});

test('engine with worker threads (1 and 2 workers) equals averagePrecision', async () => {
  for (const workers of [1, 2]) {
    const progress: number[] = [];
    const results = await computeNeuronAp(dense, tasks, {
      workers,
      chunkSize: 6,
      onProgress: (p) => progress.push(p.doneNeurons),
    });
    assertMatchesReference(results, `${workers} workers`);
    assert.equal(progress.at(-1), N, 'progress reaches N');
  }
});

test('engine: many tasks (> 31, several mask words), ties, −0, prompts in no task', async () => {
  const rng = mulberry32(99);
  const Pp = 180;
  const Nn = 37;
  // Coarse values force ties, including across labels, and mix ±0 and negatives.
  const values = [-1.5, -0.5, -0, 0, 0.25, 0.5, 2, 3.75];
  const data = new Float32Array(Pp * Nn);
  for (let i = 0; i < data.length; i++) data[i] = values[rng.intUniform(values.length)];
  for (let p = 0; p < Pp; p++) data[p * Nn + 5] = 1; // a constant neuron
  const many: RelationTask[] = [];
  for (let r = 0; r < 45; r++) {
    const pool = Array.from({ length: Pp - 10 }, (_, p) => p); // prompts 170..179 are in no task
    const picked = sampleNegatives(pool, 20 + rng.intUniform(100), 1000 + r);
    const nPos = 1 + rng.intUniform(Math.min(30, picked.length - 1));
    // r = 44 has no negatives: AP is 1 whatever the scores.
    many.push({ name: `t${r}`, positives: picked.slice(0, nPos), negatives: r === 44 ? [] : picked.slice(nPos) });
  }
  const check = (results: TaskAp[], label: string): void => {
    for (let r = 0; r < many.length; r++) {
      const t = many[r];
      const prompts = [...Array.from(t.positives), ...Array.from(t.negatives)];
      const labels = prompts.map((_, i) => (i < t.positives.length ? 1 : 0));
      for (let j = 0; j < Nn; j++) {
        const want = averagePrecision(prompts.map((p) => data[p * Nn + j]), labels);
        assert.ok(Math.abs(results[r].ap[j] - want) <= 1e-12, `${label}: task ${r}, neuron ${j}`);
      }
    }
    assert.ok(results[44].ap.every((v) => v === 1));
  };
  check(computeNeuronApSync({ data, numPrompts: Pp, numNeurons: Nn }, many, { chunkSize: 10 }), 'sync');
  check(await computeNeuronAp({ data, numPrompts: Pp, numNeurons: Nn }, many, { chunkSize: 10, workers: 2 }), 'workers');
});

test('engine errors: bad tasks, non-finite activations (on the thread and in a worker)', async () => {
  const bad = (t: Partial<RelationTask>): RelationTask[] => [{ name: 'x', positives: [0], negatives: [1], ...t }];
  assert.throws(() => computeNeuronApSync(dense, bad({ positives: [] })), /no positive prompts/);
  assert.throws(() => computeNeuronApSync(dense, bad({ positives: [P] })), /not a prompt index/);
  assert.throws(() => computeNeuronApSync(dense, bad({ positives: [1.5] })), /not a prompt index/);
  assert.throws(() => computeNeuronApSync(dense, bad({ negatives: [0] })), /both positives and negatives/);
  assert.throws(() => computeNeuronApSync(dense, bad({ negatives: [1, 1] })), /twice among negatives/);
  assert.throws(() => computeNeuronApSync(dense, [...bad({}), ...bad({})]), /appears twice; names must be unique/);
  assert.throws(() => computeNeuronApSync(dense, []), /no relation tasks/);
  assert.throws(() => computeNeuronApSync({ data: matrix, numPrompts: P, numNeurons: N + 1 }, tasks), /expected 250 prompts × 41 neurons/);
  await assert.rejects(computeNeuronAp(dense, tasks, { workers: -1 }), /workers must be a non-negative integer/);
  assert.throws(() => computeNeuronApSync(dense, tasks, { chunkSize: 0 }), /chunkSize/);

  const withNaN = matrix.slice();
  withNaN[17 * N + 33] = NaN;
  const nanInput = { data: withNaN, numPrompts: P, numNeurons: N };
  assert.throws(() => computeNeuronApSync(nanInput, tasks), { name: 'NonFiniteScoreError', message: /neuron 33 on prompt 17 is NaN/ });
  await assert.rejects(computeNeuronAp(nanInput, tasks, { workers: 2, chunkSize: 8 }), {
    name: 'RangeError',
    message: /neuron 33 on prompt 17 is NaN/,
  });
});

// ---- topK, sampling -----------------------------------------------------------------------------

test('topK: order by (−AP, index), ties stable, prefixes consistent', () => {
  const ap = [0.5, 0.9, 0.5, 0.1, 0.9, 0.5, 0.7];
  assert.deepEqual(Array.from(topK(ap, 7)), [1, 4, 6, 0, 2, 5, 3]);
  assert.deepEqual(Array.from(topK(ap, 4)), [1, 4, 6, 0]);
  assert.deepEqual(Array.from(topK(ap, 5)), [1, 4, 6, 0, 2]);
  assert.deepEqual(Array.from(topK(ap, 0)), []);
  assert.deepEqual(Array.from(topK(new Float64Array([0, -0, 0]), 2)), [0, 1]);
  // Against a plain comparator sort on a bigger random vector with many ties.
  const rng = mulberry32(3);
  const big = Float64Array.from({ length: 5000 }, () => rng.intUniform(200) / 200);
  const full = Array.from(big.keys()).sort((a, b) => big[b] - big[a] || a - b);
  for (const k of [1, 17, 250, 4999, 5000]) assert.deepEqual(Array.from(topK(big, k)), full.slice(0, k), `k=${k}`);
});

test('topK errors', () => {
  assert.throws(() => topK([0.1, 0.2], 3), { name: 'RangeError', message: /k must be an integer in \[0, 2\]/ });
  assert.throws(() => topK([0.1, 0.2], -1), RangeError);
  assert.throws(() => topK([0.1, 0.2], 1.5), RangeError);
  assert.throws(() => topK([0.1, NaN], 1), /NaN/);
});

test('sampleNegatives: deterministic per seed, distinct, from the candidates, errors', () => {
  const candidates = Array.from({ length: 1000 }, (_, i) => 3 * i + 1);
  const a = sampleNegatives(candidates, 300, 42);
  const b = sampleNegatives(candidates, 300, 42);
  const c = sampleNegatives(candidates, 300, 43);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  assert.equal(new Set(a).size, 300);
  const allowed = new Set(candidates);
  assert.ok(a.every((v) => allowed.has(v)));
  assert.deepEqual(sampleNegatives(candidates, 100, 42), a.slice(0, 100), 'smaller sample is a prefix');
  assert.deepEqual([...sampleNegatives(candidates, 1000, 5)].sort((x, y) => x - y), candidates);
  assert.deepEqual(sampleNegatives(candidates, 0, 1), []);
  assert.throws(() => sampleNegatives(candidates, 1001, 1), { name: 'RangeError', message: /asked for 1001 .* only 1000/ });
  assert.throws(() => sampleNegatives([1, 2, 2], 1, 1), /appears twice/);
  assert.throws(() => sampleNegatives([1, 2], 1.5, 1), RangeError);
});

test('sampleNegatives is roughly uniform', () => {
  const hits = new Array<number>(10).fill(0);
  for (let seed = 0; seed < 2000; seed++) for (const v of sampleNegatives([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 3, seed)) hits[v]++;
  // 6000 draws over 10 values: 600 each; 5 sigma ≈ 110.
  for (const h of hits) assert.ok(Math.abs(h - 600) < 110, `counts ${hits.join(',')}`);
});

test('mulberry32 is reproducible and its state resumes the stream', () => {
  const g = mulberry32(2025);
  const first = [g.nextUint32(), g.nextUint32(), g.nextUint32()];
  const resumed = mulberry32(g.state);
  const h = mulberry32(2025);
  assert.deepEqual([h.nextUint32(), h.nextUint32(), h.nextUint32()], first);
  assert.equal(resumed.nextUint32(), h.nextUint32());
  for (let i = 0; i < 1000; i++) {
    const f = g.next();
    assert.ok(f >= 0 && f < 1);
    const k = g.intUniform(7);
    assert.ok(Number.isInteger(k) && k >= 0 && k < 7);
  }
  assert.throws(() => mulberry32(0.5), RangeError);
  assert.throws(() => g.intUniform(0), RangeError);
});
