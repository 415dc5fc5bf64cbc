import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.ts';
import { architectureOf, familyConfigJson, familyDefaults, familyOf, familyTraits, type FamilyTraits } from './family.ts';

/**
 * The subset of a Hugging Face config.json that the forward pass needs, for every supported
 * family (family.ts: llama, mistral, qwen2, gemma). One type for all: the family-specific
 * fields say what differs (activation, embedding scale, norm offset, q/k/v biases, window).
 */
export interface LlamaConfig extends FamilyTraits {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  /** Per-head width; independent of hiddenSize / numHeads (Gemma-7B: 16 heads × 256 on a 3072 stream). */
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

/**
 * RoPE's base, from either form in the wild: transformers 4.x writes `rope_theta` at the top
 * level, transformers ≥ 5 `rope_parameters: {rope_theta, rope_type}`. Only plain RoPE is
 * supported; scaled variants (linear, dynamic, yarn, llama3) are refused.
 */
function ropeTheta(r: Json, file: string): number {
  const scaling = r['rope_scaling'];
  if (scaling !== undefined && scaling !== null) {
    throw new ConfigError(`${file}: field "rope_scaling" is set (${JSON.stringify(scaling)}); RoPE scaling is not supported`, file, 'rope_scaling');
  }
  const params = r['rope_parameters'];
  if (params === undefined || params === null) return num(r, 'rope_theta', file, 10000);
  if (typeof params !== 'object' || Array.isArray(params)) {
    throw new ConfigError(`${file}: field "rope_parameters" must be an object like {"rope_theta": 10000, "rope_type": "default"}, found ${JSON.stringify(params)}`, file, 'rope_parameters');
  }
  const p = params as Json;
  const type = p['rope_type'] ?? 'default';
  if (type !== 'default') {
    throw new ConfigError(`${file}: field "rope_parameters.rope_type" is ${JSON.stringify(type)}; only "default" RoPE (no scaling) is supported`, file, 'rope_parameters.rope_type');
  }
  const theta = num(p, 'rope_theta', `${file} (rope_parameters)`, 10000);
  if (r['rope_theta'] !== undefined && r['rope_theta'] !== theta) {
    throw new ConfigError(`${file}: "rope_theta" ${JSON.stringify(r['rope_theta'])} and "rope_parameters.rope_theta" ${theta} disagree`, file, 'rope_theta');
  }
  return theta;
}

/** Validate a parsed Hugging Face config.json of a supported family. `file` names the source in error messages. */
export function parseLlamaConfig(raw: unknown, file = 'config.json'): LlamaConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(`${file}: expected a JSON object`, file);
  }
  const r = raw as Json;
  const family = familyOf(r, file);
  const defaults = familyDefaults(family);
  const hiddenSize = int(r, 'hidden_size', file);
  const numHeads = int(r, 'num_attention_heads', file);
  const numKvHeads = int(r, 'num_key_value_heads', file, numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new ConfigError(`${file}: num_attention_heads ${numHeads} is not divisible by num_key_value_heads ${numKvHeads}`, file, 'num_key_value_heads');
  }
  const hasHeadDim = r['head_dim'] !== undefined && r['head_dim'] !== null;
  if (!hasHeadDim && defaults.headDim === null && hiddenSize % numHeads !== 0) {
    throw new ConfigError(`${file}: hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numHeads}, and there is no head_dim`, file, 'num_attention_heads');
  }
  const headDim = hasHeadDim ? int(r, 'head_dim', file) : (defaults.headDim ?? hiddenSize / numHeads);
  if (headDim % 2 !== 0) {
    throw new ConfigError(`${file}: head dimension ${headDim} must be even for RoPE`, file, 'head_dim');
  }
  const tie = r['tie_word_embeddings'] ?? defaults.tieWordEmbeddings;
  if (typeof tie !== 'boolean') {
    throw new ConfigError(`${file}: field "tie_word_embeddings" must be true or false`, file, 'tie_word_embeddings');
  }
  return {
    ...familyTraits(r, family, hiddenSize, file),
    hiddenSize,
    intermediateSize: int(r, 'intermediate_size', file),
    numLayers: int(r, 'num_hidden_layers', file),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: int(r, 'vocab_size', file),
    rmsNormEps: num(r, 'rms_norm_eps', file, 1e-6),
    ropeTheta: ropeTheta(r, file),
    maxPositionEmbeddings: int(r, 'max_position_embeddings', file, 4096),
    tieWordEmbeddings: tie,
    bosTokenId: optionalId(r, 'bos_token_id', file),
    eosTokenId: optionalId(r, 'eos_token_id', file),
    padTokenId: optionalId(r, 'pad_token_id', file),
  };
}

/**
 * The Hugging Face config.json of a checkpoint with this config: the inverse of
 * parseLlamaConfig (the fields it reads, plus the fixed ones transformers expects).
 */
export function hfConfigJson(c: LlamaConfig): Record<string, unknown> {
  return {
    architectures: [architectureOf(c.family)],
    model_type: c.family,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numKvHeads,
    head_dim: c.headDim,
    hidden_act: c.hiddenAct === 'silu' ? 'silu' : 'gelu_pytorch_tanh',
    max_position_embeddings: c.maxPositionEmbeddings,
    initializer_range: 0.02,
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    rope_scaling: null,
    ...familyConfigJson(c),
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

/** Every tensor a Hugging Face checkpoint with this config must contain, with its shape (q/k/v biases after their weights). */
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
    );
    if (c.attentionBias) {
      specs.push(
        { name: `${p}.self_attn.q_proj.bias`, shape: [c.numHeads * c.headDim] },
        { name: `${p}.self_attn.k_proj.bias`, shape: [kv] },
        { name: `${p}.self_attn.v_proj.bias`, shape: [kv] },
      );
    }
    specs.push(
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
