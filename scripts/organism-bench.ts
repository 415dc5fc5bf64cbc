/**
 * Training-step throughput of the organism's TrainableLlama on this machine (random tokens):
 * `CFG=hidden,ffn,batch,seqLen BK=wasm npx tsx scripts/organism-bench.ts`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../lib/backend.ts';
import { TrainableLlama, AdamW } from '../lib/organism/model.ts';
import { parseLlamaConfig } from '../lib/model/config.ts';
await initBackend({ backend: process.env.BK ?? 'wasm' });
const [H, F, B, T] = (process.env.CFG ?? '64,192,64,24').split(',').map(Number);
const arch = parseLlamaConfig({ hidden_size: H, intermediate_size: F, num_hidden_layers: 4, num_attention_heads: 4, vocab_size: 1024, tie_word_embeddings: true, max_position_embeddings: 128, rms_norm_eps: 1e-5, bos_token_id: 1, eos_token_id: 2, pad_token_id: 0 });
const m = new TrainableLlama(arch, TrainableLlama.initialValues(arch, 1));
const opt = new AdamW(m, { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clipNorm: 1 });
const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 7919) % 1000 + 3);
const mask = tf.ones([B, T - 1]) as tf.Tensor2D;
const vars = [...m.vars.values()];
for (let s = 0; s < 25; s++) {
  if (s === 5) console.time('20 steps');
  const { value, grads } = tf.variableGrads(() => m.loss(ids, B, mask), vars);
  const n = opt.apply(grads, 1e-3);
  const l = await value.data();
  if (s % 5 === 0) console.log(s, l[0], tf.memory().numTensors);
  tf.dispose([value, n, ...Object.values(grads)]);
}
console.timeEnd('20 steps');
