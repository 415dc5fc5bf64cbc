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
import { type BackendChoice, initBackend } from '../backend.ts';
import { CheckpointError, HookError, ShapeError } from '../errors.ts';
import { LlamaTokenizer } from '../tokenizer.ts';
import { causalMask, padLeft, type PaddedBatch } from './batch.ts';
import { expectedTensors, type LlamaConfig, readLlamaConfig } from './config.ts';
import { CompiledHooks, type Hooks, hookPointName, type Site } from './hooks.ts';
import { WeightStore } from './weights.ts';

/**
 * Linear weights are held transposed, [in, out] (HF stores [out, in]): on the wasm backend a
 * matMul with transposeB is over 10× slower than a plain one (3.4 vs 44 GFLOP/s, 512×512·512×1376).
 */
export interface LayerWeights {
  inputNorm: tf.Tensor1D;
  q: tf.Tensor2D; // [H, nh*hd]
  k: tf.Tensor2D; // [H, nkv*hd]
  v: tf.Tensor2D; // [H, nkv*hd]
  o: tf.Tensor2D; // [nh*hd, H]
  postNorm: tf.Tensor1D;
  gate: tf.Tensor2D; // [H, F]
  up: tf.Tensor2D; // [H, F]
  down: tf.Tensor2D; // [F, H]
}

export interface ModelWeights {
  embed: tf.Tensor2D; // [V, H], for the lookup
  norm: tf.Tensor1D;
  lmHead: tf.Tensor2D; // [H, V] (transposed lm_head, or transposed embedding when tied)
  layers: LayerWeights[];
}

export interface Recorded {
  point: string;
  mode: 'full' | 'mean';
  /** [B, T, N] for 'full' (left-padded like the batch), [B, N] for 'mean'. */
  shape: number[];
  data: Float32Array;
}

export interface ForwardOptions {
  hooks?: Hooks;
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
}

export interface GenerateResult {
  /** New token ids per row. */
  tokens: number[][];
}

export interface LoadOptions {
  backend?: string;
  log?: ((line: string) => void) | null;
}

interface KVCache {
  k: (tf.Tensor4D | null)[]; // per layer [B, nkv, S, hd], after RoPE
  v: (tf.Tensor4D | null)[];
}

export class LlamaModel {
  private disposed = false;

  constructor(
    readonly config: LlamaConfig,
    readonly weights: ModelWeights,
    readonly tokenizer: LlamaTokenizer | null,
    readonly info: { dir: string; storageDtype: string; backend: BackendChoice | null },
  ) {}

  /** Load a directory written by `rsn convert` (config.json, model.json + shards, tokenizer.json). */
  static async load(dir: string, opts: LoadOptions = {}): Promise<LlamaModel> {
    const backend = await initBackend({ backend: opts.backend, log: opts.log });
    const config = readLlamaConfig(join(dir, 'config.json'));
    const store = new WeightStore(dir);
    for (const spec of expectedTensors(config)) {
      if (!store.has(spec.name)) throw new CheckpointError(`${dir}/model.json: weight ${spec.name} is missing`, join(dir, 'model.json'), spec.name);
    }
    const tokenizer = existsSync(join(dir, 'tokenizer.json')) ? LlamaTokenizer.fromFile(dir) : null;
    const weights = buildWeights(config, (name) => ({ data: store.read(name), shape: store.shape(name) }), `${dir}/model.json`);
    return new LlamaModel(config, weights, tokenizer, { dir, storageDtype: store.storageDtype, backend });
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
    const weights = buildWeights(config, read, 'in-memory weights');
    return new LlamaModel(config, weights, opts.tokenizer ?? null, { dir: '(memory)', storageDtype: 'float32', backend });
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const w = this.weights;
    const all: tf.Tensor[] = [w.embed, w.norm, w.lmHead, ...w.layers.flatMap((l) => Object.values(l) as tf.Tensor[])];
    for (const x of all) x.dispose();
  }

  private checkAlive(): void {
    if (this.disposed) throw new Error('this LlamaModel has been disposed');
  }

  /** One forward pass over a batch of token sequences of any lengths. */
  async forward(sequences: readonly (readonly number[])[], opts: ForwardOptions = {}): Promise<ForwardResult> {
    this.checkAlive();
    const batch = padLeft(sequences, this.config.padTokenId ?? 0, this.config.vocabSize);
    const hooks = new CompiledHooks(opts.hooks, this.config, batch.batchSize);
    const kept: tf.Tensor[] = [];
    // Filled by run() as layers go; released in `finally` even when a later layer throws.
    const recordTensors = new Map<string, tf.Tensor>();
    try {
      const logitsMode = opts.logits ?? 'last';
      const logits = this.run(batch, batch.valid, null, hooks, recordTensors, logitsMode === 'all' || hooks.recordPoints.has('logits') ? 'all' : logitsMode === 'last' ? 'last' : 'none');
      if (logits) kept.push(logits);
      const records = new Map<string, Recorded>();
      for (const spec of hooks.records) {
        const x = recordTensors.get(recordKey(spec.point, spec.mode, spec.skipFirstToken))!;
        records.set(spec.point, { point: spec.point, mode: spec.mode, shape: x.shape, data: (await x.data()) as Float32Array });
      }
      let logitsOut: ForwardResult['logits'] = null;
      if (logits && logitsMode !== 'none') {
        if (logitsMode === 'last' && logits.shape[1] !== 1) {
          const last = tf.tidy(() => tf.squeeze(tf.slice(logits, [0, batch.seqLen - 1, 0], [-1, 1, -1]), [1]));
          kept.push(last);
          logitsOut = { shape: last.shape, data: (await last.data()) as Float32Array };
        } else {
          const shaped = logitsMode === 'last' ? tf.reshape(logits, [batch.batchSize, -1]) : logits;
          if (shaped !== logits) kept.push(shaped);
          logitsOut = { shape: shaped.shape, data: (await shaped.data()) as Float32Array };
        }
      }
      return { batchSize: batch.batchSize, seqLen: batch.seqLen, lengths: batch.lengths, logits: logitsOut, records };
    } finally {
      for (const x of kept) x.dispose();
      for (const x of recordTensors.values()) x.dispose();
      hooks.dispose();
    }
  }

  /** Greedy decoding of maxNewTokens tokens per row; hooks act at every position and step. */
  async generate(sequences: readonly (readonly number[])[], opts: GenerateOptions): Promise<GenerateResult> {
    this.checkAlive();
    const n = opts.maxNewTokens;
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`maxNewTokens must be a non-negative integer, got ${n}`);
    if (opts.hooks?.record?.length) {
      throw new HookError('generate() does not record activations; use forward() with hooks.record on the prompts');
    }
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
            logits = this.run(prompt, keyValid, cache, hooks, null, 'last')!;
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
            logits = this.run(stepBatch, keyValid, cache, hooks, null, 'last')!;
          }
        } else {
          const full = padLeft(current, padId, this.config.vocabSize);
          logits = this.run(full, full.valid, null, hooks, null, 'last')!;
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
    if (opts.stopAtEos && this.config.eosTokenId !== null) {
      const eos = this.config.eosTokenId;
      for (const row of tokens) {
        const i = row.indexOf(eos);
        if (i >= 0) row.length = i;
      }
    }
    return { tokens };
  }

  /**
   * Runs embeddings → layers → head for T new positions (the last T of S keys when a cache is
   * given). Returns the requested logits ([B, T, V] or [B, 1, V]); recorded activations go to
   * `records`. Every intermediate tensor is released before returning.
   */
  private run(
    batch: PaddedBatch,
    keyValid: Float32Array,
    cache: KVCache | null,
    hooks: CompiledHooks,
    records: Map<string, tf.Tensor> | null,
    logitsMode: 'all' | 'last' | 'none',
  ): tf.Tensor | null {
    const c = this.config;
    const B = batch.batchSize;
    const T = batch.seqLen;
    const S = keyValid.length / B;
    const w = this.weights;
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
        // Created lazily inside a layer tidy, so kept explicitly; released in the finally below.
        m = { mask: tf.keep(tf.tensor3d(data, [B, T, 1])), count: tf.keep(tf.tensor2d(counts, [B, 1])) };
        poolMasks.set(skipFirst, m);
      }
      return m;
    };
    // Applies interventions, then records; inside a tidy, so recorded results are kept explicitly.
    const hook = (point: string, x: tf.Tensor): tf.Tensor => {
      if (!hooks.touches(point)) return x;
      const y = hooks.apply(point, x);
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
      return y;
    };
    // `h` is the only live activation between layers; on any error it is released in the catch.
    let h: tf.Tensor | null = null;
    try {
      h = tf.tidy(() => tf.gather(w.embed, tf.tensor2d(batch.ids, [B, T], 'int32'))); // [B,T,H]
      for (let l = 0; l < c.numLayers; l++) {
        const lw = w.layers[l]!;
        const name = (site: Site) => hookPointName(l, site);
        const newCache: { k: tf.Tensor4D | null; v: tf.Tensor4D | null } = { k: null, v: null };
        const prev: tf.Tensor = h;
        let next: tf.Tensor;
        try {
          next = tf.tidy(() => {
            const xn = rmsNorm(prev, lw.inputNorm, c.rmsNormEps);
            const q = hook(name('attn.q'), linear(xn, lw.q));
            const k = hook(name('attn.k'), linear(xn, lw.k));
            const v = hook(name('attn.v'), linear(xn, lw.v));
            const heads = (x: tf.Tensor, n: number) => tf.transpose(tf.reshape(x, [B, T, n, c.headDim]), [0, 2, 1, 3]);
            const qh = rope(heads(q, c.numHeads), ctx.cos, ctx.sin);
            let kh = rope(heads(k, c.numKvHeads), ctx.cos, ctx.sin);
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
            const attn = attention(qh, kh, vh, ctx.mask, c, B, T, S);
            const o = hook(name('attn.o'), linear(attn, lw.o));
            const mid = hook(name('resid_mid'), tf.add(prev, o));
            const mn = rmsNorm(mid, lw.postNorm, c.rmsNormEps);
            const gate = hook(name('mlp.gate'), linear(mn, lw.gate));
            const up = hook(name('mlp.up'), linear(mn, lw.up));
            const down = hook(name('mlp.down'), linear(tf.mul(tf.mul(gate, tf.sigmoid(gate)), up), lw.down));
            return hook(name('resid_post'), tf.add(mid, down));
          });
        } catch (e) {
          newCache.k?.dispose();
          newCache.v?.dispose();
          throw e;
        }
        prev.dispose();
        h = next;
        if (cache) {
          cache.k[l]?.dispose();
          cache.v[l]?.dispose();
          cache.k[l] = newCache.k;
          cache.v[l] = newCache.v;
        }
      }
      if (logitsMode === 'none') return null;
      const final: tf.Tensor = h;
      return tf.tidy(() => {
        const x = logitsMode === 'last' ? tf.slice(final, [0, T - 1, 0], [-1, 1, -1]) : final;
        return hook('logits', linear(rmsNorm(x, w.norm, c.rmsNormEps), w.lmHead));
      });
    } finally {
      h?.dispose();
      tf.dispose([ctx.cos, ctx.sin, ctx.mask]);
      for (const m of poolMasks.values()) tf.dispose([m.mask, m.count]);
    }
  }
}

function buildWeights(config: LlamaConfig, read: (name: string) => { data: Float32Array; shape: number[] }, source: string): ModelWeights {
  const expected = new Map(expectedTensors(config).map((s) => [s.name, s.shape]));
  const created: tf.Tensor[] = [];
  const t = <R extends tf.Rank>(name: string): tf.Tensor<R> => {
    const { data, shape } = read(name);
    const want = expected.get(name)!;
    if (shape.join() !== want.join()) throw new ShapeError(`${source}: weight ${name} has shape [${shape}], config.json implies [${want}]`);
    const x = tf.tensor(data, shape) as unknown as tf.Tensor<R>;
    created.push(x);
    return x;
  };
  const linearT = (name: string): tf.Tensor2D => {
    const w = t<tf.Rank.R2>(name);
    const wt = tf.transpose(w);
    created.push(wt);
    w.dispose();
    return wt;
  };
  try {
    const embed = t<tf.Rank.R2>('model.embed_tokens.weight');
    let lmHead: tf.Tensor2D;
    if (config.tieWordEmbeddings) {
      lmHead = tf.transpose(embed);
      created.push(lmHead);
    } else {
      lmHead = linearT('lm_head.weight');
    }
    const weights: ModelWeights = { embed, norm: t<tf.Rank.R1>('model.norm.weight'), lmHead, layers: [] };
    for (let l = 0; l < config.numLayers; l++) {
      const p = `model.layers.${l}`;
      weights.layers.push({
        inputNorm: t(`${p}.input_layernorm.weight`),
        q: linearT(`${p}.self_attn.q_proj.weight`),
        k: linearT(`${p}.self_attn.k_proj.weight`),
        v: linearT(`${p}.self_attn.v_proj.weight`),
        o: linearT(`${p}.self_attn.o_proj.weight`),
        postNorm: t(`${p}.post_attention_layernorm.weight`),
        gate: linearT(`${p}.mlp.gate_proj.weight`),
        up: linearT(`${p}.mlp.up_proj.weight`),
        down: linearT(`${p}.mlp.down_proj.weight`),
      });
    }
    return weights;
  } catch (e) {
    for (const x of created) if (!x.isDisposed) x.dispose();
    throw e;
  }
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

/** x [B,T,in] · w with w [in, out] (pre-transposed) → [B,T,out]. */
export function linear(x: tf.Tensor, w: tf.Tensor2D): tf.Tensor {
  const [B, T, inDim] = x.shape as [number, number, number];
  return tf.reshape(tf.matMul(tf.reshape(x, [B * T, inDim]), w), [B, T, w.shape[1]]);
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
