/**
 * Hugging Face `tokenizer.json` loading through @huggingface/tokenizers (pure JS, the library
 * transformers.js uses). With Llama-2's tokenizer.json it reproduces SentencePiece ids; the one
 * known difference is literal "<s>" in text, which Hugging Face (and so we) read as the BOS token.
 */
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from './errors.ts';

export interface EncodeOptions {
  /**
   * Prepend the BOS token. Default: the tokenizer's own rule (`addsBos`), as
   * `tokenizer.encode(text)` does in transformers: Llama-2 and Gemma prepend it, Qwen2 does not.
   */
  addBos?: boolean;
}

/** What a model directory knows about BOS besides tokenizer_config.json (from config.json and the family). */
export interface BosDefaults {
  /** config.json's bos_token_id: the BOS when tokenizer_config.json names none. */
  bosTokenId?: number | null;
  /** Whether the family prepends BOS when tokenizer_config.json has no add_bos_token. Default true. */
  addBos?: boolean;
}

export class LlamaTokenizer {
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly vocabSize: number;
  /** Whether encode() prepends BOS unless told otherwise. */
  readonly addsBos: boolean;

  private constructor(
    private readonly inner: HfTokenizer,
    ids: { bos: number | null; eos: number | null; vocabSize: number; addsBos: boolean },
  ) {
    this.bosId = ids.bos;
    this.eosId = ids.eos;
    this.vocabSize = ids.vocabSize;
    this.addsBos = ids.addsBos;
  }

  /**
   * Load `tokenizer.json` (and `tokenizer_config.json` if present) from a model directory, or a
   * tokenizer.json path directly. `bos`: what config.json and the family say about BOS.
   */
  static fromFile(pathOrDir: string, bos: BosDefaults = {}): LlamaTokenizer {
    const jsonPath = pathOrDir.endsWith('.json') ? pathOrDir : join(pathOrDir, 'tokenizer.json');
    const dir = pathOrDir.endsWith('.json') ? join(jsonPath, '..') : pathOrDir;
    const tokenizerJson = readJson(jsonPath);
    const configPath = join(dir, 'tokenizer_config.json');
    const config = existsSync(configPath) ? readJson(configPath) : {};
    return LlamaTokenizer.fromJson(tokenizerJson, config, jsonPath, bos);
  }

  /**
   * BOS: tokenizer_config.json's bos_token (null there means none, as in Qwen2's); without the
   * field, "<s>" if the vocabulary has it, else config.json's bos_token_id. Whether encode()
   * prepends it: tokenizer_config.json's add_bos_token, else the family's rule.
   */
  static fromJson(tokenizerJson: unknown, config: unknown = {}, source = 'tokenizer.json', bosDefaults: BosDefaults = {}): LlamaTokenizer {
    if (typeof tokenizerJson !== 'object' || tokenizerJson === null) {
      throw new ConfigError(`${source}: expected a JSON object`, source);
    }
    const model = (tokenizerJson as { model?: { vocab?: unknown } }).model;
    if (!model || typeof model.vocab !== 'object' || model.vocab === null) {
      throw new ConfigError(`${source}: field "model.vocab" missing; not a Hugging Face tokenizer.json`, source, 'model.vocab');
    }
    let inner: HfTokenizer;
    try {
      inner = new HfTokenizer(tokenizerJson, (config ?? {}) as object);
    } catch (e) {
      throw new ConfigError(`${source}: could not build the tokenizer (${(e as Error).message})`, source);
    }
    const vocab = model.vocab as Record<string, number> | [string, number][];
    let vocabSize = Array.isArray(vocab) ? vocab.length : Object.keys(vocab).length;
    const added = (tokenizerJson as { added_tokens?: { id: number }[] }).added_tokens ?? [];
    for (const t of added) vocabSize = Math.max(vocabSize, t.id + 1);
    const cfg = (config ?? {}) as { bos_token?: unknown; eos_token?: unknown; add_bos_token?: unknown };
    const tokenName = (v: unknown, fallback: string) =>
      typeof v === 'string' ? v : typeof v === 'object' && v !== null && 'content' in v ? String((v as { content: unknown }).content) : fallback;
    let bos: number | null;
    if (cfg.bos_token === null) bos = null;
    else if (cfg.bos_token !== undefined) bos = inner.token_to_id(tokenName(cfg.bos_token, '<s>')) ?? null;
    else bos = inner.token_to_id('<s>') ?? bosDefaults.bosTokenId ?? null;
    const eos = inner.token_to_id(tokenName(cfg.eos_token, '</s>')) ?? null;
    if (cfg.add_bos_token !== undefined && typeof cfg.add_bos_token !== 'boolean') {
      throw new ConfigError(`${source}: tokenizer_config.json field "add_bos_token" must be true or false, found ${JSON.stringify(cfg.add_bos_token)}`, source, 'add_bos_token');
    }
    const addsBos = bos !== null && (cfg.add_bos_token ?? bosDefaults.addBos ?? true);
    return new LlamaTokenizer(inner, { bos, eos, vocabSize, addsBos });
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const addBos = opts.addBos ?? this.addsBos;
    // Special tokens are added by us, not by the post-processor, so a tokenizer.json whose
    // post-processor adds none (or a different one) still behaves like Llama-2's.
    const ids = this.inner.encode(text, { add_special_tokens: false }).ids.map(Number);
    if (addBos) {
      if (this.bosId === null) throw new ConfigError('tokenizer has no BOS token; encode with { addBos: false }');
      return [this.bosId, ...ids];
    }
    return ids;
  }

  /** Decode ids to text; special tokens (BOS/EOS/pad) are skipped unless asked for. */
  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return '';
    return this.inner.decode([...ids], { skip_special_tokens: opts.skipSpecialTokens ?? true, clean_up_tokenization_spaces: false });
  }

  /** The vocabulary piece of each id (e.g. "▁Paris"), for display. */
  pieces(ids: readonly number[]): string[] {
    return ids.map((id) => this.inner.id_to_token(id) ?? `<id ${id}>`);
  }

  tokenToId(token: string): number | undefined {
    return this.inner.token_to_id(token);
  }
}

function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`${path}: cannot read (${(e as Error).message})`, path);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${path}: not valid JSON (${(e as Error).message})`, path);
  }
}
