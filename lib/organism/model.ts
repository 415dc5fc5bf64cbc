/**
 * The organism's trainable Llama: the decoder of lib/model/decoder.ts, run with weights as
 * tf.Variables so that TF.js autograd can train it, and a full next-token cross-entropy loss.
 * Only the products differ from inference (TRAINING_MATH): their gradients avoid kernels that
 * are slow on wasm.
 *
 * Layout: linear weights are held as [in, out] (what `linear` wants); HF files store [out, in],
 * so `toHfTensors` transposes them back. Initialisation is Llama's (normal, std 0.02; norms 1)
 * from the project's seeded mulberry32 stream, so a seed gives the same weights everywhere.
 */
import * as tf from '@tensorflow/tfjs-core';
// tfjs-core's Node bundle registers no gradients; the @tensorflow/tfjs umbrella registers them all
// (in tfjs-core's process-global gradient registry), so training needs this side-effect import.
import '@tensorflow/tfjs';
import { attentionContext, type DecoderMath, type DecoderPass, decoderLayer, embed, head } from '../model/decoder.ts';
import { expectedTensors, type LlamaConfig } from '../model/config.ts';
import { mulberry32, type Rng } from '../rng.ts';

/** Standard normal from a uniform stream (Box–Muller, both values used). */
export function normalSampler(rng: Rng): () => number {
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    let u = 0;
    while (u === 0) u = rng.next();
    const v = rng.next();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}

/** Parameter names in training layout; linear weights are [in, out]. */
export interface ParamSpec {
  name: string; // HF name
  shape: number[]; // training layout
  /** True for [in, out] linear weights that HF stores transposed. */
  transposed: boolean;
  /** Whether AdamW weight decay applies (matrices yes, norms no). */
  decay: boolean;
}

export function paramSpecs(c: LlamaConfig): ParamSpec[] {
  return expectedTensors(c).map((t) => {
    const isLinear = t.name.endsWith('_proj.weight') || t.name === 'lm_head.weight';
    return {
      name: t.name,
      shape: isLinear ? [t.shape[1]!, t.shape[0]!] : t.shape,
      transposed: isLinear,
      decay: t.shape.length === 2,
    };
  });
}

/**
 * Matrix products whose gradients use explicit transposes. TF.js's own matMul gradient calls
 * matMul with transposeA/transposeB, which the wasm backend runs 3–40× slower than a plain
 * product (measured: 3.5 vs 34 GFLOP/s at [1536,64]·[64,192]; 1 vs 38 at the LM head).
 */
function swapLast(x: tf.Tensor): tf.Tensor {
  const r = x.rank;
  const perm = [...Array(r).keys()];
  perm[r - 1] = r - 2;
  perm[r - 2] = r - 1;
  return tf.transpose(x, perm);
}

const fastMatMulGrad = tf.customGrad((...inputs: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [a, b, save] = inputs as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sa, sb] = saved as [tf.Tensor, tf.Tensor];
      return [tf.matMul(dy, swapLast(sb)), tf.matMul(swapLast(sa), dy)];
    },
  };
});
const fastMatMul = (a: tf.Tensor, b: tf.Tensor): tf.Tensor => fastMatMulGrad(a, b);

/**
 * Training products: plain matMuls with explicit transposes, whose gradients are plain matMuls
 * too; the embedding lookup as one-hot · E, because the gradient of gather needs an
 * UnsortedSegmentSum kernel the wasm backend lacks (the matMul costs about as much as the LM head).
 */
const TRAINING_MATH: DecoderMath<tf.Tensor, tf.Tensor> = {
  linear: (x, w) => fastMatMul(x, w),
  lookup: (table, ids) => fastMatMul(tf.oneHot(tf.tensor1d(ids, 'int32'), table.shape[0]!), table),
  matMul: (a, b, transposeB) => fastMatMul(a, transposeB ? swapLast(b) : b),
};

export class TrainableLlama {
  readonly specs: ParamSpec[];
  readonly vars = new Map<string, tf.Variable>();

  constructor(readonly config: LlamaConfig, init: Map<string, Float32Array>) {
    this.specs = paramSpecs(config);
    for (const s of this.specs) {
      const data = init.get(s.name);
      if (!data) throw new Error(`missing initial value for ${s.name}`);
      this.vars.set(s.name, tf.variable(tf.tensor(data, s.shape), true, s.name));
    }
  }

  /** Llama initialisation: N(0, 0.02) for matrices, 1 for RMSNorm weights. Training layout. */
  static initialValues(c: LlamaConfig, seed: number): Map<string, Float32Array> {
    const normal = normalSampler(mulberry32(seed));
    const out = new Map<string, Float32Array>();
    for (const s of paramSpecs(c)) {
      const n = s.shape.reduce((x, y) => x * y, 1);
      const v = new Float32Array(n);
      if (s.shape.length === 1) v.fill(1);
      else for (let i = 0; i < n; i++) v[i] = 0.02 * normal();
      out.set(s.name, v);
    }
    return out;
  }

  v(name: string): tf.Variable {
    const x = this.vars.get(name);
    if (!x) throw new Error(`no parameter ${name}`);
    return x;
  }

  /**
   * Mean next-token cross-entropy over the real targets. `ids`: `rows` right-padded sequences of
   * equal length T+1, row-major; the target of position t is token t+1; `mask` [rows, T] is 1
   * where that target is a real token.
   */
  loss(ids: Int32Array, rows: number, mask: tf.Tensor2D): tf.Scalar {
    const c = this.config;
    const T = ids.length / rows - 1;
    if (!Number.isInteger(T) || T < 1) throw new RangeError(`loss: ${ids.length} ids do not form ${rows} rows of at least 2 tokens`);
    const input = new Int32Array(rows * T);
    const target = new Int32Array(rows * T);
    for (let b = 0; b < rows; b++) {
      input.set(ids.subarray(b * (T + 1), b * (T + 1) + T), b * T);
      target.set(ids.subarray(b * (T + 1) + 1, (b + 1) * (T + 1)), b * T);
    }
    // Every row has positions 0 … T-1 and sees all earlier keys: one context broadcast over the
    // rows. Its tensors belong to the caller's scope (variableGrads), as the backward pass reads them.
    const context = attentionContext(c, Int32Array.from({ length: T }, (_, t) => t), new Float32Array(T).fill(1), 1, T);
    const pass: DecoderPass<tf.Tensor, tf.Tensor> = { config: c, math: TRAINING_MATH, B: rows, T, attention: context, hook: (_point, x) => x };
    const table = this.v('model.embed_tokens.weight');
    let h = embed(pass, table, input);
    for (let l = 0; l < c.numLayers; l++) {
      const p = `model.layers.${l}`;
      const w = (n: string) => this.v(`${p}.${n}`);
      h = decoderLayer(pass, l, {
        inputNorm: w('input_layernorm.weight') as tf.Tensor as tf.Tensor1D,
        q: w('self_attn.q_proj.weight'),
        k: w('self_attn.k_proj.weight'),
        v: w('self_attn.v_proj.weight'),
        o: w('self_attn.o_proj.weight'),
        postNorm: w('post_attention_layernorm.weight') as tf.Tensor as tf.Tensor1D,
        gate: w('mlp.gate_proj.weight'),
        up: w('mlp.up_proj.weight'),
        down: w('mlp.down_proj.weight'),
      }, h);
    }
    // Tied: transpose the embedding once per step (a transposed-B matMul is far slower on wasm).
    const lmHead = c.tieWordEmbeddings ? tf.transpose(table) : this.v('lm_head.weight');
    const logits = head(pass, { norm: this.v('model.norm.weight') as tf.Tensor as tf.Tensor1D, lmHead }, h); // [rows·T, V]
    const logp = tf.logSoftmax(logits);
    const onehot = tf.oneHot(tf.tensor1d(target, 'int32'), c.vocabSize);
    const nll = tf.neg(tf.sum(tf.mul(logp, onehot), 1)); // [rows·T]
    const mk = tf.reshape(mask, [rows * T]);
    return tf.div(tf.sum(tf.mul(nll, mk)), tf.maximum(tf.sum(mk), 1)) as tf.Scalar;
  }

  /** Current weights in training layout. */
  async snapshot(): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    for (const s of this.specs) out.set(s.name, (await this.v(s.name).data()) as Float32Array);
    return out;
  }

  dispose(): void {
    for (const x of this.vars.values()) x.dispose();
    this.vars.clear();
  }
}

/** Training-layout weights → HF names and layouts ([out, in] for linear weights). */
export function toHfTensors(config: LlamaConfig, weights: Map<string, Float32Array>): { name: string; shape: number[]; data: Float32Array }[] {
  return paramSpecs(config).map((s) => {
    const d = weights.get(s.name)!;
    if (!s.transposed) return { name: s.name, shape: s.shape, data: d };
    const [inD, outD] = s.shape as [number, number];
    const t = new Float32Array(d.length);
    for (let i = 0; i < inD; i++) for (let o = 0; o < outD; o++) t[o * inD + i] = d[i * outD + o]!;
    return { name: s.name, shape: [outD, inD], data: t };
  });
}

/**
 * AdamW (Loshchilov & Hutter), decoupled weight decay as in torch.optim.AdamW:
 * p ← p − lr·wd·p, then the Adam step with bias correction.
 */
export class AdamW {
  readonly m = new Map<string, tf.Variable>();
  readonly v = new Map<string, tf.Variable>();
  step = 0;

  constructor(
    readonly model: TrainableLlama,
    readonly opts: { beta1: number; beta2: number; eps: number; weightDecay: number; clipNorm: number },
  ) {
    for (const s of model.specs) {
      this.m.set(s.name, tf.variable(tf.zeros(s.shape), false));
      this.v.set(s.name, tf.variable(tf.zeros(s.shape), false));
    }
  }

  /** One step; returns the gradient norm before clipping. */
  apply(grads: Record<string, tf.Tensor>, lr: number): tf.Scalar {
    this.step++;
    const { beta1, beta2, eps, weightDecay, clipNorm } = this.opts;
    const bc1 = 1 - Math.pow(beta1, this.step);
    const bc2 = 1 - Math.pow(beta2, this.step);
    return tf.tidy(() => {
      const names = this.model.specs.map((s) => s.name);
      // A chain of binary adds, not tf.addN: on WebGPU addN binds every input at once, and past the device's storage-buffer limit the kernel is dropped.
      const sq = names.map((n) => tf.sum(tf.square(grads[n]!))).reduce((a, b) => tf.add(a, b));
      const norm = tf.sqrt(sq);
      const scale = tf.div(clipNorm, tf.maximum(norm, clipNorm));
      for (const s of this.model.specs) {
        const p = this.model.v(s.name);
        const g = tf.mul(grads[s.name]!, scale);
        const m = this.m.get(s.name)!;
        const v = this.v.get(s.name)!;
        m.assign(tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1)));
        v.assign(tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2)));
        const upd = tf.div(tf.div(m, bc1), tf.add(tf.sqrt(tf.div(v, bc2)), eps));
        let np = tf.sub(p, tf.mul(upd, lr));
        if (s.decay && weightDecay > 0) np = tf.sub(np, tf.mul(p, lr * weightDecay));
        p.assign(np);
      }
      return tf.keep(norm) as tf.Scalar;
    });
  }

  async state(): Promise<{ step: number; m: Map<string, Float32Array>; v: Map<string, Float32Array> }> {
    const m = new Map<string, Float32Array>();
    const v = new Map<string, Float32Array>();
    for (const [k, x] of this.m) m.set(k, (await x.data()) as Float32Array);
    for (const [k, x] of this.v) v.set(k, (await x.data()) as Float32Array);
    return { step: this.step, m, v };
  }

  load(state: { step: number; m: Map<string, Float32Array>; v: Map<string, Float32Array> }): void {
    this.step = state.step;
    for (const s of this.model.specs) {
      this.m.get(s.name)!.assign(tf.tensor(state.m.get(s.name)!, s.shape));
      this.v.get(s.name)!.assign(tf.tensor(state.v.get(s.name)!, s.shape));
    }
  }

  dispose(): void {
    for (const x of [...this.m.values(), ...this.v.values()]) x.dispose();
  }
}
