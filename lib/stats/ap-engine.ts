/**
 * Average precision of every neuron for every relation task (paper §3, step 2), at Llama-2
 * scale (~835k neurons × ~5k prompts × 12 relations).
 *
 * Why it is fast: a neuron's ranking of the prompts does not depend on the relation, so each
 * neuron's P scores are sorted once (radix sort on the float bits) and each task is then a
 * single linear pass over that order, skipping prompts outside the task. Ties — including ties
 * between a task's positives and negatives — form one threshold group, exactly as in
 * sklearn.metrics.average_precision_score, so every value equals `averagePrecision` on the same
 * float32 scores bit for bit.
 *
 * Why chunks: the pooled matrix does not fit in memory at that scale. Neurons are processed in
 * chunks fetched from an ActivationSource (e.g. streamed from disk); at most 2 chunks per worker
 * plus the one being fetched are alive at once.
 */
import { workerCount } from '../exec/worker-count.ts';
import { WorkerPool } from '../exec/worker-pool.ts';
import { ApChunkKernel, CODE_NEG, CODE_POS, NonFiniteScoreError } from './average-precision.ts';
import type { ApWorkerInit, ApWorkerJob, ApWorkerReply } from './ap-worker.ts';

export { sampleNegatives } from '../rng.ts';

/** One relation's identification problem: labels 1 for positives, 0 for negatives. */
export interface RelationTask {
  name: string;
  /** Prompt indices (rows of the activation matrix) labelled 1. At least one. */
  positives: ArrayLike<number>;
  /** Prompt indices labelled 0; disjoint from positives. Other prompts are ignored. */
  negatives: ArrayLike<number>;
}

/** Pooled activations held in memory: row-major [P][N] (prompt-major). */
export interface DenseActivations {
  data: Float32Array;
  numPrompts: number;
  numNeurons: number;
}

/**
 * Pooled activations fetched by neuron range, e.g. from disk.
 * `getChunk(start, end)` returns [P][end-start] float32, prompt-major. It is called once per
 * chunk, in increasing order, never concurrently. The engine takes ownership of the returned
 * array: it may be transferred to a worker thread, which detaches its buffer, so return a
 * fresh array (or a copy), not a view of something you keep using.
 */
export interface ActivationSource {
  numPrompts: number;
  numNeurons: number;
  getChunk(start: number, end: number): Float32Array | Promise<Float32Array>;
}

export interface ApProgress {
  doneNeurons: number;
  totalNeurons: number;
  neuronsPerSecond: number;
  /** Seconds left at the current rate; NaN before the first chunk completes. */
  etaSeconds: number;
}

export interface ApEngineOptions {
  /**
   * Neurons per chunk. Default: about 4 MiB of float32 per chunk (2^20 / P neurons, rounded
   * down to a multiple of 16, at least 16), capped at N.
   */
  chunkSize?: number;
  /**
   * Worker threads. 0 runs on the calling thread. Default: lib/exec's policy (RSN_WORKERS, else
   * the available cores, as many as host memory holds), and never more than the number of chunks.
   */
  workers?: number;
  onProgress?: (p: ApProgress) => void;
}

export interface TaskAp {
  name: string;
  /** AP per neuron, index = neuron index (column of the activation matrix). */
  ap: Float64Array;
  numPositives: number;
  numNegatives: number;
}

/** Wrap an in-memory [P][N] matrix as an ActivationSource (each chunk is a fresh copy). */
export function denseSource(m: DenseActivations): ActivationSource {
  const { data, numPrompts: P, numNeurons: N } = m;
  checkDims(P, N);
  if (data.length !== P * N) {
    throw new RangeError(`activation matrix has ${data.length} values, expected ${P} prompts × ${N} neurons`);
  }
  return {
    numPrompts: P,
    numNeurons: N,
    getChunk(start: number, end: number): Float32Array {
      const w = end - start;
      const out = new Float32Array(P * w);
      for (let p = 0; p < P; p++) out.set(data.subarray(p * N + start, p * N + end), p * w);
      return out;
    },
  };
}

function checkDims(P: number, N: number): void {
  if (!Number.isSafeInteger(P) || P < 1) throw new RangeError(`numPrompts must be a positive integer, found ${P}`);
  if (!Number.isSafeInteger(N) || N < 1) throw new RangeError(`numNeurons must be a positive integer, found ${N}`);
}

function asSource(input: DenseActivations | ActivationSource): ActivationSource {
  if ('getChunk' in input) {
    checkDims(input.numPrompts, input.numNeurons);
    return input;
  }
  return denseSource(input);
}

interface PreparedTasks {
  codes: Uint8Array; // [R][P]
  counts: { numPositives: number; numNegatives: number }[];
}

/** Validate tasks against P and build the [R][P] code table the kernel reads. */
function prepareTasks(tasks: readonly RelationTask[], P: number): PreparedTasks {
  if (tasks.length === 0) throw new RangeError('no relation tasks given');
  const R = tasks.length;
  const codes = new Uint8Array(R * P);
  const names = new Set<string>();
  const counts: PreparedTasks['counts'] = [];
  for (let r = 0; r < R; r++) {
    const t = tasks[r];
    if (names.has(t.name)) throw new RangeError(`task name "${t.name}" appears twice; names must be unique`);
    names.add(t.name);
    const off = r * P;
    const mark = (list: ArrayLike<number>, code: number, what: string): void => {
      for (let i = 0; i < list.length; i++) {
        const p = list[i];
        if (!Number.isInteger(p) || p < 0 || p >= P) {
          throw new RangeError(`task "${t.name}": ${what}[${i}] = ${p} is not a prompt index in [0, ${P})`);
        }
        const prev = codes[off + p];
        if (prev !== 0) {
          const where = prev === code ? `twice among ${what}` : 'among both positives and negatives';
          throw new RangeError(`task "${t.name}": prompt ${p} appears ${where}`);
        }
        codes[off + p] = code;
      }
    };
    mark(t.positives, CODE_POS, 'positives');
    mark(t.negatives, CODE_NEG, 'negatives');
    if (t.positives.length === 0) {
      throw new RangeError(`task "${t.name}" has no positive prompts; average precision is undefined`);
    }
    counts.push({ numPositives: t.positives.length, numNegatives: t.negatives.length });
  }
  return { codes, counts };
}

function resolveChunkSize(requested: number | undefined, P: number, N: number): number {
  if (requested !== undefined) {
    if (!Number.isSafeInteger(requested) || requested < 1) {
      throw new RangeError(`chunkSize must be a positive integer, found ${requested}`);
    }
    return Math.min(requested, N);
  }
  return Math.min(N, Math.max(16, Math.floor((1 << 20) / P / 16) * 16));
}

function makeResults(tasks: readonly RelationTask[], prep: PreparedTasks, N: number): TaskAp[] {
  return tasks.map((t, r) => ({ name: t.name, ap: new Float64Array(N), ...prep.counts[r] }));
}

/** Scatter a chunk's [R][width] result into the per-task arrays. */
function store(results: TaskAp[], start: number, width: number, ap: Float64Array): void {
  for (let r = 0; r < results.length; r++) results[r].ap.set(ap.subarray(r * width, (r + 1) * width), start);
}

function checkChunk(chunk: unknown, P: number, start: number, end: number): Float32Array {
  if (!(chunk instanceof Float32Array)) {
    throw new TypeError(`getChunk(${start}, ${end}) must return a Float32Array`);
  }
  if (chunk.length !== P * (end - start)) {
    throw new RangeError(
      `getChunk(${start}, ${end}) returned ${chunk.length} values, expected ${P} prompts × ${end - start} neurons`,
    );
  }
  return chunk;
}

function progressReporter(N: number, cb: ApEngineOptions['onProgress']): (done: number) => void {
  const t0 = performance.now();
  return (done: number) => {
    if (cb === undefined) return;
    const s = (performance.now() - t0) / 1000;
    const rate = s > 0 ? done / s : NaN;
    cb({ doneNeurons: done, totalNeurons: N, neuronsPerSecond: rate, etaSeconds: rate > 0 ? (N - done) / rate : NaN });
  };
}

/**
 * Synchronous version, on the calling thread: for small matrices, tests and notebooks.
 * The source's getChunk must return synchronously.
 */
export function computeNeuronApSync(
  input: DenseActivations | ActivationSource,
  tasks: readonly RelationTask[],
  options: Omit<ApEngineOptions, 'workers'> = {},
): TaskAp[] {
  const source = asSource(input);
  const P = source.numPrompts;
  const N = source.numNeurons;
  const prep = prepareTasks(tasks, P);
  const cs = resolveChunkSize(options.chunkSize, P, N);
  const kernel = new ApChunkKernel(P, tasks.length, prep.codes);
  const results = makeResults(tasks, prep, N);
  const report = progressReporter(N, options.onProgress);
  for (let start = 0; start < N; start += cs) {
    const end = Math.min(N, start + cs);
    const got: unknown = source.getChunk(start, end);
    if (got instanceof Promise) {
      throw new TypeError('computeNeuronApSync needs a synchronous getChunk; use computeNeuronAp for async sources');
    }
    const chunk = checkChunk(got, P, start, end);
    const out = new Float64Array(tasks.length * (end - start));
    kernel.run(chunk, end - start, out, start);
    store(results, start, end - start, out);
    report(end);
  }
  return results;
}

/**
 * AP of every neuron for every task: result[r].ap[m] = average_precision_score(labels_r,
 * activations[:, m]) restricted to task r's prompts.
 *
 * Throws (rejects with) RangeError for invalid tasks (index out of range, duplicate, prompt in
 * both sets, no positives) or a non-finite activation, naming the neuron and prompt.
 */
export async function computeNeuronAp(
  input: DenseActivations | ActivationSource,
  tasks: readonly RelationTask[],
  options: ApEngineOptions = {},
): Promise<TaskAp[]> {
  const source = asSource(input);
  const P = source.numPrompts;
  const N = source.numNeurons;
  const prep = prepareTasks(tasks, P);
  const cs = resolveChunkSize(options.chunkSize, P, N);
  const numChunks = Math.ceil(N / cs);
  const requested = options.workers;
  if (requested !== undefined && (!Number.isSafeInteger(requested) || requested < 0)) {
    throw new RangeError(`workers must be a non-negative integer, found ${requested}`);
  }
  // A worker holds its chunks in flight, its result and the kernel's per-prompt scratch.
  const perWorkerBytes = (IN_FLIGHT_PER_WORKER + 1) * P * cs * 4 + tasks.length * cs * 8 + P * 32;
  const numWorkers = requested === 0 ? 0 : Math.min(workerCount({ requested, perWorkerBytes }), numChunks);
  if (numWorkers === 0) {
    // Same loop as the sync path, but awaiting the source so async sources work too.
    const kernel = new ApChunkKernel(P, tasks.length, prep.codes);
    const results = makeResults(tasks, prep, N);
    const report = progressReporter(N, options.onProgress);
    for (let start = 0; start < N; start += cs) {
      const end = Math.min(N, start + cs);
      const chunk = checkChunk(await source.getChunk(start, end), P, start, end);
      const out = new Float64Array(tasks.length * (end - start));
      kernel.run(chunk, end - start, out, start);
      store(results, start, end - start, out);
      report(end);
    }
    return results;
  }
  return runWithWorkers(source, tasks, prep, cs, numWorkers, options.onProgress);
}

/** Chunks in flight per worker: one computing, one queued, so a worker never waits on getChunk. */
const IN_FLIGHT_PER_WORKER = 2;

async function runWithWorkers(
  source: ActivationSource,
  tasks: readonly RelationTask[],
  prep: PreparedTasks,
  cs: number,
  numWorkers: number,
  onProgress: ApEngineOptions['onProgress'],
): Promise<TaskAp[]> {
  const P = source.numPrompts;
  const N = source.numNeurons;
  const init: ApWorkerInit = { numPrompts: P, numTasks: tasks.length, codes: prep.codes };
  const results = makeResults(tasks, prep, N);
  const report = progressReporter(N, onProgress);
  const pool = new WorkerPool<ApWorkerJob, ApWorkerReply>({ callerUrl: import.meta.url, moduleBase: 'ap-worker', threads: numWorkers, init });
  const inFlight = new Set<Promise<void>>();
  let done = 0;
  let failure: Error | null = null;
  try {
    for (let start = 0; start < N && failure === null; start += cs) {
      const end = Math.min(N, start + cs);
      // Fetch before waiting for a slot, so reading the next chunk overlaps with compute.
      let chunk = checkChunk(await source.getChunk(start, end), P, start, end);
      while (inFlight.size >= IN_FLIGHT_PER_WORKER * numWorkers && failure === null) await Promise.race(inFlight);
      if (failure !== null) break;
      // Transfer, don't clone: a clone would copy the whole underlying buffer, which for a view
      // can be far bigger than the chunk. A shared buffer is already visible to the worker.
      const shared = typeof SharedArrayBuffer !== 'undefined' && chunk.buffer instanceof SharedArrayBuffer;
      if (!shared && (chunk.byteOffset !== 0 || chunk.byteLength !== chunk.buffer.byteLength)) chunk = chunk.slice();
      const job: ApWorkerJob = { start, width: end - start, data: chunk };
      const task: Promise<void> = pool.run(job, shared ? [] : [chunk.buffer as ArrayBuffer]).then(
        (msg) => {
          if (msg.type === 'error') {
            failure ??= msg.name === NonFiniteScoreError.name ? new RangeError(msg.message) : new Error(`AP worker: ${msg.name}: ${msg.message}`);
            return;
          }
          store(results, msg.start, msg.width, msg.ap);
          done += msg.width;
          report(done);
        },
        (e: Error) => {
          failure ??= new Error(`an AP worker thread failed: ${e.message}`, { cause: e });
        },
      );
      inFlight.add(task);
      void task.finally(() => inFlight.delete(task));
    }
    await Promise.all(inFlight);
    if (failure !== null) throw failure;
    return results;
  } finally {
    await pool.close();
  }
}

/**
 * Indices of the k largest values, ordered by (−AP, index): ties keep the lower neuron index
 * first, so a ranking is reproducible and prefixes of topK(ap, 3000) are topK(ap, k) for k < 3000.
 * Throws RangeError when k is not an integer in [0, N] or a value is NaN.
 */
export function topK(ap: ArrayLike<number>, k: number): Int32Array {
  const n = ap.length;
  if (!Number.isInteger(k) || k < 0 || k > n) {
    throw new RangeError(`topK: k must be an integer in [0, ${n}] (the number of values), found ${k}`);
  }
  const values = Float64Array.from(ap);
  for (let i = 0; i < n; i++) {
    if (Number.isNaN(values[i])) throw new RangeError(`topK: value ${i} is NaN`);
  }
  if (k === 0) return new Int32Array(0);
  // k-th largest value via a native numeric sort (fast even at 835k values), then collect the
  // winners in index order, which makes the final comparator sort only over k items and stable.
  const sorted = values.slice().sort();
  const kth = sorted[n - k];
  let above = 0;
  for (let i = 0; i < n; i++) if (values[i] > kth) above++;
  const out = new Int32Array(k);
  let a = 0;
  let t = above; // the ties with kth fill the slots after the strictly larger values
  for (let i = 0; i < n && (a < above || t < k); i++) {
    const v = values[i];
    if (v > kth) out[a++] = i;
    else if (v === kth && t < k) out[t++] = i;
  }
  // Slots [above, k) already hold tied indices in increasing order; only the strictly larger
  // part needs sorting by value.
  const head = out.subarray(0, above);
  head.sort((x, y) => values[y] - values[x] || x - y);
  return out;
}
