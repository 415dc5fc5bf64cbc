/**
 * Pieces shared by the forward benchmark (bench/forward.bench.ts, bench/backend-child.ts) and
 * the GPU check bundle (scripts/gpu-check/): seeded random weights and token ids, the bench
 * shapes, best-of-N timing and the FLOP count of a forward pass.
 */
import { expectedTensors, parseLlamaConfig, type LlamaConfig } from '../lib/model/config.ts';
import type { RecordSpec } from '../lib/model/hooks.ts';
import { recordSpec } from '../lib/model/record-spec.ts';
import type { ModelRunner } from '../lib/model/runner.ts';
import { mulberry32 } from '../lib/rng.ts';

/** Uniform(-0.02, 0.02) weights, RMSNorm weights 1; HF names and layouts. */
export function randomWeights(c: LlamaConfig, seed: number) {
  const r = mulberry32(seed);
  const shapes = new Map(expectedTensors(c).map((s) => [s.name, s.shape]));
  return (name: string) => {
    const shape = shapes.get(name)!;
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (name.endsWith('norm.weight')) data.fill(1);
    else for (let i = 0; i < n; i++) data[i] = (r.next() - 0.5) * 0.04;
    return { data, shape };
  };
}

/** B rows of T tokens: BOS then uniform ids in [2, vocab). */
export function randomIds(B: number, T: number, vocab: number, seed: number): number[][] {
  const r = mulberry32(seed);
  return Array.from({ length: B }, () => [1, ...Array.from({ length: T - 1 }, () => 2 + Math.floor(r.next() * (vocab - 2)))]);
}

export interface ShapeSpec {
  hidden: number;
  ffn: number;
  layers: number;
  heads: number;
  kvHeads: number;
  vocab: number;
}

/** The bench shape: a random Llama, hidden 512, 8 layers, FFN 1376, vocab 32000 (batch 32 × 16 tokens). */
export const BENCH_SHAPE: ShapeSpec = { hidden: 512, ffn: 1376, layers: 8, heads: 8, kvHeads: 8, vocab: 32000 };
/** One layer of Llama-2-7B: hidden 4096, FFN 11008, 32 heads, vocab 32000. */
export const LAYER_7B_SHAPE: ShapeSpec = { hidden: 4096, ffn: 11008, layers: 1, heads: 32, kvHeads: 32, vocab: 32000 };

export function shapeConfig(s: ShapeSpec): LlamaConfig {
  return parseLlamaConfig({
    hidden_size: s.hidden, intermediate_size: s.ffn, num_hidden_layers: s.layers, num_attention_heads: s.heads, num_key_value_heads: s.kvHeads,
    vocab_size: s.vocab, rms_norm_eps: 1e-5, rope_theta: 10000, max_position_embeddings: 512, bos_token_id: 1, eos_token_id: 2,
  });
}

export function shapeLabel(s: ShapeSpec): string {
  return `random llama (h${s.hidden}, ${s.layers} layer${s.layers === 1 ? '' : 's'}, FFN ${s.ffn}, ${s.heads} heads, vocab ${s.vocab})`;
}

/**
 * Multiply-adds × 2 of one forward pass over B rows of T tokens: the projections
 * (q, k, v, o, gate, up, down), attention as computed (the full T × T score matrix and its
 * product with V, masked or not), and the LM head on `logitRows` positions (B for
 * logits 'last', B·T for 'all', 0 for 'none'). Norms, RoPE, softmax and SiLU are left out.
 */
export function forwardFlops(c: LlamaConfig, B: number, T: number, logitRows: number): number {
  const h = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const perTokenPerLayer = 2 * (h * q + 2 * h * kv + q * h + 3 * h * c.intermediateSize);
  const attnPerRowPerLayer = 2 * 2 * T * T * q;
  return c.numLayers * (B * T * perTokenPerLayer + B * attnPerRowPerLayer) + 2 * logitRows * h * c.vocabSize;
}

/** Best wall time in seconds of `reps` runs after one warm-up run (kernels compile on first use). */
export async function bestTime(reps: number, f: () => Promise<unknown>): Promise<number> {
  await f();
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await f();
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  return best;
}

/** Token means of every layer's gate, up and down: what the activation collection records. */
export function ffnRecordSpecs(c: LlamaConfig): RecordSpec[] {
  return recordSpec(c, (point) => /\.mlp\.(gate|up|down)$/.test(point), 'token-mean');
}

export interface Measured {
  model: string;
  batch: number;
  promptTokensPerRow: number;
  forwardTokensPerS: number;
  forwardGflopPerS: number;
  pooledFfnRecordingPromptsPerS: number;
  generateNewTokens: number;
  generateTokensPerS: number;
  generateNoCacheTokensPerS?: number;
  /** Greedy answers of the paper's length (2 new tokens, KV cache): prompts answered per second. */
  answersPromptsPerS: number;
}

/**
 * Forward (logits 'last'), pooled FFN recording (token means of every gate/up/down), greedy
 * generation of `newTokens`, and greedy answers of the paper's length (2 new tokens: one prefill,
 * one cached step, which is what the known-fact and ablation experiments run).
 */
export async function measureModel(
  label: string,
  model: ModelRunner,
  batch: number[][],
  newTokens: number,
  reps: number,
  opts: { noCache?: boolean; log?: (line: string) => void } = {},
): Promise<Measured> {
  const c = model.config;
  const log = opts.log ?? (() => {});
  const promptTokens = batch.reduce((a, s) => a + s.length, 0);
  const T = Math.max(...batch.map((s) => s.length));
  log(`${label}: forward`);
  const forwardS = await bestTime(reps, () => model.forward(batch, { logits: 'last' }));
  log(`${label}: pooled recording`);
  const pooledS = await bestTime(reps, () => model.forward(batch, { logits: 'none', hooks: { record: ffnRecordSpecs(c) } }));
  log(`${label}: generation`);
  const genS = await bestTime(reps, () => model.generate(batch, { maxNewTokens: newTokens }));
  log(`${label}: answers (2 new tokens)`);
  const answersS = await bestTime(reps, () => model.generate(batch, { maxNewTokens: 2 }));
  const out: Measured = {
    model: label,
    batch: batch.length,
    promptTokensPerRow: T,
    forwardTokensPerS: promptTokens / forwardS,
    forwardGflopPerS: forwardFlops(c, batch.length, T, batch.length) / forwardS / 1e9,
    pooledFfnRecordingPromptsPerS: batch.length / pooledS,
    generateNewTokens: newTokens,
    generateTokensPerS: (batch.length * newTokens) / genS,
    answersPromptsPerS: batch.length / answersS,
  };
  if (opts.noCache) {
    log(`${label}: generation without KV cache`);
    const genNoCacheS = await bestTime(reps, () => model.generate(batch, { maxNewTokens: newTokens, useCache: false }));
    out.generateNoCacheTokensPerS = (batch.length * newTokens) / genNoCacheS;
  }
  return out;
}
