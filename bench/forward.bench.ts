/**
 * Forward-pass and greedy-generation throughput on the chosen backend. Prints one JSON object.
 *   npm run bench            (RSN_BACKEND=cpu|wasm|... to pick a backend)
 *   npm run bench -- --quick (fewer repetitions, no 7B-shaped dry run)
 *   npm run bench -- --out FILE (also write the JSON to FILE, e.g. docs/data/bench-forward.json)
 * Then `perBackend`: the bench shape (random Llama h512, 8 layers, FFN 1376, vocab 32000,
 * 32 × 16 tokens) on each backend side by side, one child process each (bench/backend-child.ts;
 * TF.js holds one backend per process); webgpu is forced, so it runs on a software adapter too.
 * A backend that does not initialise is listed with its reason.
 *   npm run bench -- --backends=wasm+openblas,webgpu
 *   (default: wasm+openblas, wasm+wasm, webgpu, tensorflow, tensorflow-gpu; `+engine` picks the
 *   wasm backend's matMul, as RSN_MATMUL does)
 *   npm run bench -- --no-per-backend
 * Then `workers`: the bench shape from disk with 1 and N worker threads (lib/exec's ParallelModel, N = the
 * available cores or --workers=N), with the speed-up per workload, and the same forward in
 * PyTorch (bench/torch-peer.py, best of a run before and one after) in RSN_PYTHON (default: the
 * python3 on PATH); the result names that interpreter, and why the peer is missing when it is.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { backendKey } from '../lib/backend.ts';
import { envVarName, readEnv } from '../lib/env.ts';
import { writeFileAtomic } from '../lib/data/io.ts';
import { MEASUREMENT_SCHEMA, startMeasurement } from '../lib/measurement.ts';
import { parseScriptCommandLine } from '../lib/cli-args.ts';
import { ParallelModel } from '../lib/exec/parallel-model.ts';
import { LlamaModel } from '../lib/model/llama.ts';
import type { ModelRunner } from '../lib/model/runner.ts';
import { expectedTensors, hfConfigJson } from '../lib/model/config.ts';
import { writeSafetensors } from '../lib/safetensors.ts';
import { BENCH_SHAPE, measureModel, randomIds, randomWeights, shapeConfig, type Measured } from './shared.ts';
import { convertCheckpoint } from '../weights-converter/convert.ts';

const { values: args } = parseScriptCommandLine(process.argv.slice(2), { quick: { type: 'boolean', default: false }, backends: { type: 'string' }, 'no-per-backend': { type: 'boolean', default: false }, workers: { type: 'string' }, out: { type: 'string' } });
const measurement = startMeasurement();
const quick = args.quick;
const reps = quick ? 1 : 3;
// Per-backend block: `--backends=wasm,webgpu` picks which (default: all of PER_BACKEND);
// `--no-per-backend` skips it.
// `wasm+openblas` / `wasm+wasm`: the wasm backend with the OpenBLAS matMul or TF.js's own.
const PER_BACKEND = ['wasm+openblas', 'wasm+wasm', 'webgpu', 'tensorflow', 'tensorflow-gpu'] as const;
const perBackendNames = args['no-per-backend'] ? [] : args.backends ? args.backends.split(',').filter(Boolean) : [...PER_BACKEND];

function measure(label: string, model: ModelRunner, batch: number[][], newTokens: number) {
  return measureModel(label, model, batch, newTokens, reps, { noCache: true });
}

type TorchPeer = { available?: boolean; forwardTokensPerS?: number; reason?: string; python: string; pythonVersion?: string };

/** The same forward in PyTorch on this machine (bench/torch-peer.py in RSN_PYTHON, else python3), or why not. */
function runTorchPeer(): TorchPeer {
  const python = readEnv('benchPython') ?? 'python3';
  const r = spawnSync(python, [new URL('./torch-peer.py', import.meta.url).pathname, '--reps', quick ? '3' : '5'], { encoding: 'utf8', timeout: 10 * 60_000 });
  const last = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  try {
    return { python, ...(JSON.parse(last) as Omit<TorchPeer, 'python'>) };
  } catch {
    const why = r.error ? `${python} did not run (${r.error.message}); set ${envVarName('benchPython')} to a python3 with PyTorch` : `bench/torch-peer.py failed: ${(r.stderr ?? '').trim().split('\n').pop()}`;
    return { available: false, python, reason: why };
  }
}

/**
 * The lab's N-worker forward as a multiple of PyTorch's best of `runs` (one before and one after
 * the lab's own measurement, so a slow phase of a shared machine does not favour the lab).
 */
function pytorchPeer(labTokensPerS: number, runs: TorchPeer[]): Record<string, unknown> {
  const ok = runs.filter((p) => p.available && p.forwardTokensPerS);
  if (ok.length === 0) return { pytorch: runs[0] };
  const best = ok.reduce((a, b) => (b.forwardTokensPerS! > a.forwardTokensPerS! ? b : a));
  return { pytorch: { ...best, runsTokensPerS: ok.map((p) => p.forwardTokensPerS) }, forwardVsPytorch: labTokensPerS / best.forwardTokensPerS! };
}

const results: unknown[] = [];
const work = mkdtempSync(join(tmpdir(), 'rsn-bench-'));
let backend = '';
let workers: unknown = null;
try {
  const fixture = join(work, 'tiny');
  await convertCheckpoint({ inputDir: new URL('../test/fixtures/tiny-llama-bf16', import.meta.url).pathname, outputDir: fixture, dtype: 'float32' });
  const tiny = await LlamaModel.load(fixture, { log: null });
  backend = tiny.info.backend ? backendKey(tiny.info.backend) : tf.getBackend();
  results.push(await measure('fixture tiny-llama (h64, 3 layers, FFN 172)', tiny, randomIds(32, 16, tiny.config.vocabSize, 1), 8));
  tiny.dispose();

  const cfg = shapeConfig(BENCH_SHAPE);
  const big = await LlamaModel.fromArrays(cfg, randomWeights(cfg, 7), { log: null });
  results.push(await measure('random llama (h512, 8 layers, FFN 1376, vocab 32000)', big, randomIds(32, 16, cfg.vocabSize, 2), 8));
  big.dispose();

  // The same shape from disk (worker threads load it themselves), with 1 and N workers.
  const n = args.workers ? Number(args.workers) : availableParallelism();
  const hf = join(work, 'bench-hf');
  const converted = join(work, 'bench-model');
  mkdirSync(hf, { recursive: true });
  writeFileSync(join(hf, 'config.json'), JSON.stringify({ ...hfConfigJson(cfg), architectures: ['LlamaForCausalLM'], model_type: 'llama' }));
  const read = randomWeights(cfg, 7);
  writeSafetensors(join(hf, 'model.safetensors'), expectedTensors(cfg).map((t) => ({ name: t.name, ...read(t.name) })));
  await convertCheckpoint({ inputDir: hf, outputDir: converted, dtype: 'float32' });
  const torchBefore = runTorchPeer();
  const perWorkers: (Measured & { workers: number })[] = [];
  for (const w of [1, n]) {
    const m = await ParallelModel.load(converted, { log: null, workers: w });
    const batch = randomIds(32, 16, cfg.vocabSize, 2);
    // Starts the pool (and the workers' model loads) outside the timing: a full batch has parts for every worker.
    await m.forward(batch, { logits: 'last' });
    // Two threads on a shared machine vary more than one: best of more repetitions.
    const workerReps = quick ? 3 : 5;
    perWorkers.push({ workers: m.workers, ...(await measureModel(`random llama (h512, 8 layers) from disk, ${m.workers} worker(s)`, m, batch, 8, workerReps, { noCache: true })) });
    m.dispose();
  }
  const [one, many] = [perWorkers[0]!, perWorkers[1]!];
  const ratio = (k: keyof Measured) => Number(many[k]) / Number(one[k]);
  workers = {
    workers: n,
    results: perWorkers,
    speedup: {
      forward: ratio('forwardTokensPerS'),
      pooledRecording: ratio('pooledFfnRecordingPromptsPerS'),
      generation: ratio('generateTokensPerS'),
      answers: ratio('answersPromptsPerS'),
      generationNoCache: ratio('generateNoCacheTokensPerS'),
    },
    ...pytorchPeer(many.forwardTokensPerS, torchBefore.available ? [torchBefore, runTorchPeer()] : [torchBefore]),
  };
} finally {
  rmSync(work, { recursive: true, force: true });
}
// The 7B-shaped dry run: streamed pooled recording and the converter's peak RSS.
// Skipped with --quick: it writes and converts a 1.3 GB checkpoint (≈ 2 minutes here).
let dryRun7b: unknown = 'skipped (--quick)';
if (!quick) {
  const out = execFileSync(process.execPath, ['--import', 'tsx', new URL('../scripts/dry-run-7b.ts', import.meta.url).pathname], { encoding: 'utf8', maxBuffer: 1 << 24, stdio: ['ignore', 'pipe', 'inherit'] });
  dryRun7b = JSON.parse(out);
}
const numTensorsAfter = tf.memory().numTensors;

/** One child per backend, one after the other (they would compete for the same cores). */
function runChild(name: string): Promise<Record<string, unknown>> {
  const args = ['--import', 'tsx', new URL('./backend-child.ts', import.meta.url).pathname, name, ...(quick ? ['--quick'] : [])];
  const env = { ...process.env };
  delete env['RSN_BACKEND'];
  const engine = name.split('+')[1];
  if (engine) env['RSN_MATMUL'] = engine;
  return new Promise((resolve) => {
    const child = execFile(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 24, env, timeout: 30 * 60_000 }, (err, stdout) => {
      const last = stdout.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last) as Record<string, unknown>);
      } catch {
        resolve({ backend: name, available: false, reason: `the child process failed (${err ? err.message.split('\n')[0] : 'no JSON on stdout'})` });
      }
    });
    child.stderr?.pipe(process.stderr);
  });
}
const perBackend: Record<string, unknown> = {};
for (const name of perBackendNames) {
  process.stderr.write(`[bench] per-backend: ${name}\n`);
  const { backend: _b, ...rest } = await runChild(name);
  perBackend[name] = rest;
}
const report = JSON.stringify({ schema: MEASUREMENT_SCHEMA, bench: 'forward', quick, context: measurement.finish(), backend, reps, results, workers, dryRun7b, numTensorsAfter, perBackend }, null, 2) + '\n';
process.stdout.write(report);
// The result file docs/benchmarks.md's tables are rendered from (scripts/docs-tables.ts).
if (args.out) writeFileAtomic(args.out, report);
