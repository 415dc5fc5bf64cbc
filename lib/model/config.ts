import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.ts';

/** The subset of a Hugging Face `LlamaForCausalLM` config.json that the forward pass needs. */
export interface LlamaConfig {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  bosTokenId: number | null;
  eosTokenId: number | null;
  padTokenId: number | null;
}

type Json = Record<string, unknown>;

function int(raw: Json, field: string, file: string, fallback?: number): number {
  const v = raw[field] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
    throw new ConfigError(`${file}: field "${field}" must be a positive integer, found ${JSON.stringify(v)}`, file, field);
  }
  return v;
}

function num(raw: Json, field: string, file: string, fallback: number): number {
  const v = raw[field] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new ConfigError(`${file}: field "${field}" must be a positive number, found ${JSON.stringify(v)}`, file, field);
  }
  return v;
}

function optionalId(raw: Json, field: string, file: string): number | null {
  let v = raw[field];
  if (Array.isArray(v)) v = v[0]; // some configs list several eos ids; the first is the canonical one
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
    throw new ConfigError(`${file}: field "${field}" must be a token id (non-negative integer) or null, found ${JSON.stringify(v)}`, file, field);
  }
  return v;
}

/** Validate a parsed Hugging Face Llama config. `file` names the source in error messages. */
export function parseLlamaConfig(raw: unknown, file = 'config.json'): LlamaConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(`${file}: expected a JSON object`, file);
  }
  const r = raw as Json;
  const modelType = r['model_type'];
  if (modelType !== undefined && modelType !== 'llama') {
    throw new ConfigError(`${file}: field "model_type" is ${JSON.stringify(modelType)}; only "llama" is supported`, file, 'model_type');
  }
  const act = r['hidden_act'] ?? 'silu';
  if (act !== 'silu') {
    throw new ConfigError(`${file}: field "hidden_act" is ${JSON.stringify(act)}; the Llama MLP needs "silu"`, file, 'hidden_act');
  }
  const scaling = r['rope_scaling'];
  if (scaling !== undefined && scaling !== null) {
    throw new ConfigError(`${file}: field "rope_scaling" is set (${JSON.stringify(scaling)}); RoPE scaling is not supported`, file, 'rope_scaling');
  }
  const hiddenSize = int(r, 'hidden_size', file);
  const numHeads = int(r, 'num_attention_heads', file);
  const numKvHeads = int(r, 'num_key_value_heads', file, numHeads);
  if (hiddenSize % numHeads !== 0) {
    throw new ConfigError(`${file}: hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numHeads}`, file, 'num_attention_heads');
  }
  if (numHeads % numKvHeads !== 0) {
    throw new ConfigError(`${file}: num_attention_heads ${numHeads} is not divisible by num_key_value_heads ${numKvHeads}`, file, 'num_key_value_heads');
  }
  const headDim = int(r, 'head_dim', file, hiddenSize / numHeads);
  if (headDim * numHeads !== hiddenSize) {
    throw new ConfigError(`${file}: head_dim ${headDim} × heads ${numHeads} ≠ hidden_size ${hiddenSize}; not supported`, file, 'head_dim');
  }
  if (headDim % 2 !== 0) {
    throw new ConfigError(`${file}: head dimension ${headDim} must be even for RoPE`, file, 'head_dim');
  }
  const tie = r['tie_word_embeddings'] ?? false;
  if (typeof tie !== 'boolean') {
    throw new ConfigError(`${file}: field "tie_word_embeddings" must be true or false`, file, 'tie_word_embeddings');
  }
  return {
    hiddenSize,
    intermediateSize: int(r, 'intermediate_size', file),
    numLayers: int(r, 'num_hidden_layers', file),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: int(r, 'vocab_size', file),
    rmsNormEps: num(r, 'rms_norm_eps', file, 1e-6),
    ropeTheta: num(r, 'rope_theta', file, 10000),
    maxPositionEmbeddings: int(r, 'max_position_embeddings', file, 4096),
    tieWordEmbeddings: tie,
    bosTokenId: optionalId(r, 'bos_token_id', file),
    eosTokenId: optionalId(r, 'eos_token_id', file),
    padTokenId: optionalId(r, 'pad_token_id', file),
  };
}

/**
 * The Hugging Face config.json of a LlamaForCausalLM with this config: the inverse of
 * parseLlamaConfig (the fields it reads, plus the fixed ones transformers expects).
 */
export function hfConfigJson(c: LlamaConfig): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numKvHeads,
    head_dim: c.headDim,
    hidden_act: 'silu',
    max_position_embeddings: c.maxPositionEmbeddings,
    initializer_range: 0.02,
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    rope_scaling: null,
    attention_bias: false,
    mlp_bias: false,
    pretraining_tp: 1,
    tie_word_embeddings: c.tieWordEmbeddings,
    vocab_size: c.vocabSize,
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenId,
    pad_token_id: c.padTokenId,
    torch_dtype: 'float32',
    use_cache: true,
  };
}

/** Number of parameters (the embedding counted once when tied). */
export function parameterCount(c: LlamaConfig): number {
  return expectedTensors(c).reduce((s, t) => s + t.shape.reduce((x, y) => x * y, 1), 0);
}

export function readLlamaConfig(path: string): LlamaConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`${path}: cannot read config (${(e as Error).message})`, path);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${path}: not valid JSON (${(e as Error).message})`, path);
  }
  return parseLlamaConfig(raw, path);
}

/**
 * Refuses a call whose positions would run past `max_position_embeddings`: RoPE would go on
 * extrapolating to positions the model never saw (its output is meaningless there), and the
 * attention cost grows with the square of the length, so an overlong prompt is slow as well as
 * wrong. `source` names where the limit comes from (the config.json path) in the message.
 */
export function checkPositionLimit(c: LlamaConfig, promptLength: number, maxNewTokens: number, source = 'config.json'): void {
  const total = promptLength + maxNewTokens;
  if (total <= c.maxPositionEmbeddings) return;
  const what = maxNewTokens > 0 ? `prompt length ${promptLength} + max new tokens ${maxNewTokens} = ${total}` : `prompt length ${promptLength}`;
  throw new ConfigError(
    `${what} exceeds the model's position limit max_position_embeddings = ${c.maxPositionEmbeddings} (${source}); shorten the prompt or ask for fewer new tokens`,
    source,
    'max_position_embeddings',
  );
}

export interface TensorSpec {
  name: string;
  shape: number[];
}

/** Every tensor a Hugging Face Llama checkpoint with this config must contain, with its shape. */
export function expectedTensors(c: LlamaConfig): TensorSpec[] {
  const h = c.hiddenSize;
  const kv = c.numKvHeads * c.headDim;
  const specs: TensorSpec[] = [{ name: 'model.embed_tokens.weight', shape: [c.vocabSize, h] }];
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}`;
    specs.push(
      { name: `${p}.input_layernorm.weight`, shape: [h] },
      { name: `${p}.self_attn.q_proj.weight`, shape: [c.numHeads * c.headDim, h] },
      { name: `${p}.self_attn.k_proj.weight`, shape: [kv, h] },
      { name: `${p}.self_attn.v_proj.weight`, shape: [kv, h] },
      { name: `${p}.self_attn.o_proj.weight`, shape: [h, c.numHeads * c.headDim] },
      { name: `${p}.post_attention_layernorm.weight`, shape: [h] },
      { name: `${p}.mlp.gate_proj.weight`, shape: [c.intermediateSize, h] },
      { name: `${p}.mlp.up_proj.weight`, shape: [c.intermediateSize, h] },
      { name: `${p}.mlp.down_proj.weight`, shape: [h, c.intermediateSize] },
    );
  }
  specs.push({ name: 'model.norm.weight', shape: [h] });
  if (!c.tieWordEmbeddings) specs.push({ name: 'lm_head.weight', shape: [c.vocabSize, h] });
  return specs;
}

/**
 * Tensors a checkpoint may carry that hold no weights we need (HF's cached RoPE frequencies in
 * older checkpoints). The converter skips them rather than calling them unexpected.
 */
export function isIgnorableTensor(name: string): boolean {
  return /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/.test(name);
}
