/**
 * One backend's numbers for the per-backend block of bench/forward.bench.ts (TF.js holds one
 * backend per process, so the bench runs this once per backend in a child process).
 *   tsx bench/backend-child.ts <backend> [--quick]
 * Prints one JSON object on stdout: {backend, available: true, ...} with the bench shape's
 * numbers, or {backend, available: false, reason} when the backend does not initialise here.
 */
import * as tf from '@tensorflow/tfjs-core';
import { adapterText, initBackend } from '../lib/backend.ts';
import { parseScriptCommandLine } from '../lib/cli-args.ts';
import { LlamaModel } from '../lib/model/llama.ts';
import { BENCH_SHAPE, measureModel, randomIds, randomWeights, shapeConfig, shapeLabel } from './shared.ts';

const { values: args, positionals } = parseScriptCommandLine(process.argv.slice(2), { quick: { type: 'boolean', default: false } }, true);
const name = positionals[0] ?? '';
const quick = args.quick;
const reps = quick ? 1 : 3;
const log = (l: string) => process.stderr.write(`[bench ${name}] ${l}\n`);

/** Print and exit once stdout is flushed (a pipe is written asynchronously; Dawn may keep the loop alive). */
function emit(o: unknown): void {
  process.stdout.write(JSON.stringify(o) + '\n', () => process.exit(0));
}

// `wasm+openblas`: the parent has set RSN_MATMUL from the part after the `+`.
const choice = await initBackend({ backend: name.split('+')[0]!, log: null }).catch((e: unknown) => {
  emit({ backend: name, available: false, reason: e instanceof Error ? e.message : String(e) });
  return new Promise<never>(() => {}); // emit exits once the line is out
});
try {
  const cfg = shapeConfig(BENCH_SHAPE);
  const t0 = performance.now();
  const model = await LlamaModel.fromArrays(cfg, randomWeights(cfg, 7), { log: null });
  const loadS = (performance.now() - t0) / 1000;
  const m = await measureModel(shapeLabel(BENCH_SHAPE), model, randomIds(32, 16, cfg.vocabSize, 2), 8, reps, { log });
  model.dispose();
  emit({
    backend: name,
    available: true,
    tfBackend: choice.tfBackend,
    ...(choice.adapter ? { adapter: adapterText(choice.adapter), software: choice.adapter.software } : {}),
    ...(choice.matMul ? { matMul: choice.matMul.detail } : {}),
    reps,
    loadS,
    ...m,
    numTensorsAfter: tf.memory().numTensors,
  });
} catch (e) {
  emit({ backend: name, available: true, error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
}
