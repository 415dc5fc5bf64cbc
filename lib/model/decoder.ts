/**
 * The decoder of every supported family (family.ts), top to bottom (after llama2.c's model.py
 * and HF's modeling_llama / modeling_qwen2 / modeling_gemma / modeling_mistral):
 *
 *   embed (× embedScale) → for each layer: RMSNorm → attention (q/k/v [+ bias], RoPE rotate-half,
 *                           grouped-query, [sliding window]) → residual
 *                           → RMSNorm → gated MLP (SiLU or tanh-GELU) → residual
 *         → RMSNorm → LM head
 *
 * The families differ only in the config fields read here: Gemma scales the embeddings by
 * √hidden, multiplies its norms by (1 + w) and gates with tanh-GELU; Qwen2 adds q/k/v biases
 * before RoPE; Mistral's window lives in the attention mask (attentionContext).
 *
 * Every named activation passes through `hook(name, x)` where it is computed, in the
 * TransformerLens vocabulary of hooks.ts (embed, blocks.{l}.resid_pre, attn.q/k/v/o, resid_mid,
 * mlp.gate/up/act/down, resid_post, logits). A hook returns its input unchanged unless the call
 * intervenes there, so an unhooked pass is exactly the plain maths.
 *
 * This module is only the maths. Where weights live, micro-batches, the KV cache and memory
 * checks belong to the runner (llama.ts); inference and organism training both run this code,
 * and differ only in `DecoderMath` (how a product is computed, which autograd needs).
 *
 * Shapes: B batch rows, T new positions, S key positions (cache + new), H hidden, nh/nkv
 * query/key-value heads, hd head dim, F FFN width, V vocab. Activations flow as [B·T, width].
 */
import * as tf from '@tensorflow/tfjs-core';
import { causalMask } from './batch.ts';
import type { LlamaConfig } from './config.ts';
import type { HiddenAct } from './family.ts';
import { hookPointName, type Site } from './hooks.ts';

/** How products are computed. `W`: a linear weight held as [in, out]; `E`: an embedding table. */
export interface DecoderMath<W, E> {
  /** x [rows, in] · w [in, out] → [rows, out]. */
  linear(x: tf.Tensor, w: W): tf.Tensor;
  /** Rows `ids` of the table, [ids.length, H]. */
  lookup(table: E, ids: Int32Array): tf.Tensor;
  /** Batched a · b, or a · bᵀ (last two axes). */
  matMul(a: tf.Tensor, b: tf.Tensor, transposeB: boolean): tf.Tensor;
}

export interface DecoderLayerWeights<W> {
  inputNorm: tf.Tensor1D;
  q: W; // [H, nh·hd]
  k: W; // [H, nkv·hd]
  v: W; // [H, nkv·hd]
  /** Present exactly when config.attentionBias (Qwen2). */
  qBias?: tf.Tensor1D; // [nh·hd]
  kBias?: tf.Tensor1D; // [nkv·hd]
  vBias?: tf.Tensor1D; // [nkv·hd]
  o: W; // [nh·hd, H]
  postNorm: tf.Tensor1D;
  gate: W; // [H, F]
  up: W; // [H, F]
  down: W; // [F, H]
}

export interface DecoderHeadWeights<W> {
  norm: tf.Tensor1D;
  lmHead: W; // [H, V]
}

export type HookFn = (point: string, x: tf.Tensor) => tf.Tensor;

/** What one pass over B rows × T new positions needs besides weights. */
export interface DecoderPass<W, E> {
  config: LlamaConfig;
  math: DecoderMath<W, E>;
  B: number;
  T: number;
  attention: AttentionContext;
  hook: HookFn;
  /** With a KV cache: this layer's new keys/values [B, nkv, T, hd] → all keys/values [B, nkv, S, hd]. */
  keysValues?: (layer: number, k: tf.Tensor, v: tf.Tensor) => [tf.Tensor, tf.Tensor];
}

/** RoPE tables and the additive attention mask for T new queries against S keys. */
export interface AttentionContext {
  cos: tf.Tensor; // [B or 1, 1, T, hd]
  sin: tf.Tensor;
  mask: tf.Tensor; // [B or 1, 1, T, S]
  /** [hd, hd]: x · rotateHalf = rotate_half(x) (see rope). */
  rotateHalf: tf.Tensor;
  S: number;
}

/**
 * The signed permutation R with x · R = rotate_half(x) = [-x2, x1] for x = [x1, x2]. Each output
 * is one input times ±1 plus exact zeros, so the product equals the split-negate-concat exactly
 * (for finite inputs), and it is one matMul instead of four copying kernels.
 */
function rotateHalfMatrix(hd: number): tf.Tensor {
  const r = new Float32Array(hd * hd);
  for (let i = 0; i < hd / 2; i++) {
    r[(i + hd / 2) * hd + i] = -1; // out[i] = -x[i + hd/2]
    r[i * hd + i + hd / 2] = 1; // out[i + hd/2] = x[i]
  }
  return tf.tensor2d(r, [hd, hd]);
}

/**
 * RoPE tables for `positions` ([rows·T], row-major) and the causal mask over S = keyValid.length/rows
 * keys, of which the last T are the new positions (limited to the config's sliding window, if
 * any). HF rotate-half convention: angle(p, i) = p / theta^(2i/hd), duplicated over both halves.
 */
export function attentionContext(c: LlamaConfig, positions: Int32Array, keyValid: Float32Array, rows: number, T: number): AttentionContext {
  const S = keyValid.length / rows;
  return tf.tidy(() => {
    const half = c.headDim / 2;
    const invFreq = tf.tensor1d(Float32Array.from({ length: half }, (_, i) => 1 / Math.pow(c.ropeTheta, (2 * i) / c.headDim)));
    const pos = tf.cast(tf.tensor2d(positions, [rows, T], 'int32'), 'float32');
    const angles = tf.mul(tf.expandDims(pos, 2), tf.reshape(invFreq, [1, 1, half])); // [rows,T,hd/2]
    const full = tf.concat([angles, angles], 2);
    return {
      cos: tf.expandDims(tf.cos(full), 1),
      sin: tf.expandDims(tf.sin(full), 1),
      mask: tf.tensor4d(causalMask(keyValid, rows, S, T, c.slidingWindow), [rows, 1, T, S]),
      rotateHalf: rotateHalfMatrix(c.headDim),
      S,
    };
  });
}

export function disposeAttentionContext(a: AttentionContext): void {
  tf.dispose([a.cos, a.sin, a.mask, a.rotateHalf]);
}

/**
 * Token embeddings of `ids` ([B·T]) as they enter the residual stream (Gemma's scaled by
 * √hidden; the LM head still uses the raw table), the `embed` hook point.
 */
export function embed<W, E>(pass: DecoderPass<W, E>, table: E, ids: Int32Array): tf.Tensor {
  const x = pass.math.lookup(table, ids);
  return pass.hook('embed', pass.config.embedScale === 1 ? x : tf.mul(x, pass.config.embedScale));
}

/** One decoder layer: residual stream in (`blocks.{l}.resid_pre`), residual stream out (`resid_post`). */
export function decoderLayer<W, E>(pass: DecoderPass<W, E>, l: number, w: DecoderLayerWeights<W>, residPre: tf.Tensor): tf.Tensor {
  const { config: c, math, hook, B, T, attention: ctx } = pass;
  const at = (site: Site) => hookPointName(l, site);
  const heads = (x: tf.Tensor, n: number) => tf.transpose(tf.reshape(x, [B, T, n, c.headDim]), [0, 2, 1, 3]);

  const x = hook(at('resid_pre'), residPre);
  const xn = rmsNorm(x, w.inputNorm, c.rmsNormEps, c.normOffset);
  // Biases (Qwen2) belong to the projections: added before the hook and before RoPE.
  const q = hook(at('attn.q'), withBias(math.linear(xn, w.q), w.qBias));
  const k = hook(at('attn.k'), withBias(math.linear(xn, w.k), w.kBias));
  const v = hook(at('attn.v'), withBias(math.linear(xn, w.v), w.vBias));
  const qh = rope(math, heads(q, c.numHeads), ctx);
  let kh = rope(math, heads(k, c.numKvHeads), ctx);
  let vh = heads(v, c.numKvHeads);
  if (pass.keysValues) [kh, vh] = pass.keysValues(l, kh, vh);
  const z = tf.reshape(attention(math, qh, kh, vh, ctx.mask, c, B, T, ctx.S), [B * T, c.numHeads * c.headDim]);
  const o = hook(at('attn.o'), math.linear(z, w.o));
  const mid = hook(at('resid_mid'), tf.add(x, o));

  const mn = rmsNorm(mid, w.postNorm, c.rmsNormEps, c.normOffset);
  const gate = hook(at('mlp.gate'), math.linear(mn, w.gate)); // pre-activation
  const up = hook(at('mlp.up'), math.linear(mn, w.up));
  const act = hook(at('mlp.act'), tf.mul(mlpActivation(c.hiddenAct, gate), up));
  const down = hook(at('mlp.down'), math.linear(act, w.down));
  return hook(at('resid_post'), tf.add(mid, down));
}

/** Final norm and LM head: x [rows, H] → logits [rows, V], the `logits` hook point. */
export function head<W, E>(pass: DecoderPass<W, E>, w: DecoderHeadWeights<W>, x: tf.Tensor): tf.Tensor {
  const c = pass.config;
  return pass.hook('logits', pass.math.linear(rmsNorm(x, w.norm, c.rmsNormEps, c.normOffset), w.lmHead));
}

/**
 * HF LlamaRMSNorm: x · rsqrt(mean(x²) + eps) · weight, in float32. Gemma's norm multiplies by
 * (1 + weight) instead (normOffset 1): its checkpoints store the weights as offsets around 0.
 */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor1D, eps: number, normOffset = 0): tf.Tensor {
  const variance = tf.mean(tf.square(x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, eps))), normOffset === 0 ? weight : tf.add(weight, normOffset));
}

function withBias(x: tf.Tensor, bias: tf.Tensor1D | undefined): tf.Tensor {
  return bias ? tf.add(x, bias) : x;
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/**
 * The MLP's activation of its gate. SiLU: x·σ(x). Tanh-GELU (PyTorch's gelu(approximate="tanh"),
 * Gemma's): 0.5·x·(1 + tanh(z)) with z = √(2/π)·(x + 0.044715·x³), computed as x·σ(2z), which
 * is the same function and cannot overflow where tanh is built from exp.
 */
export function mlpActivation(kind: HiddenAct, x: tf.Tensor): tf.Tensor {
  if (kind === 'silu') return tf.mul(x, tf.sigmoid(x));
  const z = tf.mul(tf.add(x, tf.mul(tf.mul(tf.square(x), x), 0.044715)), 2 * SQRT_2_OVER_PI);
  return tf.mul(x, tf.sigmoid(z));
}

/** x·cos + rotate_half(x)·sin with rotate_half(x) = [-x2, x1]. x: [B, n, T, hd]. */
export function rope<W, E>(math: DecoderMath<W, E>, x: tf.Tensor, ctx: AttentionContext): tf.Tensor {
  const rotated = tf.reshape(math.matMul(tf.reshape(x, [-1, x.shape[3]!]), ctx.rotateHalf, false), x.shape);
  return tf.add(tf.mul(x, ctx.cos), tf.mul(rotated, ctx.sin));
}

/**
 * Grouped-query attention without copying K/V per query head: the rep = nh/nkv query heads
 * that share a K/V head are stacked along the query axis ([B, nkv, rep·T, hd]), which is the
 * HF repeat_kv grouping (query head h uses K/V head ⌊h/rep⌋). Returns [B, T, nh·hd].
 */
export function attention<W, E>(math: DecoderMath<W, E>, q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, mask: tf.Tensor, c: LlamaConfig, B: number, T: number, S: number): tf.Tensor {
  const rep = c.numHeads / c.numKvHeads;
  const qg = tf.reshape(q, [B, c.numKvHeads, rep * T, c.headDim]);
  const scores = math.matMul(qg, k, true); // [B, nkv, rep·T, S]
  const scaled = tf.add(tf.mul(tf.reshape(scores, [B, c.numHeads, T, S]), 1 / Math.sqrt(c.headDim)), mask);
  const probs = tf.reshape(tf.softmax(scaled), [B, c.numKvHeads, rep * T, S]);
  const out = tf.reshape(math.matMul(probs, v, false), [B, c.numHeads, T, c.headDim]);
  return tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [B, T, c.numHeads * c.headDim]);
}
