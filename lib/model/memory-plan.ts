/**
 * Memory planner: predicts the peak tensor memory of a forward pass or generation for each
 * execution plan from config.json and the batch shape, picks a plan that fits the device, and
 * turns "would not fit" into an error that says what would.
 *
 * The activation model counts what lib/model/decoder.ts allocates inside one decoder layer's
 * tf.tidy (all intermediates live until the layer ends), as tf.memory().numBytes counts it
 * (a reshape view counts again, although it shares its buffer): 10 × B·T·H floats (input,
 * norms, residuals) and 14.5 × B·T·nh·hd (q and its heads and RoPE, attention output), 11.5 ×
 * B·T·kv (k, v, heads, RoPE), 6 × B·nh·T·S (scores and their views, scaled, masked, softmax) and
 * 5 × B·T·F (the SiLU-gated MLP; 10 with tanh-GELU) plus 3 × B·T·F per intervened hook point,
 * one more tensor per q/k/v bias, plus the KV cache, the causal mask and RoPE tables, and the head. test/plans.test.ts holds these to 10 % of the decoder's measured allocations.
 */
import { execFileSync } from 'node:child_process';
import { availableHostMemory } from '../host-memory.ts';
import { envVarName, readEnv } from '../env.ts';
import { OutOfMemoryError } from '../errors.ts';
import { parseDecimalNumber } from '../numbers.ts';
import type { LlamaConfig } from './config.ts';
import type { ExecutionPlan } from './weight-source.ts';

export interface Workload {
  batchSize: number;
  /** Rows per micro-batch (layer-major over micro-batches); default the whole batch. */
  microBatch?: number;
  /** Longest prompt in tokens. */
  promptLength: number;
  /** New tokens generated with the KV cache (0 for a forward pass). */
  newTokens?: number;
  /** Logits at every position ('all') or the last ('last', default). */
  logits?: 'all' | 'last' | 'none';
  /**
   * Hook points intervened on per layer, default 0. Each costs three [B·T, F]-sized tensors: the
   * [B, T, N] view the hook sees, the multiply (and add) result, and the view back.
   */
  hookedFfnSitesPerLayer?: number;
}

export interface MemoryPrediction {
  plan: ExecutionPlan;
  weightsBytes: number;
  activationBytes: number;
  kvCacheBytes: number;
  peakBytes: number;
}

const F32 = 4;

function layerParams(c: LlamaConfig): number {
  const h = c.hiddenSize;
  const kv = c.numKvHeads * c.headDim;
  const biases = c.attentionBias ? c.numHeads * c.headDim + 2 * kv : 0;
  return 2 * h + h * c.numHeads * c.headDim * 2 + 2 * h * kv + 3 * h * c.intermediateSize + biases;
}

function globalParams(c: LlamaConfig): number {
  // Embedding for the lookup and the LM head transposed for the matMul: two copies even when tied.
  return 2 * c.vocabSize * c.hiddenSize + c.hiddenSize;
}

export function predictMemory(c: LlamaConfig, w: Workload, plan: ExecutionPlan): MemoryPrediction {
  const Btotal = w.batchSize;
  // Inside a layer only one micro-batch is computed; the others wait as their residual streams.
  const B = Math.min(w.microBatch ?? Btotal, Btotal);
  const newTokens = w.newTokens ?? 0;
  // Longest key length during the call: the last new token is returned, never fed back.
  const S = w.promptLength + Math.max(0, newTokens - 1);
  const T = w.promptLength; // the prompt pass is the widest step
  const H = c.hiddenSize;
  const kv = c.numKvHeads * c.headDim;
  const F = c.intermediateSize;
  // Of the 24.5 stream-width tensors, 14.5 are as wide as the query heads (q, its heads, RoPE,
  // the attention output and its views): nh·hd, which is H except where head_dim is set apart
  // from it (Gemma). Biases add one tensor per projection; tanh-GELU five more FFN-wide ones than SiLU.
  const Q = c.numHeads * c.headDim;
  const biasTensors = c.attentionBias ? Q + 2 * kv : 0;
  const mlpTensors = (c.hiddenAct === 'gelu_tanh' ? 10 : 5) + 3 * (w.hookedFfnSitesPerLayer ?? 0);
  const perLayer = F32 * (10 * B * T * H + 14.5 * B * T * Q + 11.5 * B * T * kv + B * T * biasTensors + 6 * B * c.numHeads * T * S + mlpTensors * B * T * F);
  const kvCacheBytes = newTokens > 0 ? F32 * 2 * c.numLayers * B * S * kv : 0;
  const logitsRows = w.logits === 'all' ? Btotal * T : w.logits === 'none' ? 0 : Btotal;
  const head = F32 * (logitsRows * c.vocabSize + 4 * (w.logits === 'all' ? B * T : B) * H);
  const context = F32 * (Btotal * T * S + 3 * Btotal * T * c.headDim);
  const waiting = F32 * (Btotal - B) * T * H;
  const activationBytes = Math.max(perLayer, head) + context + F32 * B * T * H + waiting;
  // The streamed plan loads layers during the call, transposing each matrix through a temporary copy.
  const loadTemp = plan === 'streamed' ? Math.max(H * F, H * c.numHeads * c.headDim) : 0;
  const weightsBytes = F32 * ((plan === 'resident' ? c.numLayers * layerParams(c) : layerParams(c)) + globalParams(c) + loadTemp);
  return { plan, weightsBytes, activationBytes, kvCacheBytes, peakBytes: weightsBytes + activationBytes + kvCacheBytes };
}

export function formatGB(bytes: number): string {
  // Below 0.1 GB in MB: a 3 MB budget must not read "0.00 GB".
  if (bytes < 1e8) return `${(bytes / 1e6).toFixed(bytes < 1e6 ? 3 : 1)} MB`;
  return `${(bytes / 1e9).toFixed(bytes < 1e9 ? 2 : 1)} GB`;
}

/** Largest n in [0, hi] with fits(n), for a fits that holds up to some n and fails above; 0 if none. */
function largestFitting(hi: number, fits: (n: number) => boolean): number {
  let lo = 0;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Largest batch size (≤ limit) whose predicted peak fits in `bytes` under `plan`, or 0. */
export function maxBatchThatFits(c: LlamaConfig, w: Workload, plan: ExecutionPlan, bytes: number, limit = 4096): number {
  return largestFitting(limit, (n) => predictMemory(c, { ...w, batchSize: n, microBatch: undefined }, plan).peakBytes <= bytes);
}

export interface PlanChoice {
  plan: ExecutionPlan;
  /** Set when the batch only fits when processed in micro-batches of this size. */
  microBatch?: number;
  prediction: MemoryPrediction;
  other: MemoryPrediction;
  availableBytes: number;
  reason: string;
}

/**
 * Resident when it fits (fastest), else streamed; neither → OutOfMemoryError naming the batch
 * size that would fit under each plan.
 */
export function choosePlan(c: LlamaConfig, w: Workload, availableBytes: number, name = 'model'): PlanChoice {
  const resident = predictMemory(c, w, 'resident');
  const streamed = predictMemory(c, w, 'streamed');
  const has = formatGB(availableBytes);
  if (resident.peakBytes <= availableBytes) {
    return { plan: 'resident', prediction: resident, other: streamed, availableBytes, reason: `${name}: resident needs ${formatGB(resident.peakBytes)}, device has ${has} → resident` };
  }
  if (streamed.peakBytes <= availableBytes) {
    return {
      plan: 'streamed',
      prediction: streamed,
      other: resident,
      availableBytes,
      reason: `${name}: resident needs ${formatGB(resident.peakBytes)}, device has ${has} → streamed, peak ${formatGB(streamed.peakBytes)}`,
    };
  }
  // Layer-major micro-batches: only one micro-batch's layer intermediates are alive at a time.
  const lo = largestFitting(w.batchSize - 1, (n) => predictMemory(c, { ...w, microBatch: n }, 'streamed').peakBytes <= availableBytes);
  if (lo >= 1) {
    const p = predictMemory(c, { ...w, microBatch: lo }, 'streamed');
    return {
      plan: 'streamed',
      microBatch: lo,
      prediction: p,
      other: resident,
      availableBytes,
      reason: `${name}: resident needs ${formatGB(resident.peakBytes)}, device has ${has} → streamed in micro-batches of ${lo}, peak ${formatGB(p.peakBytes)}`,
    };
  }
  throw outOfMemory(c, w, availableBytes, name);
}

/**
 * Refuses a plan whose weights alone cannot be held: the embedding and LM head stay on the
 * device under every plan, so a vocabulary × hidden size too large for the backend (Gemma-7B's
 * 256,000 × 3072 on wasm's 4 GiB heap) fails here, before any upload, instead of corrupting the
 * backend's heap half-way through.
 */
export function checkWeightsFit(c: LlamaConfig, plan: ExecutionPlan, availableBytes: number, name = 'model'): void {
  const weights = predictMemory(c, { batchSize: 1, promptLength: 1 }, plan).weightsBytes;
  if (weights <= availableBytes) return;
  const globals = F32 * globalParams(c);
  throw new OutOfMemoryError(
    `${name}: the ${plan} plan keeps ${formatGB(weights)} of weights on the device (the embedding and the LM head alone ${formatGB(globals)}: ` +
      `two float32 copies of ${c.vocabSize} × ${c.hiddenSize}), more than the ${formatGB(availableBytes)} it can hold; ` +
      `${plan === 'resident' ? 'try the streamed plan, or ' : ''}use a backend with more memory (webgpu, tensorflow-gpu; RSN_BACKEND)`,
  );
}

export function outOfMemory(c: LlamaConfig, w: Workload, availableBytes: number, name = 'model', cause?: unknown): OutOfMemoryError {
  const resident = predictMemory(c, w, 'resident');
  const streamed = predictMemory(c, w, 'streamed');
  const fitR = maxBatchThatFits(c, w, 'resident', availableBytes);
  const fitS = maxBatchThatFits(c, w, 'streamed', availableBytes);
  const advice =
    fitR > 0
      ? `the resident plan fits with batch size ≤ ${fitR}${fitS > fitR ? ` (streamed: ≤ ${fitS})` : ''}`
      : fitS > 0
        ? `use the streamed plan with batch size ≤ ${fitS}`
        : `nothing fits: even one prompt needs ${formatGB(predictMemory(c, { ...w, batchSize: 1 }, 'streamed').peakBytes)} streamed; use a backend with more memory`;
  const err = new OutOfMemoryError(
    `${name}: batch ${w.batchSize} × ${w.promptLength} tokens${w.newTokens ? ` + ${w.newTokens} new` : ''} needs ${formatGB(resident.peakBytes)} resident / ${formatGB(streamed.peakBytes)} streamed, but the device has ${formatGB(availableBytes)}; ${advice}`,
  );
  if (cause !== undefined) (err as Error & { cause?: unknown }).cause = cause;
  return err;
}


/**
 * Memory the backend can give tensors: RSN_DEVICE_MEMORY_GB if set; the wasm heap limit (4 GiB,
 * or less when the host has less) for wasm; free GPU memory from nvidia-smi for tensorflow-gpu;
 * otherwise the host memory this process may still use (a container's cgroup limit included).
 */
export function availableDeviceMemory(backend: string, inUseBytes = 0): number {
  const env = readEnv('deviceMemoryGB');
  if (env !== undefined) {
    const name = envVarName('deviceMemoryGB');
    const gb = parseDecimalNumber(env, name);
    if (gb <= 0) throw new OutOfMemoryError(`${name}=${env}: expected a positive number of GB`);
    return gb * 1e9;
  }
  if (backend === 'wasm') return Math.min(4 * 2 ** 30, availableHostMemory() + inUseBytes);
  // WebGPU does not tell how much memory its device has; on NVIDIA hardware nvidia-smi does (a
  // software adapter uses host memory, the fallback below).
  if (backend === 'tensorflow-gpu' || backend === 'webgpu') {
    try {
      const out = execFileSync('nvidia-smi', ['--query-gpu=memory.free', '--format=csv,noheader,nounits'], { encoding: 'utf8', timeout: 5000 });
      const mib = Number(out.trim().split('\n')[0]);
      if (Number.isFinite(mib)) return mib * 2 ** 20 + inUseBytes;
    } catch {
      // no nvidia-smi: fall through to host memory, the best guess we have
    }
  }
  return availableHostMemory() + inUseBytes;
}
