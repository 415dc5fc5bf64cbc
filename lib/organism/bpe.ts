/**
 * A small BPE trainer that writes a Llama-2-style Hugging Face tokenizer.json: SentencePiece
 * conventions (a "▁" prepended and every space replaced by "▁", no pre-tokenizer), byte
 * fallback (<0x00>…<0xFF> at ids 3–258), <unk>/<s>/</s> at ids 0/1/2, the same normalizer and
 * decoder as Llama-2's file, so `LlamaTokenizer.fromFile` loads it with the code that loads
 * Llama-2's.
 *
 * Training: words are the "▁"-initial pieces of the normalised lines; characters seen at least
 * `minCharCount` times (up to `maxChars`) are base symbols, rarer ones are left to byte fallback
 * and never merged; then the most frequent adjacent pair is merged until the vocabulary has
 * `vocabSize` entries. Ties are broken by the pair's text, so training is deterministic.
 */

export const SPACE = '\u2581';
export const SPECIALS = ['<unk>', '<s>', '</s>'] as const;

export interface BpeOptions {
  vocabSize: number;
  minCharCount?: number;
  maxChars?: number;
}

export interface BpeModel {
  /** Pieces by id (specials, bytes, characters, merges). */
  vocab: string[];
  merges: [string, string][];
}

export function normalize(text: string): string {
  return SPACE + text.replaceAll(' ', SPACE);
}

function byteToken(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
}

/** Split a normalised string into "▁"-initial words. */
function words(normalized: string): string[] {
  return normalized.match(new RegExp(`${SPACE}[^${SPACE}]*`, 'gu')) ?? [];
}

export function trainBpe(texts: readonly string[], opts: BpeOptions): BpeModel {
  const minCharCount = opts.minCharCount ?? 2;
  const maxChars = opts.maxChars ?? 400;
  const wordFreq = new Map<string, number>();
  for (const t of texts) for (const w of words(normalize(t))) wordFreq.set(w, (wordFreq.get(w) ?? 0) + 1);
  const charFreq = new Map<string, number>();
  for (const [w, f] of wordFreq) for (const ch of w) charFreq.set(ch, (charFreq.get(ch) ?? 0) + f);
  const chars = [...charFreq.entries()]
    .filter(([ch, f]) => f >= minCharCount || ch === SPACE)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .slice(0, maxChars)
    .map(([ch]) => ch);
  if (!chars.includes(SPACE)) chars.unshift(SPACE);
  const vocab: string[] = [...SPECIALS];
  for (let b = 0; b < 256; b++) vocab.push(byteToken(b));
  vocab.push(...chars);
  const known = new Set(vocab);
  if (vocab.length > opts.vocabSize) throw new Error(`vocabSize ${opts.vocabSize} is below the ${vocab.length} base symbols`);

  // Each word as a symbol list; a character outside the base set becomes a barrier (null).
  const entries = [...wordFreq.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  const seqs: (string | null)[][] = entries.map(([w]) => [...w].map((ch) => (known.has(ch) ? ch : null)));
  const freqs = entries.map(([, f]) => f);
  const merges: [string, string][] = [];
  while (vocab.length < opts.vocabSize) {
    const counts = new Map<string, number>();
    for (let i = 0; i < seqs.length; i++) {
      const s = seqs[i]!;
      for (let j = 0; j + 1 < s.length; j++) {
        const a = s[j];
        const b = s[j + 1];
        if (a === null || b === null) continue;
        const key = a + '\u0000' + b;
        counts.set(key, (counts.get(key) ?? 0) + freqs[i]!);
      }
    }
    let best: string | null = null;
    let bestCount = 0;
    for (const [k, c] of counts) {
      if (c > bestCount || (c === bestCount && best !== null && k < best)) {
        best = k;
        bestCount = c;
      }
    }
    if (best === null || bestCount < 2) break;
    const [a, b] = best.split('\u0000') as [string, string];
    const merged = a + b;
    merges.push([a, b]);
    if (!known.has(merged)) {
      vocab.push(merged);
      known.add(merged);
    }
    for (const s of seqs) {
      for (let j = 0; j + 1 < s.length; j++) {
        if (s[j] === a && s[j + 1] === b) {
          s.splice(j, 2, merged);
        }
      }
    }
  }
  return { vocab, merges };
}

/** The Hugging Face tokenizer.json document (Llama-2 layout). */
export function tokenizerJson(model: BpeModel): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  model.vocab.forEach((p, i) => (vocab[p] = i));
  const special = (id: number) => ({ id, content: SPECIALS[id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0), special(1), special(2)],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: SPACE },
        { type: 'Replace', pattern: { String: ' ' }, content: SPACE },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: SPACE }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: model.merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}

export function tokenizerConfigJson(maxLength: number): Record<string, unknown> {
  return {
    tokenizer_class: 'LlamaTokenizer',
    add_bos_token: true,
    add_eos_token: false,
    bos_token: '<s>',
    eos_token: '</s>',
    unk_token: '<unk>',
    pad_token: null,
    legacy: true,
    clean_up_tokenization_spaces: false,
    model_max_length: maxLength,
  };
}
