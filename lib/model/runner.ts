/**
 * What a caller needs of a model to run it: its config, tokenizer and provenance, forward and
 * greedy generation. LlamaModel (one thread) satisfies it, and so does anything that runs the
 * same calls elsewhere and returns the same numbers.
 */
import type { BackendChoice } from '../backend.ts';
import type { LlamaTokenizer } from '../tokenizer.ts';
import type { ActivationCache } from './activation-cache.ts';
import type { LlamaConfig } from './config.ts';
import type { Hooks } from './hooks.ts';

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
  /**
   * Left-pad every row to at least this many tokens: a part of a batch padded as the whole
   * batch is gives the whole batch's numbers bit for bit (a caller that splits rows pads so).
   */
  padTo?: number;
}

export interface ForwardResult {
  batchSize: number;
  /** Padded length T. Row b's real tokens are columns T - lengths[b] … T - 1 (left padding). */
  seqLen: number;
  lengths: number[];
  /** [B, T, V] for 'all', [B, V] for 'last'. */
  logits: { shape: number[]; data: Float32Array } | null;
  /** What hooks.record asked for, by hook point name. */
  records: ActivationCache;
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
  /** As in ForwardOptions: the prompts are padded to at least this many tokens. */
  padTo?: number;
}

export interface GenerateResult {
  /** New token ids per row. */
  tokens: number[][];
}

/** Where a model came from. */
export interface ModelInfo {
  /** The converted directory it was loaded from; null for weights built in memory (fromArrays). */
  dir: string | null;
  storageDtype: string;
  backend: BackendChoice | null;
  /** sha256 over the manifest and the checked digests of every file loaded (weights, config, tokenizer); null for weights built in memory. */
  contentSha256: string | null;
}

/** A short name for messages: the directory, or what an in-memory model is. */
export function modelLabel(info: ModelInfo): string {
  return info.dir ?? 'the in-memory model';
}

export interface ModelRunner {
  readonly config: LlamaConfig;
  readonly tokenizer: LlamaTokenizer | null;
  readonly info: ModelInfo;
  forward(sequences: readonly (readonly number[])[], opts?: ForwardOptions): Promise<ForwardResult>;
  generate(sequences: readonly (readonly number[])[], opts: GenerateOptions): Promise<GenerateResult>;
  dispose(): void;
}
