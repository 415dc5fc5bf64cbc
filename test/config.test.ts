/**
 * One config type: LlamaConfig, read from and written to Hugging Face config.json. The writer
 * must give back the very file the organism was trained with, and the parameter count must
 * match the tensors in its safetensors file (read here from the header bytes).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hfConfigJson, parameterCount, parseLlamaConfig, readLlamaConfig } from '../lib/model/config.ts';
import { projectRoot } from '../lib/notebook/paths.ts';

const organism = join(projectRoot, 'data', 'organism');

test('hfConfigJson writes back the committed organism config.json, key for key', () => {
  const raw = JSON.parse(readFileSync(join(organism, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(hfConfigJson(readLlamaConfig(join(organism, 'config.json'))), raw);
  assert.equal(JSON.stringify(hfConfigJson(parseLlamaConfig(raw)), null, 2) + '\n', readFileSync(join(organism, 'config.json'), 'utf8'));
});

test('parseLlamaConfig ∘ hfConfigJson is the identity (GQA, untied, odd ids)', () => {
  const c = parseLlamaConfig({ hidden_size: 64, intermediate_size: 172, num_hidden_layers: 3, num_attention_heads: 8, num_key_value_heads: 2, vocab_size: 300, rms_norm_eps: 1e-6, rope_theta: 500000, max_position_embeddings: 77, tie_word_embeddings: false, bos_token_id: 5, eos_token_id: null });
  assert.deepEqual(parseLlamaConfig(hfConfigJson(c)), c);
});

test('parameterCount equals the element count of the organism checkpoint', () => {
  const buf = readFileSync(join(organism, 'model.safetensors'));
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { shape?: number[] }>;
  const elements = Object.entries(header)
    .filter(([k]) => k !== '__metadata__')
    .reduce((s, [, e]) => s + e.shape!.reduce((a, b) => a * b, 1), 0);
  assert.equal(parameterCount(readLlamaConfig(join(organism, 'config.json'))), elements);
});
