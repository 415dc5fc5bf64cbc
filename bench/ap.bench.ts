/**
 * Throughput of the AP engine on a Llama-2-sized identification problem: 5000 prompts,
 * 12 relation tasks of ~400 positives + 1600 negatives, 20000 neurons (Llama-2-7B has 835,584,
 * so multiply the time by ~42). Prints one JSON object to stdout.
 *
 *   npx tsx bench/ap.bench.ts [--neurons 20000] [--prompts 5000] [--baseline-neurons 200] [--repeat 1]
 *
 * With --repeat n each configuration runs n times and the fastest run is reported, which is
 * the number to trust on a machine shared with other work.
 *
 * The baseline calls averagePrecision once per neuron per task (a sort per call), which is
 * what a straightforward port of sklearn's loop would do; it is timed on a subset of neurons
 * because it is slow, and reported as neurons/s over all 12 tasks like the engine.
 */
import { availableParallelism, cpus } from 'node:os';
import { parseScriptCommandLine } from '../lib/cli-args.ts';
import { averagePrecision } from '../lib/stats/average-precision.ts';
import { computeNeuronAp, type RelationTask, type TaskAp } from '../lib/stats/ap-engine.ts';
import { mulberry32, sampleNegatives } from '../lib/rng.ts';

const { values: args } = parseScriptCommandLine(process.argv.slice(2), {
  neurons: { type: 'string', default: '20000' },
  prompts: { type: 'string', default: '5000' },
  tasks: { type: 'string', default: '12' },
  'baseline-neurons': { type: 'string', default: '200' },
  repeat: { type: 'string', default: '1' },
});
const N = Number(args.neurons);
const P = Number(args.prompts);
const R = Number(args.tasks);
const baselineNeurons = Math.min(N, Number(args['baseline-neurons']));
const repeat = Math.max(1, Number(args.repeat));

// Roughly Gaussian activations (sum of 4 uniforms) from a seeded generator, so runs compare.
const rng = mulberry32(1234);
const data = new Float32Array(P * N);
for (let i = 0; i < data.length; i++) {
  data[i] = rng.next() + rng.next() + rng.next() + rng.next() - 2;
}

// Prompts are grouped by relation; each task takes 400 of its own as positives and 1600 sampled
// from the other relations' prompts as negatives, as in paper §2.6.
const perRelation = Math.floor(P / R);
const tasks: RelationTask[] = [];
for (let r = 0; r < R; r++) {
  const own = Array.from({ length: perRelation }, (_, i) => r * perRelation + i);
  const others = Array.from({ length: P }, (_, p) => p).filter((p) => p < r * perRelation || p >= (r + 1) * perRelation);
  tasks.push({ name: `rel${r}`, positives: own.slice(0, 400), negatives: sampleNegatives(others, 1600, 100 + r) });
}

async function timeEngine(workers: number): Promise<{ seconds: number; neuronsPerSecond: number; result: TaskAp[] }> {
  let best = Infinity;
  let result: TaskAp[] = [];
  for (let i = 0; i < repeat; i++) {
    const t0 = performance.now();
    result = await computeNeuronAp({ data, numPrompts: P, numNeurons: N }, tasks, { workers });
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  return { seconds: best, neuronsPerSecond: N / best, result };
}

function timeBaseline(): { seconds: number; neuronsPerSecond: number; reference: Float64Array[] } {
  const reference = tasks.map(() => new Float64Array(baselineNeurons));
  const t0 = performance.now();
  for (let j = 0; j < baselineNeurons; j++) {
    for (let r = 0; r < R; r++) {
      const t = tasks[r];
      const n = t.positives.length + t.negatives.length;
      const scores = new Float64Array(n);
      const labels = new Uint8Array(n);
      for (let i = 0; i < t.positives.length; i++) {
        scores[i] = data[t.positives[i] * N + j];
        labels[i] = 1;
      }
      for (let i = 0; i < t.negatives.length; i++) scores[t.positives.length + i] = data[t.negatives[i] * N + j];
      reference[r][j] = averagePrecision(scores, labels);
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, neuronsPerSecond: baselineNeurons / seconds, reference };
}

const engine0 = await timeEngine(0);
const engine1 = await timeEngine(1);
const engine2 = await timeEngine(2);
const baseline = timeBaseline();

let maxAbsDiff = 0;
for (const run of [engine0, engine1, engine2]) {
  for (let r = 0; r < R; r++) {
    for (let j = 0; j < baselineNeurons; j++) {
      maxAbsDiff = Math.max(maxAbsDiff, Math.abs(run.result[r].ap[j] - baseline.reference[r][j]));
    }
  }
}

const round = (x: number, d = 3): number => Number(x.toFixed(d));
console.log(
  JSON.stringify({
    bench: 'ap-engine',
    prompts: P,
    neurons: N,
    tasks: R,
    repeat,
    positivesPerTask: 400,
    negativesPerTask: 1600,
    cpu: cpus()[0]?.model ?? 'unknown',
    availableParallelism: availableParallelism(),
    node: process.version,
    engine: {
      mainThread: { workers: 0, seconds: round(engine0.seconds), neuronsPerSecond: Math.round(engine0.neuronsPerSecond) },
      workers1: { workers: 1, seconds: round(engine1.seconds), neuronsPerSecond: Math.round(engine1.neuronsPerSecond) },
      workers2: { workers: 2, seconds: round(engine2.seconds), neuronsPerSecond: Math.round(engine2.neuronsPerSecond) },
    },
    baselinePerNeuronPerTask: {
      neuronsTimed: baselineNeurons,
      seconds: round(baseline.seconds),
      neuronsPerSecond: Math.round(baseline.neuronsPerSecond),
    },
    speedup2WorkersVsBaseline: round(engine2.neuronsPerSecond / baseline.neuronsPerSecond, 1),
    maxAbsDiffEngineVsBaseline: maxAbsDiff,
    llama2_7bEstimateSeconds2Workers: round(835584 / engine2.neuronsPerSecond, 1),
  }),
);
