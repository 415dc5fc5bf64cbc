/**
 * Where the decoder layers' weights live during a call.
 *
 * - resident: every weight on the device for the model's lifetime (fast; needs the whole
 *   model in float32: 27 GB for Llama-2-7B, 52 GB for 13B).
 * - streamed: only the embeddings, final norm and LM head stay resident; each decoder layer is
 *   read from disk (float16 storage widened to float32, on the device where it can: half-upload.ts),
 *   used for the whole batch, and released.
 *   The next layer's bytes are read from disk while the current layer computes.
 *
 * Linear weights are held transposed, [in, out] (HF stores [out, in]): on the wasm backend a
 * matMul with transposeB is over 10× slower than a plain one (3.4 vs 44 GFLOP/s, 512×512·512×1376).
 * They are also split into blocks that each fit one device binding where the device limits it
 * (WebGPU), so no tensor larger than a binding is ever created (blocked.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import { maxBindingBytes } from '../backend.ts';
import { CheckpointError, ShapeError } from '../errors.ts';
import { disposeBlocks, type EmbeddingTable, type LinearWeight, transposeTable, uploadRows, uploadTransposed } from './blocked.ts';
import { expectedTensors, type LlamaConfig } from './config.ts';
import { deviceWidensHalf, halfBitsToTensor } from './half-upload.ts';
import { allFinite, finiteChecked, type WeightStore } from './weights.ts';

export type ExecutionPlan = 'resident' | 'streamed';

/** Linear weights are pre-transposed ([in, out]) and split into blocks that each fit one device binding (blocked.ts). */
export interface LayerWeights {
  inputNorm: tf.Tensor1D;
  q: LinearWeight; // [H, nh*hd]
  k: LinearWeight; // [H, nkv*hd]
  v: LinearWeight; // [H, nkv*hd]
  /** q/k/v biases, present exactly when config.attentionBias (Qwen2). */
  qBias?: tf.Tensor1D;
  kBias?: tf.Tensor1D;
  vBias?: tf.Tensor1D;
  o: LinearWeight; // [nh*hd, H]
  postNorm: tf.Tensor1D;
  gate: LinearWeight; // [H, F]
  up: LinearWeight; // [H, F]
  down: LinearWeight; // [F, H]
}

export interface GlobalWeights {
  embed: EmbeddingTable; // [V, H], for the lookup
  norm: tf.Tensor1D;
  lmHead: LinearWeight; // [H, V] (transposed lm_head, or transposed embedding when tied)
}

export interface ModelWeights extends GlobalWeights {
  layers: LayerWeights[];
}

/** A weight's values on the host: float32, or float16 bits (Uint16Array) for a device that widens them (half-upload.ts). */
export type HostWeight = Float32Array | Uint16Array;

export type ReadWeight = (name: string) => { data: HostWeight; shape: number[] };

/** Reads weights from a converted directory, keeping float16 storage as half bits where the device widens them. */
export function storeReader(store: WeightStore): ReadWeight {
  const keepHalf = deviceWidensHalf();
  return (name) => ({ data: keepHalf ? store.readStored(name) : store.read(name), shape: store.shape(name) });
}

/** Creates tensors from `read`, checking shapes; everything created is disposed if any step fails. */
class TensorFactory {
  readonly created: tf.Tensor[] = [];
  private readonly expected: Map<string, number[]>;

  constructor(config: LlamaConfig, private readonly read: ReadWeight, private readonly source: string) {
    this.expected = new Map(expectedTensors(config).map((s) => [s.name, s.shape]));
  }

  /** The host data of `name`, shape-checked and (for weights from memory) checked for NaN/±Inf. */
  private data(name: string): { data: HostWeight; shape: number[] } {
    const { data, shape } = this.read(name);
    const want = this.expected.get(name)!;
    if (shape.join() !== want.join()) throw new ShapeError(`${this.source}: weight ${name} has shape [${shape}], config.json implies [${want}]`);
    if (data instanceof Uint16Array) {
      const i = finiteChecked.has(data) ? -1 : data.findIndex((h) => (h & 0x7c00) === 0x7c00);
      if (i >= 0) throw new CheckpointError(`${this.source}: weight ${name} holds a non-finite float16 value at flat index ${i} of shape [${shape}]`, undefined, name);
      return { data, shape };
    }
    // Weights from memory (LlamaModel.fromArrays, e.g. a freshly trained model) get the check
    // that WeightStore gives weights read from disk: NaN or ±Inf would make every logit NaN.
    if (!finiteChecked.has(data) && !allFinite(data)) {
      const i = data.findIndex((x) => !Number.isFinite(x));
      throw new CheckpointError(`${this.source}: weight ${name} holds a non-finite value (${data[i]}) at flat index ${i} of shape [${shape}]`, undefined, name);
    }
    return { data, shape };
  }

  plain<R extends tf.Rank>(name: string): tf.Tensor<R> {
    const { data, shape } = this.data(name);
    const x = (data instanceof Uint16Array ? halfBitsToTensor(data, shape) : tf.tensor(data, shape)) as unknown as tf.Tensor<R>;
    this.created.push(x);
    return x;
  }

  /** An HF linear weight [out, in] as [in, out] column blocks. */
  transposed(name: string): LinearWeight {
    const { data, shape } = this.data(name);
    const w = uploadTransposed(data, shape[0]!, shape[1]!, maxBindingBytes(), `${this.source}: weight ${name}`);
    this.created.push(...w.blocks);
    return w;
  }

  table(name: string): EmbeddingTable {
    const { data, shape } = this.data(name);
    const t = uploadRows(data, shape[0]!, shape[1]!, maxBindingBytes(), `${this.source}: weight ${name}`);
    this.created.push(...t.blocks);
    return t;
  }

  guard<T>(f: () => T): T {
    try {
      return f();
    } catch (e) {
      for (const x of this.created) if (!x.isDisposed) x.dispose();
      throw e;
    }
  }
}

export function buildGlobal(config: LlamaConfig, read: ReadWeight, source: string): GlobalWeights {
  const f = new TensorFactory(config, read, source);
  return f.guard(() => {
    const embed = f.table('model.embed_tokens.weight');
    let lmHead: LinearWeight;
    if (config.tieWordEmbeddings) {
      lmHead = transposeTable(embed);
      f.created.push(...lmHead.blocks);
    } else {
      lmHead = f.transposed('lm_head.weight');
    }
    return { embed, norm: f.plain<tf.Rank.R1>('model.norm.weight'), lmHead };
  });
}

export function buildLayer(config: LlamaConfig, read: ReadWeight, l: number, source: string): LayerWeights {
  const f = new TensorFactory(config, read, source);
  const p = `model.layers.${l}`;
  return f.guard(() => {
    const lw: LayerWeights = {
      inputNorm: f.plain(`${p}.input_layernorm.weight`),
      q: f.transposed(`${p}.self_attn.q_proj.weight`),
      k: f.transposed(`${p}.self_attn.k_proj.weight`),
      v: f.transposed(`${p}.self_attn.v_proj.weight`),
      o: f.transposed(`${p}.self_attn.o_proj.weight`),
      postNorm: f.plain(`${p}.post_attention_layernorm.weight`),
      gate: f.transposed(`${p}.mlp.gate_proj.weight`),
      up: f.transposed(`${p}.mlp.up_proj.weight`),
      down: f.transposed(`${p}.mlp.down_proj.weight`),
    };
    if (config.attentionBias) {
      lw.qBias = f.plain(`${p}.self_attn.q_proj.bias`);
      lw.kBias = f.plain(`${p}.self_attn.k_proj.bias`);
      lw.vBias = f.plain(`${p}.self_attn.v_proj.bias`);
    }
    return lw;
  });
}

export function disposeLayer(lw: LayerWeights): void {
  tf.dispose([lw.inputNorm, lw.postNorm, ...[lw.qBias, lw.kBias, lw.vBias].filter((b): b is tf.Tensor1D => b !== undefined)]);
  for (const w of [lw.q, lw.k, lw.v, lw.o, lw.gate, lw.up, lw.down]) disposeBlocks(w);
}

export function disposeGlobal(g: GlobalWeights): void {
  disposeBlocks(g.embed);
  disposeBlocks(g.lmHead);
  g.norm.dispose();
}

/** The tensors of decoder layer l (with q/k/v biases where the family has them). */
export function layerWeightNames(config: LlamaConfig, l: number): string[] {
  const prefix = `model.layers.${l}.`;
  return expectedTensors(config).filter((s) => s.name.startsWith(prefix)).map((s) => s.name);
}

export interface WeightSource {
  readonly plan: ExecutionPlan;
  readonly global: GlobalWeights;
  /** Layer l's weights on the device; pair every call with release(l). */
  layer(l: number): Promise<LayerWeights>;
  release(l: number): void;
  dispose(): void;
}

export class ResidentWeights implements WeightSource {
  readonly plan = 'resident';
  readonly global: GlobalWeights;

  constructor(private readonly weights: ModelWeights) {
    this.global = weights;
  }

  static build(config: LlamaConfig, read: ReadWeight, source: string): ResidentWeights {
    const global = buildGlobal(config, read, source);
    const layers: LayerWeights[] = [];
    try {
      for (let l = 0; l < config.numLayers; l++) layers.push(buildLayer(config, read, l, source));
    } catch (e) {
      layers.forEach(disposeLayer);
      disposeGlobal(global);
      throw e;
    }
    return new ResidentWeights({ ...global, layers });
  }

  async layer(l: number): Promise<LayerWeights> {
    return this.weights.layers[l]!;
  }

  release(): void {}

  dispose(): void {
    const w = this.weights;
    w.layers.forEach(disposeLayer);
    disposeGlobal(w);
  }
}

export class StreamedWeights implements WeightSource {
  readonly plan = 'streamed';
  readonly global: GlobalWeights;
  private readonly live = new Map<number, LayerWeights>();
  private prefetched: { l: number; bytes: Promise<Map<string, HostWeight>> } | null = null;
  /** Time spent waiting for layer bytes (disk + widening not hidden by prefetch) and building device tensors. */
  readonly stats = { layerLoads: 0, waitSeconds: 0, uploadSeconds: 0 };

  constructor(private readonly config: LlamaConfig, private readonly store: WeightStore) {
    this.global = buildGlobal(config, storeReader(store), `${store.dir}/model.json`);
  }

  private readLayerHost(l: number): Promise<Map<string, HostWeight>> {
    const keepHalf = deviceWidensHalf();
    return Promise.all(layerWeightNames(this.config, l).map(async (n) => [n, await this.store.readAsync(n, keepHalf)] as const)).then((pairs) => new Map(pairs));
  }

  async layer(l: number): Promise<LayerWeights> {
    const hit = this.prefetched?.l === l ? this.prefetched.bytes : null;
    const t0 = performance.now();
    const host = await (hit ?? this.readLayerHost(l));
    const t1 = performance.now();
    // Wrap around to layer 0: generation sweeps the layers once per new token.
    const next = (l + 1) % this.config.numLayers;
    this.prefetched = { l: next, bytes: this.readLayerHost(next) };
    // Keep a rejected prefetch from surfacing as an unhandled rejection; layer() will rethrow it.
    this.prefetched.bytes.catch(() => undefined);
    const lw = buildLayer(this.config, (n) => ({ data: host.get(n)!, shape: this.store.shape(n) }), l, `${this.store.dir}/model.json`);
    this.stats.layerLoads++;
    this.stats.waitSeconds += (t1 - t0) / 1000;
    this.stats.uploadSeconds += (performance.now() - t1) / 1000;
    this.live.set(l, lw);
    return lw;
  }

  release(l: number): void {
    const lw = this.live.get(l);
    if (lw) disposeLayer(lw);
    this.live.delete(l);
  }

  dispose(): void {
    for (const l of [...this.live.keys()]) this.release(l);
    this.prefetched = null;
    disposeGlobal(this.global);
  }
}
