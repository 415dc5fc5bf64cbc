import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { LlamaTokenizer } from '../lib/tokenizer.ts';

const dir = new URL('./fixtures/llama2-tokenizer/', import.meta.url).pathname;
interface Case { text: string; ids: number[]; ids_with_bos: number[]; pieces: string[]; note?: string }
const ref = JSON.parse(readFileSync(dir + 'reference_ids.json', 'utf8')) as { bos_id: number; eos_id: number; cases: Case[] };
const tok = LlamaTokenizer.fromFile(dir);
// The literal-"<s>" case: SentencePiece reads the characters, Hugging Face reads the BOS token;
// the fixture's note spells out the Hugging Face ids, which is what we follow.
const hfBehaviourIds = (c: Case): number[] => {
  const m = c.note?.match(/ids_with_bos \[([0-9, ]+)\]/);
  return m ? m[1]!.split(',').map((s) => Number(s.trim())) : c.ids_with_bos;
};

test('special ids match the fixture', () => {
  assert.equal(tok.bosId, ref.bos_id);
  assert.equal(tok.eosId, ref.eos_id);
  assert.equal(tok.vocabSize, 32000);
});

test('ids with and without BOS equal SentencePiece for every reference string', () => {
  let checked = 0;
  for (const c of ref.cases) {
    if (c.note) {
      const want = hfBehaviourIds(c);
      assert.notDeepEqual(want, c.ids_with_bos, 'note case must parse');
      assert.deepEqual(tok.encode(c.text, { addBos: true }), want, c.text);
      assert.deepEqual(tok.encode(c.text, { addBos: false }), want.slice(1), c.text);
      continue;
    }
    assert.deepEqual(tok.encode(c.text, { addBos: false }), c.ids, JSON.stringify(c.text));
    assert.deepEqual(tok.encode(c.text), c.ids_with_bos, JSON.stringify(c.text));
    assert.deepEqual(tok.pieces(c.ids), c.pieces, JSON.stringify(c.text));
    checked++;
  }
  assert.equal(checked, ref.cases.length - 1);
});

test('decode round-trips the reference ids to the text', () => {
  const failures: string[] = [];
  for (const c of ref.cases) {
    if (c.note) continue;
    if (tok.decode(c.ids) !== c.text) failures.push(JSON.stringify([c.text, tok.decode(c.ids)]));
    if (tok.decode(c.ids_with_bos) !== c.text) failures.push('bos:' + JSON.stringify(c.text));
  }
  assert.deepEqual(failures, []);
});
