/**
 * What distinguishes the supported checkpoint families inside the one decoder (decoder.ts):
 * the config.json fields each family reads, its defaults where a field is absent (those of the
 * family's transformers config class, so a checkpoint means here what it means there), and
 * the fields this project cannot honour, which are refused with the reason.
 *
 *   llama    SiLU MLP, no biases, untied by default
 *   mistral  llama plus a sliding attention window (sliding_window, default 4096)
 *   qwen2    llama plus biases on q/k/v (always; o has none)
 *   gemma    tanh-GELU MLP, embeddings × √hidden, RMSNorm × (1 + w), tied by default, head_dim 256 by default
 */
import { ConfigError } from '../errors.ts';

export const MODEL_FAMILIES = ['llama', 'mistral', 'qwen2', 'gemma'] as const;
export type ModelFamily = (typeof MODEL_FAMILIES)[number];

/** The MLP's activation: SiLU, or GELU's tanh approximation (PyTorch's gelu(approximate="tanh")). */
export type HiddenAct = 'silu' | 'gelu_tanh';

/** The family-specific part of LlamaConfig (config.ts). */
export interface FamilyTraits {
  family: ModelFamily;
  hiddenAct: HiddenAct;
  /** Token embeddings are multiplied by this before the first layer (Gemma: √hidden as a float32). */
  embedScale: number;
  /** RMSNorm multiplies by (normOffset + w): Gemma stores its norm weights as offsets around 0. */
  normOffset: number;
  /** q_proj, k_proj and v_proj carry biases, added before RoPE (Qwen2). */
  attentionBias: boolean;
  /** A query sees only the last `slidingWindow` positions, itself included (Mistral); null: all. */
  slidingWindow: number | null;
}

/** Defaults that depend on the family but end up in shared LlamaConfig fields. */
export interface FamilyDefaults {
  tieWordEmbeddings: boolean;
  /** null: hidden_size / num_attention_heads. */
  headDim: number | null;
}

type Json = Record<string, unknown>;

const ARCHITECTURES: Record<ModelFamily, string> = {
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  gemma: 'GemmaForCausalLM',
};

export function architectureOf(family: ModelFamily): string {
  return ARCHITECTURES[family];
}

const DISPLAY_NAMES: Record<ModelFamily, string> = { llama: 'Llama', mistral: 'Mistral', qwen2: 'Qwen2', gemma: 'Gemma' };

/** The family's name in messages ("Llama", "Qwen2", …). */
export function familyName(family: ModelFamily): string {
  return DISPLAY_NAMES[family];
}

/** model_type → family; a config without model_type is read as Llama (older hand-written configs). */
export function familyOf(raw: Json, file: string): ModelFamily {
  const t = raw['model_type'] ?? 'llama';
  if (typeof t === 'string' && (MODEL_FAMILIES as readonly string[]).includes(t)) return t as ModelFamily;
  throw new ConfigError(
    `${file}: field "model_type" is ${JSON.stringify(t)}; supported model families: ${MODEL_FAMILIES.map((f) => `"${f}"`).join(', ')}`,
    file,
    'model_type',
  );
}

export function familyDefaults(family: ModelFamily): FamilyDefaults {
  return family === 'gemma' ? { tieWordEmbeddings: true, headDim: 256 } : { tieWordEmbeddings: false, headDim: null };
}

/**
 * Qwen2's tokenizer prepends nothing: its tokenizer_config.json has bos_token null, and the
 * bos_token_id of its config.json (<|endoftext|>) is not put in front of prompts. The other
 * families prepend BOS (Gemma's is id 2, Llama's and Mistral's id 1).
 */
export function addsBosByDefault(family: ModelFamily): boolean {
  return family !== 'qwen2';
}

function refuseTrue(raw: Json, field: string, file: string, family: ModelFamily, what: string): void {
  if (raw[field] === true) {
    throw new ConfigError(`${file}: field "${field}" is true (${what}); not supported for model_type "${family}"`, file, field);
  }
}

function silu(raw: Json, file: string, family: ModelFamily): HiddenAct {
  const act = raw['hidden_act'] ?? 'silu';
  if (act !== 'silu') {
    throw new ConfigError(`${file}: field "hidden_act" is ${JSON.stringify(act)}; a ${family} MLP needs "silu"`, file, 'hidden_act');
  }
  return 'silu';
}

/**
 * Gemma's activation comes from hidden_activation; transformers ignores hidden_act for Gemma
 * (Google's configs say "gelu" there) and uses the tanh GELU when hidden_activation is absent.
 * gelu_new and gelu_pytorch_tanh are the same function.
 */
function gemmaActivation(raw: Json, file: string): HiddenAct {
  const act = raw['hidden_activation'] ?? 'gelu_pytorch_tanh';
  if (act === 'gelu_pytorch_tanh' || act === 'gelu_new') return 'gelu_tanh';
  throw new ConfigError(
    `${file}: field "hidden_activation" is ${JSON.stringify(act)}; a Gemma MLP here supports "gelu_pytorch_tanh" (or "gelu_new", the same tanh GELU)`,
    file,
    'hidden_activation',
  );
}

function mistralWindow(raw: Json, file: string): number | null {
  // MistralConfig's default is 4096; null (Mistral-7B v0.2 and later) turns the window off.
  const w = 'sliding_window' in raw ? raw['sliding_window'] : 4096;
  if (w === null) return null;
  if (typeof w !== 'number' || !Number.isInteger(w) || w <= 0) {
    throw new ConfigError(`${file}: field "sliding_window" must be a positive integer or null, found ${JSON.stringify(w)}`, file, 'sliding_window');
  }
  return w;
}

/** The family-specific fields of a parsed config.json, checked. `hiddenSize` sets Gemma's embedding scale. */
export function familyTraits(raw: Json, family: ModelFamily, hiddenSize: number, file: string): FamilyTraits {
  const plain: FamilyTraits = { family, hiddenAct: 'silu', embedScale: 1, normOffset: 0, attentionBias: false, slidingWindow: null };
  switch (family) {
    case 'llama':
      refuseTrue(raw, 'attention_bias', file, family, 'biases on q/k/v/o');
      refuseTrue(raw, 'mlp_bias', file, family, 'biases on the MLP projections');
      return { ...plain, hiddenAct: silu(raw, file, family) };
    case 'mistral':
      return { ...plain, hiddenAct: silu(raw, file, family), slidingWindow: mistralWindow(raw, file) };
    case 'qwen2':
      // Qwen2 windows only some layers (max_window_layers); released checkpoints leave it off.
      refuseTrue(raw, 'use_sliding_window', file, family, 'a sliding attention window on the layers from max_window_layers on');
      return { ...plain, hiddenAct: silu(raw, file, family), attentionBias: true };
    case 'gemma':
      refuseTrue(raw, 'attention_bias', file, family, 'biases on q/k/v/o');
      // transformers holds √hidden as a tensor of the compute dtype: a float32 here.
      return { ...plain, hiddenAct: gemmaActivation(raw, file), embedScale: Math.fround(Math.sqrt(hiddenSize)), normOffset: 1 };
  }
}

/** The family-specific fields of config.json for these traits (the inverse of familyTraits). */
export function familyConfigJson(t: FamilyTraits): Record<string, unknown> {
  switch (t.family) {
    case 'llama':
      return { attention_bias: false, mlp_bias: false, pretraining_tp: 1 };
    case 'mistral':
      return { sliding_window: t.slidingWindow };
    case 'qwen2':
      return { use_sliding_window: false, sliding_window: null, max_window_layers: 0 };
    case 'gemma':
      return { hidden_activation: 'gelu_pytorch_tanh', attention_bias: false };
  }
}
