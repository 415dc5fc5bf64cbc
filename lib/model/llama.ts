/**
 * The Llama decoder in TF.js, readable top to bottom (after llama2.c's model.py and HF's
 * modeling_llama): RMSNorm → attention (RoPE rotate-half, grouped-query) → residual →
 * RMSNorm → SiLU-gated MLP → residual, then final norm and LM head.
 *
 * Shapes: B batch rows, T new positions, S key positions (cache + new), H hidden,
 * nh/nkv query/key-value heads, hd head dim, F FFN width, V vocab.
 */
import * as tf from '@tensorflow/tfjs-core';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type BackendChoice, checkDeviceErrors, clearDeviceErrors, initBackend } from '../backend.ts';
import { CheckpointError, HookError, OutOfMemoryError, ShapeError } from '../errors.ts';
import { LlamaTokenizer } from '../tokenizer.ts';
import { causalMask, padLeft, type PaddedBatch } from './batch.ts';
import { gatherRows, linear } from './blocked.ts';
import { checkPositionLimit, expectedTensors, type LlamaConfig, readLlamaConfig } from './config.ts';
import { CompiledHooks, type Hooks, hookPointName, type Site } from './hooks.ts';
import { WeightStore } from './weights.ts';
import { type ExecutionPlan, type LayerWeights, ResidentWeights, storeReader, StreamedWeights, type WeightSource } from './weight-source.ts';
import { availableDeviceMemory, choosePlan, formatGB, outOfMemory, predictMemory, type Workload } from './memory-plan.ts';

export type { GlobalWeights, LayerWeights, ModelWeights } from './weight-source.ts';

export interface Recorded {
  point: string;
  mode: 'full' | 'mean';
  /** [B, T, N] for 'full' (left-padded like the batch), [B, N] for 'mean'. */
  shape: number[];
  data: Float32Array;
}

export interface ForwardOptions {
  hooks?: Hooks;
  /**
   * Rows per micro-batch: the call's rows go through each layer in chunks of this size, layer
   * by layer (a streamed model then reads every layer once per call). Default: the model's
   * `microBatch` (set by plan 'auto'), else the whole batch.
   */
  microBatch?: number;
  /** Which logits to return: every position, each row's last token, or none (default 'last'). */
  logits?: 'all' | 'last' | 'none';
}

export interface ForwardResult {
  batchSize: number;
  /** Padded length T. Row b's real tokens are columns T - lengths[b] … T - 1 (left padding). */
  seqLen: number;
  lengths: number[];
  /** [B, T, V] for 'all', [B, V] for 'last'. */
  logits: { shape: number[]; data: Float32Array } | null;
  records: Map<string, Recorded>;
}

export interface GenerateOptions {
  maxNewTokens: number;
  hooks?: Hooks;
  /** Use the KV cache (default). Without it every step re-runs the whole sequence, for checking. */
  useCache?: boolean;
  /** Cut each row's output at its first EOS (the EOS itself is dropped). Default false: exactly maxNewTokens tokens. */
  stopAtEos?: boolean;
  /**
   * As in ForwardOptions. With more than one micro-batch every step re-runs the whole sequence
   * layer-major (no KV cache): for the paper's 2-token answers that costs about one extra pass
   * and lets a streamed model read each layer once per step for the whole batch.
   */
  microBatch?: number;
}

export interface GenerateResult {
  /** New token ids per row. */
  tokens: number[][];
}

export interface LoadOptions {
  backend?: string;
  log?: ((line: string) => void) | null;
  /**
   * Where layer weights live: all on the device, one layer at a time (see weight-source.ts), or
   * 'auto': the memory planner picks for `workload` and the device's memory. Default 'resident'.
   */
  plan?: ExecutionPlan | 'auto';
  /** The batch shape to plan for with plan 'auto' (default 64 prompts × 32 tokens + 2 new). */
  workload?: Workload;
  /**
   * Device memory budget in bytes. With a budget (or plan 'auto', which measures the device),
   * every call checks its predicted peak first and refuses one that would not fit.
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

interface ChunkState {
  cos: tf.Tensor;
  sin: tf.Tensor;
  mask: tf.Tensor;
  S: number;
  hook: (point: string, x: tf.Tensor) => tf.Tensor;
  dispose: () => void;
}

interface KVCache {
  k: (tf.Tensor4D | null)[]; // per layer [B, nkv, S, hd], after RoPE
  v: (tf.Tensor4D | null)[];
}

export class LlamaModel {
  private disposed = false;

  constructor(
    readonly config: LlamaConfig,
    readonly weights: WeightSource,
    readonly tokenizer: LlamaTokenizer | null,
    readonly info: { dir: string; storageDtype: string; backend: BackendChoice | null },
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

  /** Refuses (before any work) a call predicted not to fit; turns a real allocation failure into the same advice. */
  /**
   * Refuses (before any work) a call predicted not to fit; turns a real allocation failure into
   * the same advice; and turns errors the GPU device reported during the call (which leave
   * results silently wrong on WebGPU) into a DeviceError naming the call.
   */
  private async guarded<T>(call: string, w: Workload, fn: () => Promise<T>): Promise<T> {
    const name = this.info.dir;
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
    const store = new WeightStore(dir);
    for (const spec of expectedTensors(config)) {
      if (!store.has(spec.name)) throw new CheckpointError(`${dir}/model.json: weight ${spec.name} is missing`, join(dir, 'model.json'), spec.name);
      const found = store.shape(spec.name);
      if (found.join() !== spec.shape.join()) throw new ShapeError(`${dir}/model.json: weight ${spec.name} has shape [${found}], config.json implies [${spec.shape}]`);
    }
    const tokenizer = existsSync(join(dir, 'tokenizer.json')) ? LlamaTokenizer.fromFile(dir) : null;
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
    const weights =
      plan === 'streamed'
        ? new StreamedWeights(config, store)
        : ResidentWeights.build(config, storeReader(store), `${dir}/model.json`);
    const model = new LlamaModel(config, weights, tokenizer, { dir, storageDtype: store.storageDtype, backend });
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
    return new LlamaModel(config, weights, opts.tokenizer ?? null, { dir: '(memory)', storageDtype: 'float32', backend });
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.weights.dispose();
  }

  /** Where the config came from, for messages about its limits. */
  private get configSource(): string {
    return this.info.dir === '(memory)' ? 'the model config' : join(this.info.dir, 'config.json');
  }

  private checkAlive(): void {
    if (this.disposed) throw new Error('this LlamaModel has been disposed');
  }

  /** One forward pass over a batch of token sequences of any lengths. */
  async forward(sequences: readonly (readonly number[])[], opts: ForwardOptions = {}): Promise<ForwardResult> {
    this.checkAlive();
    checkPositionLimit(this.config, sequences.reduce((m, s) => Math.max(m, s.length), 0), 0, this.configSource);
    const batch = padLeft(sequences, this.config.padTokenId ?? 0, this.config.vocabSize);
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
      for (let start = 0; start < batch.batchSize; start += microBatch) {
        const end = Math.min(batch.batchSize, start + microBatch);
        const part = sliceRows(batch, start, end);
        // Records are filled by runChunks as layers go; released in `finally` even when a later layer throws.
        chunks.push({ batch: part, keyValid: part.valid, cache: null, hooks: new CompiledHooks(sliceHooks(opts.hooks, start, end, batch.batchSize), this.config, end - start), records: new Map() });
      }
      const hooks = chunks[0]!.hooks;
      const wantAll = logitsMode === 'all' || hooks.recordPoints.has('logits');
      const logits = await this.runChunks(chunks, wantAll ? 'all' : logitsMode === 'last' ? 'last' : 'none');
      kept.push(...logits);
      const records = new Map<string, Recorded>();
      for (const spec of hooks.records) {
        const key = recordKey(spec.point, spec.mode, spec.skipFirstToken);
        const parts = chunks.map((ch) => ch.records!.get(key)!);
        const data = await concatRows(parts);
        records.set(spec.point, { point: spec.point, mode: spec.mode, shape: [batch.batchSize, ...parts[0]!.shape.slice(1)], data });
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

  /** Greedy decoding of maxNewTokens tokens per row; hooks act at every position and step. */
  async generate(sequences: readonly (readonly number[])[], opts: GenerateOptions): Promise<GenerateResult> {
    this.checkAlive();
    const n = opts.maxNewTokens;
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`maxNewTokens must be a non-negative integer, got ${n}`);
    if (opts.hooks?.record?.length) throw new HookError('generate() does not record activations; use forward() with hooks.record on the prompts');
    const longest = Math.max(0, ...sequences.map((s) => s.length));
    checkPositionLimit(this.config, longest, n, this.configSource);
    const hooked = this.hookedSitesPerLayer(opts.hooks);
    const microBatch = this.resolveMicroBatch(opts.microBatch, sequences.length);
    const chunked = microBatch < sequences.length;
    return this.guarded(
      'generate',
      { batchSize: sequences.length, microBatch, promptLength: longest + (chunked ? opts.maxNewTokens : 0), newTokens: chunked ? 0 : opts.maxNewTokens, hookedFfnSitesPerLayer: hooked },
      () => (chunked ? this.generateLayerMajor(sequences, opts, microBatch) : this.generateBatch(sequences, opts)),
    );
  }

  private async generateBatch(sequences: readonly (readonly number[])[], opts: GenerateOptions): Promise<GenerateResult> {
    const n = opts.maxNewTokens;
    const padId = this.config.padTokenId ?? 0;
    const B = sequences.length;
    const tokens: number[][] = sequences.map(() => []);
    if (n === 0) return { tokens };
    const hooks = new CompiledHooks(opts.hooks, this.config, Math.max(B, 1));
    const cache: KVCache | null = opts.useCache === false ? null : { k: [], v: [] };
    try {
      const prompt = padLeft(sequences, padId, this.config.vocabSize);
      let keyValid = prompt.valid;
      let S = prompt.seqLen;
      const lastPos = prompt.lengths.map((len) => len - 1);
      const current = sequences.map((s) => [...s]);
      for (let step = 0; step < n; step++) {
        hooks.step = step;
        let logits: tf.Tensor;
        if (cache) {
          if (step === 0) {
            logits = (await this.run(prompt, keyValid, cache, hooks, null, 'last'))!;
          } else {
            const ids = new Int32Array(B);
            const positions = new Int32Array(B);
            for (let b = 0; b < B; b++) {
              ids[b] = tokens[b]![step - 1]!;
              positions[b] = ++lastPos[b]!;
            }
            const grown = new Float32Array(B * (S + 1));
            for (let b = 0; b < B; b++) {
              grown.set(keyValid.subarray(b * S, (b + 1) * S), b * (S + 1));
              grown[b * (S + 1) + S] = 1;
            }
            keyValid = grown;
            S += 1;
            const stepBatch: PaddedBatch = { batchSize: B, seqLen: 1, lengths: new Array(B).fill(1), ids, valid: new Float32Array(B).fill(1), positions };
            logits = (await this.run(stepBatch, keyValid, cache, hooks, null, 'last'))!;
          }
        } else {
          const full = padLeft(current, padId, this.config.vocabSize);
          logits = (await this.run(full, full.valid, null, hooks, null, 'last'))!;
        }
        const data = (await logits.data()) as Float32Array;
        logits.dispose();
        const V = this.config.vocabSize;
        for (let b = 0; b < B; b++) {
          const next = argmax(data, b * V, V);
          tokens[b]!.push(next);
          current[b]!.push(next);
        }
      }
    } finally {
      if (cache) for (const x of [...cache.k, ...cache.v]) x?.dispose();
      hooks.dispose();
    }
    if (opts.stopAtEos && this.config.eosTokenId !== null) cutAtEos(tokens, this.config.eosTokenId);
    return { tokens };
  }

  /** Greedy decoding over micro-batches, layer-major, re-running each whole sequence per step (no KV cache). */
  private async generateLayerMajor(sequences: readonly (readonly number[])[], opts: GenerateOptions, microBatch: number): Promise<GenerateResult> {
    const n = opts.maxNewTokens;
    const B = sequences.length;
    const tokens: number[][] = sequences.map(() => []);
    const current = sequences.map((s) => [...s]);
    const hooksPerChunk: CompiledHooks[] = [];
    try {
      for (let start = 0; start < B; start += microBatch) {
        const end = Math.min(B, start + microBatch);
        hooksPerChunk.push(new CompiledHooks(sliceHooks(opts.hooks, start, end, B), this.config, end - start));
      }
      const V = this.config.vocabSize;
      for (let step = 0; step < n; step++) {
        const full = padLeft(current, this.config.padTokenId ?? 0, V);
        const chunks: Chunk[] = hooksPerChunk.map((hooks, i) => {
          hooks.step = step;
          const part = sliceRows(full, i * microBatch, Math.min(B, (i + 1) * microBatch));
          return { batch: part, keyValid: part.valid, cache: null, hooks, records: null };
        });
        const logits = await this.runChunks(chunks, 'last');
        try {
          const data = await concatRows(logits);
          for (let b = 0; b < B; b++) {
            const next = argmax(data, b * V, V);
            tokens[b]!.push(next);
            current[b]!.push(next);
          }
        } finally {
          tf.dispose(logits);
        }
      }
    } finally {
      for (const h of hooksPerChunk) h.dispose();
    }
    if (opts.stopAtEos && this.config.eosTokenId !== null) cutAtEos(tokens, this.config.eosTokenId);
    return { tokens };
  }

  /** run() for one chunk: the whole batch at once. */
  private async run(
    batch: PaddedBatch,
    keyValid: Float32Array,
    cache: KVCache | null,
    hooks: CompiledHooks,
    records: Map<string, tf.Tensor> | null,
    logitsMode: 'all' | 'last' | 'none',
  ): Promise<tf.Tensor | null> {
    const [logits] = await this.runChunks([{ batch, keyValid, cache, hooks, records }], logitsMode);
    return logits ?? null;
  }

  /**
   * Runs embeddings → layers → head for T new positions (the last T of S keys when a cache is
   * given), **layer-major** over the chunks: every chunk passes through layer l before layer
   * l + 1 is fetched, so a streamed model reads each layer once per call however many chunks
   * (micro-batches) the call holds. Returns each chunk's logits ([B_c, T, V] or [B_c, 1, V],
   * none for 'none'); recorded activations go to each chunk's `records`. Every intermediate
   * tensor is released before returning, also on error.
   */
  private async runChunks(chunks: readonly Chunk[], logitsMode: 'all' | 'last' | 'none'): Promise<tf.Tensor[]> {
    const c = this.config;
    const w = this.weights.global;
    const states = chunks.map((chunk) => this.chunkState(chunk));
    // `h[i]` is chunk i's only live activation between layers; released in `finally` on error.
    const h: (tf.Tensor | null)[] = chunks.map(() => null);
    const out: tf.Tensor[] = [];
    try {
      chunks.forEach((chunk, i) => {
        h[i] = tf.tidy(() => gatherRows(w.embed, chunk.batch.ids)); // [B·T, H]
      });
      for (let l = 0; l < c.numLayers; l++) {
        const lw = await this.weights.layer(l);
        try {
          chunks.forEach((chunk, i) => {
            h[i] = this.layerStep(l, lw, h[i]!, chunk, states[i]!);
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
            const logits = states[i]!.hook('logits', linear(rmsNorm(x, w.norm, c.rmsNormEps), w.lmHead));
            this.sampleMemory();
            return tf.reshape(logits, [B, logitsMode === 'last' ? 1 : T, c.vocabSize]);
          }),
        );
      });
      return out;
    } catch (e) {
      tf.dispose(out);
      throw e;
    } finally {
      for (const x of h) x?.dispose();
      for (const st of states) st.dispose();
    }
  }

  /** Per-chunk tensors that live for the whole call: RoPE tables, the attention mask, pooling masks, and the hook function. */
  private chunkState(chunk: Chunk): ChunkState {
    const c = this.config;
    const { batch, keyValid, hooks, records } = chunk;
    const B = batch.batchSize;
    const T = batch.seqLen;
    const S = keyValid.length / B;
    const ctx = tf.tidy(() => {
      const positions = tf.tensor2d(batch.positions, [B, T], 'int32');
      // RoPE, HF rotate-half convention: angle(p, i) = p / theta^(2i/hd), duplicated over halves.
      const half = c.headDim / 2;
      const invFreq = tf.tensor1d(Float32Array.from({ length: half }, (_, i) => 1 / Math.pow(c.ropeTheta, (2 * i) / c.headDim)));
      const angles = tf.mul(tf.expandDims(tf.cast(positions, 'float32'), 2), tf.reshape(invFreq, [1, 1, half])); // [B,T,hd/2]
      const full = tf.concat([angles, angles], 2); // [B,T,hd]
      const cos = tf.expandDims(tf.cos(full), 1); // [B,1,T,hd]
      const sin = tf.expandDims(tf.sin(full), 1);
      const mask = tf.tensor4d(causalMask(keyValid, B, S, T), [B, 1, T, S]);
      return { cos, sin, mask };
    });
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
    // Activations flow as 2-D [B·T, N] (fewer reshapes, which TF.js counts as new memory);
    // hooks see [B, T, N]. Interventions apply first, then records; inside a tidy, so recorded
    // results are kept explicitly.
    const hook = (point: string, x: tf.Tensor): tf.Tensor => {
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
      ...ctx,
      S,
      hook,
      dispose: () => {
        tf.dispose([ctx.cos, ctx.sin, ctx.mask]);
        for (const m of poolMasks.values()) tf.dispose([m.mask, m.count]);
      },
    };
  }

  /** One decoder layer for one chunk; consumes `prev` (disposed) and returns the new residual stream. */
  private layerStep(l: number, lw: LayerWeights, prev: tf.Tensor, chunk: Chunk, st: ChunkState): tf.Tensor {
    const c = this.config;
    const { batchSize: B, seqLen: T } = chunk.batch;
    const { cache } = chunk;
    const hook = st.hook;
    const name = (site: Site) => hookPointName(l, site);
    const newCache: { k: tf.Tensor4D | null; v: tf.Tensor4D | null } = { k: null, v: null };
    let next: tf.Tensor;
    try {
      next = tf.tidy(() => {
        const xn = rmsNorm(prev, lw.inputNorm, c.rmsNormEps);
        const q = hook(name('attn.q'), linear(xn, lw.q));
        const k = hook(name('attn.k'), linear(xn, lw.k));
        const v = hook(name('attn.v'), linear(xn, lw.v));
        const heads = (x: tf.Tensor, n: number) => tf.transpose(tf.reshape(x, [B, T, n, c.headDim]), [0, 2, 1, 3]);
        const qh = rope(heads(q, c.numHeads), st.cos, st.sin);
        let kh = rope(heads(k, c.numKvHeads), st.cos, st.sin);
        let vh = heads(v, c.numKvHeads);
        if (cache) {
          const pk = cache.k[l];
          const pv = cache.v[l];
          if (pk && pv) {
            kh = tf.concat([pk, kh], 2);
            vh = tf.concat([pv, vh], 2);
          }
          newCache.k = tf.keep(kh as tf.Tensor4D);
          newCache.v = tf.keep(vh as tf.Tensor4D);
        }
        const attn = tf.reshape(attention(qh, kh, vh, st.mask, c, B, T, st.S), [B * T, c.numHeads * c.headDim]);
        const o = hook(name('attn.o'), linear(attn, lw.o));
        const mid = hook(name('resid_mid'), tf.add(prev, o));
        const mn = rmsNorm(mid, lw.postNorm, c.rmsNormEps);
        const gate = hook(name('mlp.gate'), linear(mn, lw.gate));
        const up = hook(name('mlp.up'), linear(mn, lw.up));
        const down = hook(name('mlp.down'), linear(tf.mul(tf.mul(gate, tf.sigmoid(gate)), up), lw.down));
        const post = hook(name('resid_post'), tf.add(mid, down));
        this.sampleMemory(); // every intermediate of the layer is still alive here
        return post;
      });
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
}

function cutAtEos(tokens: number[][], eos: number): void {
  for (const row of tokens) {
    const i = row.indexOf(eos);
    if (i >= 0) row.length = i;
  }
}

/** Rows [start, end) of a padded batch (same padded length). */
function sliceRows(batch: PaddedBatch, start: number, end: number): PaddedBatch {
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

/** The hooks that concern rows [start, end): per-row unit lists are sliced, the rest is shared. */
function sliceHooks(hooks: Hooks | undefined, start: number, end: number, batchSize: number): Hooks | undefined {
  if (!hooks || (start === 0 && end === batchSize)) return hooks;
  return {
    ...hooks,
    interventions: hooks.interventions?.map((iv) => {
      if (!iv.perRow) return iv;
      if (iv.perRow.length !== batchSize) throw new HookError(`intervention on ${iv.point}: perRow has ${iv.perRow.length} lists but the batch has ${batchSize} rows`);
      return { ...iv, perRow: iv.perRow.slice(start, end) };
    }),
  };
}

/** Concatenates the rows of several tensors (same trailing shape) into one Float32Array. */
async function concatRows(parts: readonly tf.Tensor[]): Promise<Float32Array> {
  const arrays = await Promise.all(parts.map(async (x) => (await x.data()) as Float32Array));
  if (arrays.length === 1) return arrays[0]!;
  const out = new Float32Array(arrays.reduce((a, x) => a + x.length, 0));
  let at = 0;
  for (const x of arrays) {
    out.set(x, at);
    at += x.length;
  }
  return out;
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

/** HF LlamaRMSNorm: x · rsqrt(mean(x²) + eps) · weight, in float32. */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor1D, eps: number): tf.Tensor {
  const variance = tf.mean(tf.square(x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, eps))), weight);
}

/** q·cos + rotate_half(q)·sin with rotate_half(x) = [-x2, x1]. x: [B, n, T, hd]. */
export function rope(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor {
  const hd = x.shape[3]!;
  const [x1, x2] = tf.split(x, [hd / 2, hd / 2], 3);
  const rotated = tf.concat([tf.neg(x2!), x1!], 3);
  return tf.add(tf.mul(x, cos), tf.mul(rotated, sin));
}

/**
 * Grouped-query attention without copying K/V per query head: the rep = nh/nkv query heads
 * that share a K/V head are stacked along the query axis ([B, nkv, rep·T, hd]), which is the
 * HF repeat_kv grouping (query head h uses K/V head ⌊h/rep⌋).
 */
export function attention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, mask: tf.Tensor, c: LlamaConfig, B: number, T: number, S: number): tf.Tensor {
  const rep = c.numHeads / c.numKvHeads;
  const qg = tf.reshape(q, [B, c.numKvHeads, rep * T, c.headDim]);
  let scores = tf.matMul(qg, k, false, true); // [B, nkv, rep·T, S]
  scores = tf.add(tf.mul(tf.reshape(scores, [B, c.numHeads, T, S]), 1 / Math.sqrt(c.headDim)), mask);
  const probs = tf.reshape(tf.softmax(scores), [B, c.numKvHeads, rep * T, S]);
  const out = tf.reshape(tf.matMul(probs, v), [B, c.numHeads, T, c.headDim]);
  return tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [B, T, c.numHeads * c.headDim]);
}
