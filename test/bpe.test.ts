/**
 * trainBpe (lib/organism/bpe.ts) on tiny hand-made corpora whose merges were worked out by hand
 * (the derivations are in the comments), and the tokenizer.json it writes, loaded by the same
 * LlamaTokenizer code that loads Llama-2's file.
 *
 * Run: node --import tsx --test test/bpe.test.ts
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SPACE, SPECIALS, tokenizerJson, trainBpe } from '../lib/organism/bpe.ts';
import { LlamaTokenizer } from '../lib/tokenizer.ts';

const _ = SPACE; // "▁"
const BASE = SPECIALS.length + 256; // specials, then <0x00>…<0xFF>

test('trainBpe: base layout (specials, 256 byte pieces), then characters by frequency', () => {
  const m = trainBpe(['ab ab ab', 'abc abc', 'bc'], { vocabSize: BASE + 4 });
  assert.deepEqual(m.vocab.slice(0, 3), ['<unk>', '<s>', '</s>']);
  assert.equal(m.vocab[3], '<0x00>');
  assert.equal(m.vocab[3 + 0x41], '<0x41>');
  assert.equal(m.vocab[3 + 0xff], '<0xFF>');
  // Character counts over the words ▁ab ×3, ▁abc ×2, ▁bc ×1: ▁ 6, b 6, a 5, c 3. Equal counts
  // are ordered by the character ("b" < "▁" = U+2581).
  assert.deepEqual(m.vocab.slice(BASE), ['b', _, 'a', 'c']);
  assert.deepEqual(m.merges, [], 'no room left for merges');
  assert.throws(() => trainBpe(['ab ab ab', 'abc abc', 'bc'], { vocabSize: BASE + 3 }), /vocabSize 262 is below the 263 base symbols/);
});

test('trainBpe: the merges worked out by hand, ties broken by the pair text, stops below count 2', () => {
  // Words ▁ab ×3, ▁abc ×2, ▁bc ×1.
  // Round 1 pair counts: (▁,a) 5, (a,b) 5, (b,c) 3, (▁,b) 1. Tie 5/5: "a b" < "▁ a" → merge a+b.
  // Round 2: [▁,ab]×3, [▁,ab,c]×2, [▁,b,c]×1 → (▁,ab) 5, (ab,c) 2, (▁,b) 1, (b,c) 1 → merge ▁+ab.
  // Round 3: [▁ab]×3, [▁ab,c]×2, [▁,b,c] → (▁ab,c) 2 → merge ▁ab+c.
  // Round 4: only (▁,b) 1 and (b,c) 1 are left: below 2, training stops with room to spare.
  const m = trainBpe(['ab ab ab', 'abc abc', 'bc'], { vocabSize: BASE + 50 });
  assert.deepEqual(m.merges, [['a', 'b'], [_, 'ab'], [_ + 'ab', 'c']]);
  assert.deepEqual(m.vocab.slice(BASE), ['b', _, 'a', 'c', 'ab', _ + 'ab', _ + 'abc']);
  // The vocabulary size bounds the merges: one slot above the base → only the first merge.
  assert.deepEqual(trainBpe(['ab ab ab', 'abc abc', 'bc'], { vocabSize: BASE + 5 }).merges, [['a', 'b']]);
});

test('trainBpe: characters rarer than minCharCount are not symbols and block merges across them', () => {
  // Words ▁ab ×2, ▁aqb ×2; characters ▁ 4, a 4, b 4, q 2.
  // minCharCount 3: q is left to byte fallback and splits ▁aqb into [▁,a] | [b].
  //   Round 1: (▁,a) 4, (a,b) 2 → ▁+a. Round 2: (▁a,b) 2 (only in ▁ab) → ▁a+b. Nothing left.
  const rare = trainBpe(['ab ab', 'aqb aqb'], { vocabSize: BASE + 50, minCharCount: 3 });
  assert.deepEqual(rare.vocab.slice(BASE), ['a', 'b', _, _ + 'a', _ + 'ab']);
  assert.deepEqual(rare.merges, [[_, 'a'], [_ + 'a', 'b']]);
  // minCharCount 2: q is a symbol.
  //   Round 1: (▁,a) 4, (a,b) 2, (a,q) 2, (q,b) 2 → ▁+a.
  //   Round 2: (▁a,b) 2, (▁a,q) 2, (q,b) 2; tie broken by text: "q b" < "▁a b" < "▁a q" → q+b.
  //   Round 3: (▁a,b) 2, (▁a,qb) 2 → "▁a b" < "▁a qb" → ▁a+b. Round 4: (▁a,qb) 2 → ▁a+qb.
  const common = trainBpe(['ab ab', 'aqb aqb'], { vocabSize: BASE + 50, minCharCount: 2 });
  assert.deepEqual(common.vocab.slice(BASE), ['a', 'b', _, 'q', _ + 'a', 'qb', _ + 'ab', _ + 'aqb']);
  assert.deepEqual(common.merges, [[_, 'a'], ['q', 'b'], [_ + 'a', 'b'], [_ + 'a', 'qb']]);
  // maxChars keeps the most frequent characters (▁ always stays).
  assert.deepEqual(trainBpe(['ab ab', 'aqb aqb'], { vocabSize: BASE + 2, maxChars: 1 }).vocab.slice(BASE), [_, 'a']);
});

test('tokenizerJson: the trained pieces tokenize as the merges imply, unknown characters by bytes', () => {
  const m = trainBpe(['ab ab ab', 'abc abc', 'bc'], { vocabSize: BASE + 50 });
  const tok = LlamaTokenizer.fromJson(tokenizerJson(m), { add_bos_token: true });
  const id = (piece: string) => m.vocab.indexOf(piece);
  assert.deepEqual(tok.encode('abc ab'), [1, id(_ + 'abc'), id(_ + 'ab')]);
  assert.deepEqual(tok.encode('bc'), [1, id(_), id('b'), id('c')]);
  // "z" is not a symbol: byte fallback <0x7A> = id 3 + 0x7A.
  assert.deepEqual(tok.encode('abz'), [1, id(_ + 'ab'), 3 + 0x7a]);
  assert.equal(tok.decode(tok.encode('abc ab bc z')), 'abc ab bc z');
});
