/**
 * The model runner: loads a converted checkpoint (any family of family.ts) and runs the decoder (decoder.ts) over
 * batches: left padding, micro-batches processed layer-major, resident or streamed weights,
 * the KV cache, one greedy generation loop, hook compilation and recording, and the memory
 * guard. The maths itself lives in decoder.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { checkDeviceErrors, clearDeviceErrors, initBackend } from '../backend.ts';
import { CheckpointError, HookError, OutOfMemoryError, ShapeError } from '../errors.ts';
import { LlamaTokenizer } from '../tokenizer.ts';
import { concatFloat32, padLeft, type PaddedBatch, rowRanges } from './batch.ts';
import { type EmbeddingTable, gatherRows, linear, type LinearWeight } from './blocked.ts';
import { ActivationCache } from './activation-cache.ts';
import { ActivationRecord } from './activation-record.ts';
import { type PointSelection, runWithCache, type RunWithCacheOptions } from './record-spec.ts';
import { attentionContext, type DecoderMath, type DecoderPass, decoderLayer, disposeAttentionContext, embed, head } from './decoder.ts';
import { checkPositionLimit, expectedTensors, type LlamaConfig, readLlamaConfig } from './config.ts';
import { addsBosByDefault } from './family.ts';
import { CompiledHooks, type Hooks, sliceHooks } from './hooks.ts';
import { type ForwardOptions, type ForwardResult, type GenerateOptions, type GenerateResult, type ModelInfo, modelLabel, type ModelRunner } from './runner.ts';
import { WeightStore } from './weights.ts';
import { type ExecutionPlan, type LayerWeights, ResidentWeights, storeReader, StreamedWeights, type WeightSource } from './weight-source.ts';
import { availableDeviceMemory, checkWeightsFit, choosePlan, formatGB, outOfMemory, predictMemory, type Workload } from './memory-plan.ts';

export type { GlobalWeights, LayerWeights, ModelWeights } from './weight-source.ts';

export { ActivationRecord } from './activation-record.ts';
export type { ForwardOptions, ForwardResult, GenerateOptions, GenerateResult, ModelInfo, ModelRunner } from './runner.ts';

export interface LoadOptions {
  backend?: string;
  /**
   * How the files are checked against model.json's digests: 'stat' (default) reads a file again
   * only when its size, time or inode changed since its last check; 'full' reads every byte.
   */
  verify?: 'stat' | 'full';
  log?: ((line: string) => void) | null;
  /**
   * Where layer weights live: all on the device, one layer at a time (see weight-source.ts), or
   * 'auto': the memory planner picks for `workload` and the device's memory. Default 'resident'.
   */
  plan?: ExecutionPlan | 'auto';
  /** The batch shape to plan for with plan 'auto' (default 64 prompts × 32 tokens + 2 new). */
  workload?: Workload;
  /**
   * Device memory budget in bytes (default: what the device has available at load, see
   * availableDeviceMemory). Every call checks its predicted peak against it first and refuses
   * one that would not fit, with the planner's advice, before any work.
   */
  memoryBytes?: number;
}

const DEFAULT_WORKLOAD: Workload = { batchSize: 64, promptLength: 32, newTokens: 2 };

/** Allocation failures of the backends: wasm heap growth, host ArrayBuffers, TF's GPU allocator. */
function isAllocationFailure(e: unknown): boolean {
  const msg = e instanceof Error ? `${e.name} ${e.message}` : String(e);
  return /out of memory|allocation failed|cannot allocate|memory\.grow|invalid typed array length/i.test(msg) || /\bOOM when allocating\b/.test(msg);
}

/** A slice of a call's rows, processed layer-major together with the call's other chunks. */
interface Chunk {
  batch: PaddedBatch;
  keyValid: Float32Array;
  cache: KVCache | null;
  hooks: CompiledHooks;
  records: Map<string, tf.Tensor> | null;
}

/** A chunk's decoder pass plus what the runner releases after the call. */
type ChunkPass = DecoderPass<LinearWeight, EmbeddingTable> & { dispose: () => void };

interface KVCache {
  k: (tf.Tensor4D | null)[]; // per layer [B, nkv, S, hd], after RoPE
  v: (tf.Tensor4D | null)[];
}

/** Runs every call on the calling thread; lib/exec spreads calls over worker threads. */
export class LlamaModel implements ModelRunner {
  private disposed = false;

  constructor(
    readonly config: LlamaConfig,
    readonly weights: WeightSource,
    readonly tokenizer: LlamaTokenizer | null,
    readonly info: ModelInfo,
  ) {}

  /** Set at load time; calls whose predicted peak exceeds it are refused (see memory-plan.ts). */
  memoryBudget: number | null = null;
  /** Default micro-batch for calls that give none (plan 'auto' sets it for the streamed plan). */
  microBatch: number | null = null;
  private peakProbe: number | null = null;

  get plan(): ExecutionPlan {
    return this.weights.plan;
  }

  private sampleMemory(): void {
    if (this.peakProbe !== null) this.peakProbe = Math.max(this.peakProbe, tf.memory().numBytes);
  }

  /** Runs `fn` and reports the peak tensor memory (tf.memory().numBytes) seen at the end of every layer and of the head. */
  async measurePeak<T>(fn: () => Promise<T>): Promise<{ result: T; peakBytes: number }> {
    this.peakProbe = tf.memory().numBytes;
    try {
      const result = await fn();
      return { result, peakBytes: this.peakProbe };
    } finally {
      this.peakProbe = null;
    }
  }

  /** The planner's prediction for a call on this model. */
  predict(w: Workload): ReturnType<typeof predictMemory> {
    return predictMemory(this.config, w, this.plan);
  }

  /**
   * Refuses (before any work) a call predicted not to fit; turns a real allocation failure into
   * the same advice; and turns errors the GPU device reported during the call (which leave
   * results silently wrong on WebGPU) into a DeviceError naming the call.
   */
  private async guarded<T>(call: string, w: Workload, fn: () => Promise<T>): Promise<T> {
    const name = modelLabel(this.info);
    if (this.memoryBudget !== null) {
      const p = predictMemory(this.config, w, this.plan);
      if (p.peakBytes > this.memoryBudget) throw outOfMemory(this.config, w, this.memoryBudget, `${name} (${this.plan} plan)`);
    }
    clearDeviceErrors();
    const where = `${call} on ${name} (batch ${w.batchSize} × ${w.promptLength} tokens)`;
    try {
      const result = await fn();
      checkDeviceErrors(where);
      return result;
    } catch (e) {
      checkDeviceErrors(where);
      if (e instanceof OutOfMemoryError || !isAllocationFailure(e)) throw e;
      const budget = this.memoryBudget ?? availableDeviceMemory(this.info.backend?.name ?? '', tf.memory().numBytes);
      throw outOfMemory(this.config, w, budget, `${name} (${this.plan} plan, backend ${this.info.backend?.name})`, e);
    }
  }

  /** Load a directory written by `rsn convert` (config.json, model.json + shards, tokenizer.json). */
  static async load(dir: string, opts: LoadOptions = {}): Promise<LlamaModel> {
    const backend = await initBackend({ backend: opts.backend, log: opts.log });
    const config = readLlamaConfig(join(dir, 'config.json'));
    const store = new WeightStore(dir, { verify: opts.verify });
    for (const spec of expectedTensors(config)) {
      if (!store.has(spec.name)) throw new CheckpointError(`${dir}/model.json: weight ${spec.name} is missing`, join(dir, 'model.json'), spec.name);
      const found = store.shape(spec.name);
      if (found.join() !== spec.shape.join()) throw new ShapeError(`${dir}/model.json: weight ${spec.name} has shape [${found}], config.json implies [${spec.shape}]`);
    }
    const tokenizer = existsSync(join(dir, 'tokenizer.json')) ? LlamaTokenizer.fromFile(dir, { bosTokenId: config.bosTokenId, addBos: addsBosByDefault(config.family) }) : null;
    let plan: ExecutionPlan = opts.plan === 'streamed' ? 'streamed' : 'resident';
    let budget = opts.memoryBytes ?? null;
    let microBatch: number | null = null;
    if (opts.plan === 'auto') {
      budget ??= availableDeviceMemory(backend.name, tf.memory().numBytes);
      const choice = choosePlan(config, opts.workload ?? DEFAULT_WORKLOAD, budget, dir);
      plan = choice.plan;
      microBatch = choice.microBatch ?? null;
      const log = opts.log === undefined ? (l: string) => process.stderr.write(l + '\n') : opts.log;
      log?.(`[rsn] plan: ${choice.reason} (workload ${JSON.stringify(opts.workload ?? DEFAULT_WORKLOAD)}, budget ${formatGB(budget)})`);
    }
    // One memory guard for every caller: every call's predicted peak is checked against the memory really available.
    budget ??= availableDeviceMemory(backend.name, tf.memory().numBytes);
    if (opts.plan !== 'auto') checkWeightsFit(config, plan, budget, `${dir} on the ${backend.name} backend`);
    const weights =
      plan === 'streamed'
        ? new StreamedWeights(config, store)
        : ResidentWeights.build(config, storeReader(store), `${dir}/model.json`);
    const model = new LlamaModel(config, weights, tokenizer, { dir, storageDtype: store.storageDtype, backend, contentSha256: store.contentSha256 });
    model.memoryBudget = budget;
    model.microBatch = microBatch;
    return model;
  }

  /**
   * Build a model from weights in memory (HF names and layouts), e.g. a random model for a
   * benchmark. `read` is called once per tensor of expectedTensors(config).
   */
  static async fromArrays(
    config: LlamaConfig,
    read: (name: string) => { data: Float32Array; shape: number[] },
    opts: LoadOptions & { tokenizer?: LlamaTokenizer | null } = {},
  ): Promise<LlamaModel> {
    const backend = await initBackend({ backend: opts.backend, log: opts.log });
    const weights = ResidentWeights.build(config, read, 'in-memory weights');
    return new LlamaModel(config, weights, opts.tokenizer ?? null, { dir: null, storageDtype: 'float32', backend, contentSha256: null });
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.weights.dispose();
  }

  /** Where the config came from, for messages about its limits. */
  private get configSource(): string {
    return this.info.dir === null ? 'the model config' : join(this.info.dir, 'config.json');
  }

  private checkAlive(): void {
    if (this.disposed) throw new Error('this LlamaModel has been disposed');
  }

  /** One forward pass over a batch of token sequences of any lengths. */
  async forward(sequences: readonly (readonly number[])[], opts: ForwardOptions = {}): Promise<ForwardResult> {
    this.checkAlive();
    checkPositionLimit(this.config, sequences.reduce((m, s) => Math.max(m, s.length), 0), 0, this.configSource);
    const batch = padLeft(sequences, this.config.padTokenId ?? 0, this.config.vocabSize, opts.padTo);
    const hooked = this.hookedSitesPerLayer(opts.hooks);
    const microBatch = this.resolveMicroBatch(opts.microBatch, batch.batchSize);
    return this.guarded(
      'forward',
      { batchSize: batch.batchSize, microBatch, promptLength: batch.seqLen, logits: opts.logits ?? 'last', hookedFfnSitesPerLayer: hooked },
      () => this.forwardBatch(batch, opts, microBatch),
    );
  }

  /** Intervened hook points per layer: each costs the planner a multiply-add over its width. */
  private hookedSitesPerLayer(hooks: Hooks | undefined): number {
    return new Set((hooks?.interventions ?? []).map((i) => i.point)).size / Math.max(1, this.config.numLayers);
  }

  private resolveMicroBatch(requested: number | undefined, B: number): number {
    const mb = requested ?? this.microBatch ?? B;
    if (!Number.isInteger(mb) || mb < 1) throw new RangeError(`microBatch must be a positive integer, got ${mb}`);
    return Math.min(mb, Math.max(1, B));
  }

  private async forwardBatch(batch: PaddedBatch, opts: ForwardOptions, microBatch: number): Promise<ForwardResult> {
    const logitsMode = opts.logits ?? 'last';
    const chunks: Chunk[] = [];
    const kept: tf.Tensor[] = [];
    try {
      for (const [start, end] of chunkRanges(batch.batchSize, microBatch)) {
        const part = sliceRows(batch, start, end);
        // Records are filled by runChunks as layers go; released in `finally` even when a later layer throws.
        chunks.push({ batch: part, keyValid: part.valid, cache: null, hooks: new CompiledHooks(sliceHooks(opts.hooks, start, end, batch.batchSize), this.config, end - start), records: new Map() });
      }
      const hooks = chunks[0]!.hooks;
      const wantAll = logitsMode === 'all' || hooks.recordPoints.has('logits');
      const logits = await this.runChunks(chunks, wantAll ? 'all' : logitsMode === 'last' ? 'last' : 'none');
      kept.push(...logits);
      const records = new ActivationCache();
      for (const spec of hooks.records) {
        const key = recordKey(spec.point, spec.mode, spec.skipFirstToken);
        const parts = chunks.map((ch) => ch.records!.get(key)!);
        const data = await concatRows(parts);
        records.set(spec.point, new ActivationRecord(spec.point, spec.mode, [batch.batchSize, ...parts[0]!.shape.slice(1)], data, batch.lengths));
      }
      let logitsOut: ForwardResult['logits'] = null;
      if (logits.length && logitsMode !== 'none') {
        const V = this.config.vocabSize;
        const lastOnly = logitsMode === 'last' && logits[0]!.shape[1] !== 1;
        const parts = lastOnly ? logits.map((x) => tf.tidy(() => tf.slice(x, [0, batch.seqLen - 1, 0], [-1, 1, -1]))) : logits;
        if (lastOnly) kept.push(...parts);
        const data = await concatRows(parts);
        logitsOut = { shape: logitsMode === 'last' ? [batch.batchSize, V] : [batch.batchSize, batch.seqLen, V], data };
      }
      return { batchSize: batch.batchSize, seqLen: batch.seqLen, lengths: batch.lengths, logits: logitsOut, records };
    } finally {
      tf.dispose(kept);
      for (const ch of chunks) {
        for (const x of ch.records!.values()) x.dispose();
        ch.hooks.dispose();
      }
    }
  }

  /** runWithCache (record-spec.ts) on this model: TransformerLens's run_with_cache. */
  runWithCache(sequences: readonly (readonly number[])[], points: PointSelection, opts: RunWithCacheOptions = {}): Promise<{ logits: ForwardResult['logits']; cache: ActivationCache; lengths: number[] }> {
    return runWithCache(this, sequences, points, opts);
  }

  /** Greedy decoding of maxNewTokens tokens per row; hooks act at every position and step. */
  async generate(sequences: readonly (readonly number[])[], opts: GenerateOptions): Promise<GenerateResult> {
    this.checkAlive();
    const n = opts.maxNewTokens;
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`maxNewTokens must be a non-negative integer, got ${n}`);
    if (opts.hooks?.record?.length) throw new HookError('generate() does not record activations; use forward() with hooks.record on the prompts');
    const longest = sequences.reduce((m, s) => Math.max(m, s.length), 0);
    checkPositionLimit(this.config, longest, n, this.configSource);
    const hooked = this.hookedSitesPerLayer(opts.hooks);
    const microBatch = this.resolveMicroBatch(opts.microBatch, sequences.length);
    const chunked = microBatch < sequences.length;
    return this.guarded(
      'generate',
      { batchSize: sequences.length, microBatch, promptLength: longest + (chunked ? Math.max(0, n - 1) : 0), newTokens: chunked ? 0 : n, hookedFfnSitesPerLayer: hooked },
      () => this.generateChunks(sequences, opts, microBatch),
    );
  }

  /**
   * The generation loop. Rows go through the layers in micro-batches, layer-major. With one
   * micro-batch and the KV cache (the default) each step after the first runs only the new
   * position against the cache; otherwise every step re-runs each whole sequence (for checking,
   * or so that a streamed model reads each layer once per step for the whole batch).
   */
  private async generateChunks(sequences: readonly (readonly number[])[], opts: GenerateOptions, microBatch: number): Promise<GenerateResult> {
    const c = this.config;
    const B = sequences.length;
    const tokens: number[][] = sequences.map(() => []);
    if (opts.maxNewTokens === 0 || B === 0) return { tokens };
    const ranges = chunkRanges(B, microBatch);
    const cached = opts.useCache !== false && ranges.length === 1;
    const current = sequences.map((s) => [...s]);
    const state = ranges.map(([start, end]) => ({
      hooks: new CompiledHooks(sliceHooks(opts.hooks, start, end, B), c, end - start),
      cache: (cached ? { k: [], v: [] } : null) as KVCache | null,
      keyValid: new Float32Array(0) as Float32Array,
      lastPos: [] as number[],
    }));
    try {
      for (let step = 0; step < opts.maxNewTokens; step++) {
        // Every row grows by one token a step, so the padded length grows with them.
        const full = step === 0 || !cached ? padLeft(current, c.padTokenId ?? 0, c.vocabSize, (opts.padTo ?? 0) + step) : null;
        const chunks: Chunk[] = ranges.map(([start, end], i) => {
          const st = state[i]!;
          st.hooks.step = step;
          if (full) {
            const batch = sliceRows(full, start, end);
            st.keyValid = batch.valid;
            st.lastPos = batch.lengths.map((len) => len - 1);
            return { batch, keyValid: batch.valid, cache: st.cache, hooks: st.hooks, records: null };
          }
          // One new position per row against the cache: its key is real, its position one past the last.
          const rows = end - start;
          st.keyValid = appendColumn(st.keyValid, rows, 1);
          const positions = Int32Array.from(st.lastPos, (p, b) => (st.lastPos[b] = p + 1));
          const ids = Int32Array.from({ length: rows }, (_, b) => current[start + b]!.at(-1)!);
          const batch: PaddedBatch = { batchSize: rows, seqLen: 1, lengths: new Array(rows).fill(1), ids, valid: new Float32Array(rows).fill(1), positions };
          return { batch, keyValid: st.keyValid, cache: st.cache, hooks: st.hooks, records: null };
        });
        const logits = await this.runChunks(chunks, 'last');
        try {
          const data = await concatRows(logits);
          for (let b = 0; b < B; b++) {
            const next = argmax(data, b * c.vocabSize, c.vocabSize);
            tokens[b]!.push(next);
            current[b]!.push(next);
          }
        } finally {
          tf.dispose(logits);
        }
      }
    } finally {
      for (const st of state) {
        if (st.cache) tf.dispose([...st.cache.k, ...st.cache.v].filter((x): x is tf.Tensor4D => x !== null));
        st.hooks.dispose();
      }
    }
    if (opts.stopAtEos && c.eosTokenId !== null) cutAtEos(tokens, c.eosTokenId);
    return { tokens };
  }

  /**
   * Runs the decoder (decoder.ts) for T new positions (the last T of S keys when a cache is
   * given), **layer-major** over the chunks: every chunk passes through layer l before layer
   * l + 1 is fetched, so a streamed model reads each layer once per call however many chunks
   * (micro-batches) the call holds. Returns each chunk's logits ([B_c, T, V] or [B_c, 1, V],
   * none for 'none'); recorded activations go to each chunk's `records`. Every intermediate
   * tensor is released before returning, also on error.
   */
  private async runChunks(chunks: readonly Chunk[], logitsMode: 'all' | 'last' | 'none'): Promise<tf.Tensor[]> {
    const g = this.weights.global;
    const passes = chunks.map((chunk) => this.chunkPass(chunk));
    // `h[i]` is chunk i's only live activation between layers; released in `finally` on error.
    const h: (tf.Tensor | null)[] = chunks.map(() => null);
    const out: tf.Tensor[] = [];
    try {
      chunks.forEach((chunk, i) => {
        h[i] = tf.tidy(() => embed(passes[i]!, g.embed, chunk.batch.ids));
      });
      for (let l = 0; l < this.config.numLayers; l++) {
        const lw = await this.weights.layer(l);
        try {
          chunks.forEach((chunk, i) => {
            h[i] = this.layerStep(l, lw, h[i]!, chunk, passes[i]!);
          });
        } finally {
          this.weights.release(l);
        }
      }
      if (logitsMode === 'none') return out;
      chunks.forEach((chunk, i) => {
        const final = h[i]!;
        const { batchSize: B, seqLen: T } = chunk.batch;
        out.push(
          tf.tidy(() => {
            const x = logitsMode === 'last' ? tf.gather(final, tf.tensor1d(Int32Array.from({ length: B }, (_, b) => b * T + T - 1), 'int32')) : final;
            return tf.reshape(head(passes[i]!, g, x), [B, logitsMode === 'last' ? 1 : T, this.config.vocabSize]);
          }),
        );
      });
      return out;
    } catch (e) {
      tf.dispose(out);
      throw e;
    } finally {
      for (const x of h) x?.dispose();
      for (const p of passes) p.dispose();
    }
  }

  /** One decoder layer for one chunk inside a tidy; consumes `prev` and keeps the KV cache up to date. */
  private layerStep(l: number, lw: LayerWeights, prev: tf.Tensor, chunk: Chunk, pass: ChunkPass): tf.Tensor {
    const { cache } = chunk;
    const newCache: { k: tf.Tensor4D | null; v: tf.Tensor4D | null } = { k: null, v: null };
    const keysValues = cache
      ? (layer: number, k: tf.Tensor, v: tf.Tensor): [tf.Tensor, tf.Tensor] => {
          const pk = cache.k[layer];
          const pv = cache.v[layer];
          const kAll = pk && pv ? tf.concat([pk, k], 2) : k;
          const vAll = pk && pv ? tf.concat([pv, v], 2) : v;
          newCache.k = tf.keep(kAll as tf.Tensor4D);
          newCache.v = tf.keep(vAll as tf.Tensor4D);
          return [kAll, vAll];
        }
      : undefined;
    let next: tf.Tensor;
    try {
      next = tf.tidy(() => decoderLayer({ ...pass, keysValues }, l, lw, prev));
    } catch (e) {
      newCache.k?.dispose();
      newCache.v?.dispose();
      throw e;
    }
    prev.dispose();
    if (cache) {
      cache.k[l]?.dispose();
      cache.v[l]?.dispose();
      cache.k[l] = newCache.k;
      cache.v[l] = newCache.v;
    }
    return next;
  }

  /**
   * The decoder pass of one chunk: its attention context (RoPE tables, mask), and the hook
   * function that applies its interventions and fills its records. Activations flow as
   * [B·T, N]; hooks see [B, T, N]. Interventions apply first, then records (inside a layer's
   * tidy, so recorded results are kept explicitly).
   */
  private chunkPass(chunk: Chunk): ChunkPass {
    const c = this.config;
    const { batch, keyValid, hooks, records } = chunk;
    const B = batch.batchSize;
    const T = batch.seqLen;
    const attentionCtx = attentionContext(c, batch.positions, keyValid, B, T);
    const poolMasks = new Map<boolean, { mask: tf.Tensor; count: tf.Tensor }>();
    const poolMask = (skipFirst: boolean) => {
      let m = poolMasks.get(skipFirst);
      if (!m) {
        const data = Float32Array.from(batch.valid);
        if (skipFirst) for (let b = 0; b < B; b++) data[b * T + (T - batch.lengths[b]!)] = 0;
        const counts = Float32Array.from({ length: B }, (_, b) => Math.max(1, batch.lengths[b]! - (skipFirst ? 1 : 0)));
        // Created lazily inside a layer tidy, so kept explicitly; released by dispose().
        m = { mask: tf.keep(tf.tensor3d(data, [B, T, 1])), count: tf.keep(tf.tensor2d(counts, [B, 1])) };
        poolMasks.set(skipFirst, m);
      }
      return m;
    };
    const hook = (point: string, x: tf.Tensor): tf.Tensor => {
      // Every intermediate of a layer (or of the head) is still alive at its last hook point.
      if (point === 'logits' || point.endsWith('.resid_post')) this.sampleMemory();
      if (!hooks.touches(point)) return x;
      const [rows, width] = x.shape as [number, number];
      const y = hooks.apply(point, tf.reshape(x, [B, rows / B, width]));
      if (records) {
        for (const spec of hooks.records) {
          if (spec.point !== point) continue;
          const key = recordKey(point, spec.mode, spec.skipFirstToken);
          if (records.has(key)) continue;
          let r: tf.Tensor;
          if (spec.mode === 'full') r = tf.clone(y);
          else {
            const pm = poolMask(spec.skipFirstToken ?? false);
            r = tf.div(tf.sum(tf.mul(y, pm.mask), 1), pm.count);
          }
          records.set(key, tf.keep(r));
        }
      }
      return tf.reshape(y, [rows, width]);
    };
    return {
      config: c,
      math: INFERENCE_MATH,
      B,
      T,
      attention: attentionCtx,
      hook,
      dispose: () => {
        disposeAttentionContext(attentionCtx);
        for (const m of poolMasks.values()) tf.dispose([m.mask, m.count]);
      },
    };
  }
}

/** Inference products: blocked linear weights (blocked.ts), a gather for the embedding. */
const INFERENCE_MATH: DecoderMath<LinearWeight, EmbeddingTable> = {
  linear,
  lookup: gatherRows,
  matMul: (a, b, transposeB) => tf.matMul(a, b, false, transposeB),
};

function cutAtEos(tokens: number[][], eos: number): void {
  for (const row of tokens) {
    const i = row.indexOf(eos);
    if (i >= 0) row.length = i;
  }
}

/** The micro-batches of a call; a call with no rows still runs one empty chunk. */
function chunkRanges(n: number, size: number): [number, number][] {
  return n > 0 ? rowRanges(n, size) : [[0, 0]];
}

/** [rows, S] → [rows, S + 1] with `value` in the new last column. */
function appendColumn(m: Float32Array, rows: number, value: number): Float32Array {
  const S = m.length / rows;
  const out = new Float32Array(rows * (S + 1));
  for (let b = 0; b < rows; b++) {
    out.set(m.subarray(b * S, (b + 1) * S), b * (S + 1));
    out[b * (S + 1) + S] = value;
  }
  return out;
}

/** Rows [start, end) of a padded batch (same padded length). */
function sliceRows(batch: PaddedBatch, start: number, end: number): PaddedBatch {
  if (start === 0 && end === batch.batchSize) return batch;
  const T = batch.seqLen;
  return {
    batchSize: end - start,
    seqLen: T,
    lengths: batch.lengths.slice(start, end),
    ids: batch.ids.subarray(start * T, end * T),
    valid: batch.valid.subarray(start * T, end * T),
    positions: batch.positions.subarray(start * T, end * T),
  };
}

/** Concatenates the rows of several tensors (same trailing shape) into one Float32Array. */
async function concatRows(parts: readonly tf.Tensor[]): Promise<Float32Array> {
  return concatFloat32(await Promise.all(parts.map(async (x) => (await x.data()) as Float32Array)));
}

function recordKey(point: string, mode: string, skipFirst?: boolean): string {
  return `${point}|${mode}|${skipFirst ? 1 : 0}`;
}

function argmax(data: Float32Array, start: number, n: number): number {
  // First maximum wins, as torch.argmax does.
  let best = 0;
  let bestV = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = data[start + i]!;
    if (v > bestV) {
      bestV = v;
      best = i;
    }
  }
  return best;
}
