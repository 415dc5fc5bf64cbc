/**
 * Where the forward's time goes on one thread: TF.js's kernel profile of one forward at the bench
 * shape (random Llama h512, 8 layers, 32 × 16 tokens, logits 'last'), summed per kernel, against
 * the call's wall time (the rest is JavaScript between kernels). Prints one JSON object.
 *   npx tsx bench/profile.bench.ts            (RSN_BACKEND picks the backend; default as the lab's)
 */
import * as tf from '@tensorflow/tfjs-core';
import { LlamaModel } from '../lib/model/llama.ts';
import { BENCH_SHAPE, bestTime, randomIds, randomWeights, shapeConfig } from './shared.ts';

const cfg = shapeConfig(BENCH_SHAPE);
const model = await LlamaModel.fromArrays(cfg, randomWeights(cfg, 7), { log: null });
const batch = randomIds(32, 16, cfg.vocabSize, 2);
const call = () => model.forward(batch, { logits: 'last' });
const wallMs = (await bestTime(3, call)) * 1000;
// tf.profile wants a tensor container back; the forward's result is host arrays.
const info = await tf.profile(async () => {
  await call();
  return [];
});
const perKernel = new Map<string, { calls: number; ms: number }>();
for (const k of info.kernels) {
  const e = perKernel.get(k.name) ?? { calls: 0, ms: 0 };
  e.calls++;
  e.ms += typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
  perKernel.set(k.name, e);
}
const kernelMs = [...perKernel.values()].reduce((a, e) => a + e.ms, 0);
const kernels = [...perKernel.entries()]
  .sort((a, b) => b[1].ms - a[1].ms)
  .map(([name, e]) => ({ name, calls: e.calls, ms: Number(e.ms.toFixed(2)), share: Number((e.ms / kernelMs).toFixed(4)) }));
model.dispose();
process.stdout.write(JSON.stringify({ bench: 'forward-profile', backend: tf.getBackend(), shape: BENCH_SHAPE, batch: [32, 16], wallMs, kernelMs, kernelCalls: info.kernels.length, kernels }, null, 2) + '\n');
