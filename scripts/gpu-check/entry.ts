/**
 * The GPU check's program: bundled by scripts/gpu-check/build.ts into `app/check.mjs` of the
 * self-contained bundle and started by its `run.sh` (see scripts/gpu-check/README.md).
 *
 * The parent process runs every part in a child process of its own (TF.js holds one backend per
 * process, and a part that crashes the driver must not take the report with it), collects their
 * JSON and prints ONE JSON object on stdout; progress goes to stderr.
 *   parts: probe (webgpu adapter) → fixture (tiny Llama vs llama2.c's reference, on webgpu) →
 *          organism logits (webgpu and wasm, compared) → bench shape (webgpu, wasm) →
 *          one 7B-shaped layer (webgpu) → the same forwards in PyTorch when python3 has torch.
 * Exit status: 0 every check passed; 1 a check failed or a part broke; 2 no usable adapter.
 *
 * Environment: GPU_CHECK_QUICK=1 (small sizes, for a software adapter), GPU_CHECK_ALLOW_SOFTWARE=1
 * (run on a software adapter), GPU_CHECK_SKIP=torch,layer7b,wasm-bench,organism,fixture,bench,
 * GPU_CHECK_BATCH / GPU_CHECK_TOKENS / GPU_CHECK_NEW_TOKENS / GPU_CHECK_REPS (bench shape),
 * GPU_CHECK_7B_BATCH / GPU_CHECK_7B_TOKENS, GPU_CHECK_TIMEOUT_S (per part, default 900),
 * GPU_CHECK_PYTHON (default python3).
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus, hostname, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { gpuDeviceNodes, initBackend } from '../../lib/backend.ts';
import { parseScriptCommandLine } from '../../lib/cli-args.ts';
import type { Intervention } from '../../lib/model/hooks.ts';
import { LlamaModel } from '../../lib/model/llama.ts';
import { recordSpec } from '../../lib/model/record-spec.ts';
import { BENCH_SHAPE, LAYER_7B_SHAPE, bestTime, forwardFlops, measureModel, randomIds, randomWeights, shapeConfig, shapeLabel, type ShapeSpec } from '../../bench/shared.ts';

// ---------------------------------------------------------------------------------------------
// Inside the bundle, lib/backend.ts's `import(pkg)` of the optional packages (a specifier in a
// variable, which esbuild cannot follow) resolves to small shim packages in app/node_modules,
// which call back here; these literal imports are bundled (lazily: they run only when called).
(globalThis as { __rsnGpuCheckImport?: (name: string) => Promise<unknown> }).__rsnGpuCheckImport = (name: string) => {
  // Optional packages: the type check must not need them (as in lib/backend.ts).
  // @ts-ignore -- bundled by esbuild from node_modules at build time
  if (name === 'webgpu') return import('webgpu');
  // @ts-ignore -- bundled by esbuild from node_modules at build time
  if (name === '@tensorflow/tfjs-backend-webgpu') return import('@tensorflow/tfjs-backend-webgpu');
  return Promise.reject(new Error(`the GPU check bundle does not contain ${name}`));
};

const ROOT = process.env['GPU_CHECK_ROOT'] ? resolve(process.env['GPU_CHECK_ROOT']) : resolve(dirname(fileURLToPath(import.meta.url)), '..');
const QUICK = process.env['GPU_CHECK_QUICK'] === '1';
const SKIP = new Set((process.env['GPU_CHECK_SKIP'] ?? '').split(',').map((s) => s.trim()).filter(Boolean));
const TOL = 1e-3; // test/fixtures/README.md: what a correct float32 implementation meets

function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, found ${JSON.stringify(v)}`);
  return n;
}

const log = (line: string) => process.stderr.write(`[gpu-check] ${line}\n`);
const errText = (e: unknown) => (e instanceof Error ? `${e.name}: ${e.message}` : String(e));

function maxAbsDiff(expected: ArrayLike<number>, actual: ArrayLike<number>, offset = 0): number {
  let m = 0;
  for (let i = 0; i < expected.length; i++) m = Math.max(m, Math.abs(expected[i]! - actual[offset + i]!));
  return Number.isNaN(m) ? Infinity : m;
}

function argmax(a: ArrayLike<number>, from = 0, n = a.length): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (a[from + i]! > a[from + best]!) best = i;
  return best;
}

// ---------------------------------------------------------------------------------------------
// Parts (each runs in its own child process)

interface ReferenceCase {
  input_ids: number[];
  logits: number[][];
  mlp_outputs: Record<string, number[][]>;
  greedy_4: number[];
}
interface Reference {
  cases: ReferenceCase[];
  deactivation: {
    zeroed_units: Record<string, { gate: number[]; up: number[]; down: number[] }>;
    cases: { input_ids: number[]; logits: number[][]; greedy_4: number[] }[];
  };
}

async function partProbe(backend: string) {
  const choice = await initBackend({ backend, log: null });
  return { backend: choice.name, tfBackend: choice.tfBackend, adapter: choice.adapter ?? null };
}

/** The tiny Llama fixture against llama2.c's outputs (test/fixtures/reference.json), as test/model.test.ts does. */
async function partFixture(backend: string) {
  const ref = JSON.parse(readFileSync(join(ROOT, 'fixtures/reference.json'), 'utf8')) as Reference;
  const out: Record<string, unknown> = {};
  const failures: string[] = [];
  for (const dtype of ['float32', 'float16'] as const) {
    const model = await LlamaModel.load(join(ROOT, `models/tiny-llama-bf16-${dtype}`), { backend, log: null });
    const V = model.config.vocabSize;
    let logits = 0;
    let mlp = 0;
    // Every layer's FFN sites, kept whole (the reference holds them per position).
    const record = recordSpec(model.config, (p) => /^blocks\.\d+\.mlp\.(gate|up|down)$/.test(p));
    for (const c of ref.cases) {
      const r = await model.forward([c.input_ids], { logits: 'all', hooks: { record } });
      logits = Math.max(logits, maxAbsDiff(c.logits.flat(), r.logits!.data));
      for (const [key, expected] of Object.entries(c.mlp_outputs)) {
        const [l, s] = key.split('.');
        mlp = Math.max(mlp, maxAbsDiff(expected.flat(), r.records.get(`blocks.${l}.mlp.${s}`)!.data));
      }
    }
    // One padded batch of every case must reproduce each unpadded reference.
    const seqs = ref.cases.map((c) => c.input_ids);
    const padded = await model.forward(seqs, { logits: 'all' });
    let paddedDiff = 0;
    ref.cases.forEach((c, b) => {
      const offset = (b * padded.seqLen + (padded.seqLen - c.input_ids.length)) * V;
      paddedDiff = Math.max(paddedDiff, maxAbsDiff(c.logits.flat(), padded.logits!.data, offset));
    });
    const greedyMismatches: string[] = [];
    for (const c of ref.cases) {
      const cached = (await model.generate([c.input_ids], { maxNewTokens: 4 })).tokens[0]!;
      const plain = (await model.generate([c.input_ids], { maxNewTokens: 4, useCache: false })).tokens[0]!;
      if (cached.join() !== c.greedy_4.join()) greedyMismatches.push(`len ${c.input_ids.length} cached: ${cached} ≠ ${c.greedy_4}`);
      if (plain.join() !== c.greedy_4.join()) greedyMismatches.push(`len ${c.input_ids.length} no cache: ${plain} ≠ ${c.greedy_4}`);
    }
    const batch = (await model.generate(seqs, { maxNewTokens: 4 })).tokens;
    ref.cases.forEach((c, b) => {
      if (batch[b]!.join() !== c.greedy_4.join()) greedyMismatches.push(`padded batch row ${b}: ${batch[b]} ≠ ${c.greedy_4}`);
    });
    const interventions: Intervention[] = [];
    for (const [layer, sites] of Object.entries(ref.deactivation.zeroed_units)) {
      for (const site of ['gate', 'up', 'down'] as const) if (sites[site].length) interventions.push({ point: `blocks.${layer}.mlp.${site}`, op: 'zero', units: sites[site] });
    }
    let deact = 0;
    for (const c of ref.deactivation.cases) {
      const r = await model.forward([c.input_ids], { logits: 'all', hooks: { interventions } });
      deact = Math.max(deact, maxAbsDiff(c.logits.flat(), r.logits!.data));
      const g = (await model.generate([c.input_ids], { maxNewTokens: 4, hooks: { interventions } })).tokens[0]!;
      if (g.join() !== c.greedy_4.join()) greedyMismatches.push(`deactivation len ${c.input_ids.length}: ${g} ≠ ${c.greedy_4}`);
    }
    model.dispose();
    const maxAbsDiffLogits = Math.max(logits, paddedDiff, deact);
    const ok = maxAbsDiffLogits < TOL && mlp < TOL && greedyMismatches.length === 0;
    if (!ok) failures.push(`${dtype}: max |Δlogit| ${maxAbsDiffLogits}, max |Δmlp| ${mlp}, greedy mismatches ${greedyMismatches.length}`);
    out[dtype] = {
      cases: ref.cases.length + ref.deactivation.cases.length,
      maxAbsDiffLogits,
      maxAbsDiffLogitsByCheck: { unpadded: logits, paddedBatch: paddedDiff, deactivation: deact },
      maxAbsDiffMlpOutputs: mlp,
      greedyTokensEqual: greedyMismatches.length === 0,
      greedyMismatches,
      ok,
    };
  }
  return { tolerance: TOL, ...out, ok: failures.length === 0, failures };
}

/** `rsn logits` on the organism: the last position's logits of each prompt, one forward each. */
async function partOrganism(backend: string) {
  const prompts = JSON.parse(readFileSync(join(ROOT, 'fixtures/organism-prompts.json'), 'utf8')) as string[];
  const model = await LlamaModel.load(join(ROOT, 'models/organism'), { backend, log: null });
  const tok = model.tokenizer;
  if (!tok) throw new Error('models/organism has no tokenizer.json');
  const logits: number[][] = [];
  const ids: number[][] = [];
  for (const p of prompts) {
    const seq = tok.encode(p, { addBos: true });
    const r = await model.forward([seq], { logits: 'last' });
    ids.push(seq);
    logits.push(Array.from(r.logits!.data));
  }
  model.dispose();
  return { prompts, ids, logits };
}

interface BenchJob {
  shape: ShapeSpec;
  batch: number;
  tokens: number;
  newTokens: number;
  reps: number;
  /** Also pooled recording and generation (the bench shape); else the forward only. */
  full: boolean;
}

async function partBench(backend: string, job: BenchJob) {
  const choice = await initBackend({ backend, log: null });
  const cfg = shapeConfig(job.shape);
  const label = shapeLabel(job.shape);
  let t0 = performance.now();
  log(`${backend}: ${label}: random weights`);
  const model = await LlamaModel.fromArrays(cfg, randomWeights(cfg, 7), { backend, log: null });
  const loadS = (performance.now() - t0) / 1000;
  const batch = randomIds(job.batch, job.tokens, cfg.vocabSize, 2);
  let result: Record<string, unknown>;
  if (job.full) {
    result = { ...(await measureModel(label, model, batch, job.newTokens, job.reps, { log: (l) => log(`${backend}: ${l}`) })) };
  } else {
    log(`${backend}: ${label}: forward`);
    t0 = performance.now();
    const s = await bestTime(job.reps, () => model.forward(batch, { logits: 'last' }));
    result = {
      model: label,
      batch: job.batch,
      promptTokensPerRow: job.tokens,
      forwardTokensPerS: (job.batch * job.tokens) / s,
      forwardGflopPerS: forwardFlops(cfg, job.batch, job.tokens, job.batch) / s / 1e9,
      forwardS: s,
    };
  }
  model.dispose();
  const params = cfg.numLayers * (4 * cfg.hiddenSize * cfg.hiddenSize + 3 * cfg.hiddenSize * cfg.intermediateSize) + 2 * cfg.vocabSize * cfg.hiddenSize;
  return {
    backend: choice.name,
    ...result,
    reps: job.reps,
    forwardGflop: forwardFlops(cfg, job.batch, job.tokens, job.batch) / 1e9,
    weightsGB: (params * 4) / 1e9,
    loadS,
    numTensorsAfter: tf.memory().numTensors,
  };
}

async function runPart(part: string, backend: string, arg: string | undefined): Promise<unknown> {
  switch (part) {
    case 'probe':
      return partProbe(backend);
    case 'fixture':
      return partFixture(backend);
    case 'organism':
      return partOrganism(backend);
    case 'bench':
      return partBench(backend, JSON.parse(arg ?? '{}') as BenchJob);
    default:
      throw new Error(`unknown part ${part}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Parent

interface ChildResult {
  ok: boolean;
  value?: unknown;
  error?: string;
  seconds: number;
}

const TIMEOUT_S = envInt('GPU_CHECK_TIMEOUT_S', 900);

function child(part: string, backend: string, arg?: unknown): Promise<ChildResult> {
  const t0 = performance.now();
  log(`part ${part} on ${backend}${arg ? ` ${JSON.stringify(arg)}` : ''}`);
  // `--arg=JSON`: a JSON value may start with "-", which the parser would take for an option.
  const args = [...process.execArgv, process.argv[1]!, '--part', part, '--backend', backend, ...(arg === undefined ? [] : [`--arg=${JSON.stringify(arg)}`])];
  return new Promise((resolveResult) => {
    const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, RSN_BACKEND: backend } });
    let stdout = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), TIMEOUT_S * 1000);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      const seconds = (performance.now() - t0) / 1000;
      const last = stdout.trim().split('\n').pop() ?? '';
      let parsed: { value?: unknown; error?: string } | null = null;
      try {
        parsed = JSON.parse(last) as { value?: unknown; error?: string };
      } catch {
        parsed = null;
      }
      if (parsed && parsed.error === undefined && code === 0) return resolveResult({ ok: true, value: parsed.value, seconds });
      const why = parsed?.error ?? (signal ? `killed by ${signal}${signal === 'SIGKILL' ? ` (timeout ${TIMEOUT_S} s, or out of memory)` : ''}` : `exit status ${code} without a result`);
      log(`part ${part} on ${backend} failed: ${why.split('\n')[0]}`);
      resolveResult({ ok: false, error: why, seconds });
    });
  });
}

function execText(cmd: string, args: string[], timeoutMs = 20_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 127) : 0;
      res({ code, stdout: stdout ?? '', stderr: stderr ?? (err ? err.message : '') });
    });
  });
}

async function torchPeer(jobs: { name: string; job: BenchJob }[]): Promise<Record<string, unknown>> {
  const python = process.env['GPU_CHECK_PYTHON'] || 'python3';
  const probe = await execText(python, ['-c', 'import torch; print(torch.__version__)']);
  if (probe.code !== 0) return { available: false, reason: `${python} -c 'import torch' failed: ${(probe.stderr || probe.stdout).trim().split('\n').pop() ?? ''}` };
  const out: Record<string, unknown> = { available: true, torch: probe.stdout.trim() };
  for (const { name, job } of jobs) {
    log(`torch: ${name}`);
    const cfg = shapeConfig(job.shape);
    const spec = { ...job.shape, batch: job.batch, tokens: job.tokens, reps: job.reps, flops: forwardFlops(cfg, job.batch, job.tokens, job.batch) };
    const r = await execText(python, [join(ROOT, 'app/torch_peer.py'), JSON.stringify(spec)], TIMEOUT_S * 1000);
    process.stderr.write(r.stderr);
    const last = r.stdout.trim().split('\n').pop() ?? '';
    try {
      out[name] = JSON.parse(last);
    } catch {
      out[name] = { error: `torch_peer.py exit ${r.code}: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ')}` };
    }
  }
  return out;
}

async function nvidiaSmi(): Promise<unknown> {
  const r = await execText('nvidia-smi', ['--query-gpu=name,driver_version,memory.total,compute_cap', '--format=csv,noheader']);
  return r.code === 0 ? r.stdout.trim().split('\n') : `not available (${(r.stderr || `exit ${r.code}`).trim().split('\n')[0]})`;
}

async function parent(): Promise<{ text: string; code: number }> {
  const started = new Date();
  const report: Record<string, unknown> = {
    check: 'rsn-gpu-check',
    ok: false,
    startedAt: started.toISOString(),
    host: { hostname: hostname(), cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '', memoryGB: +(totalmem() / 1e9).toFixed(1), node: process.version, glibc: process.env['GPU_CHECK_GLIBC'] ?? null },
    vulkan: {
      loader: process.env['GPU_CHECK_VULKAN_LOADER'] ?? 'unknown (not started by run.sh)',
      icds: (process.env['GPU_CHECK_ICDS'] ?? '').split(/\s+/).filter(Boolean),
      icdOverride: process.env['GPU_CHECK_ICD_OVERRIDE'] || null,
      deviceNodes: gpuDeviceNodes(),
    },
    nvidiaSmi: await nvidiaSmi(),
    quick: QUICK,
    skipped: [...SKIP],
  };
  const failures: string[] = [];
  const emit = (code: number) => {
    report['ok'] = code === 0;
    report['failures'] = failures;
    report['seconds'] = +((Date.now() - started.getTime()) / 1000).toFixed(1);
    return { text: JSON.stringify(report, null, 2) + '\n', code };
  };

  // 1. The adapter: without a usable one, nothing else means anything.
  const probe = await child('probe', 'webgpu');
  if (!probe.ok) {
    report['error'] = `no WebGPU adapter: ${probe.error}`;
    failures.push(report['error'] as string);
    return emit(2);
  }
  const probed = probe.value as { adapter: { software?: boolean; vendor?: string; device?: string; description?: string } | null };
  report['adapter'] = probed.adapter;
  if (probed.adapter?.software && process.env['GPU_CHECK_ALLOW_SOFTWARE'] !== '1') {
    report['error'] = `only a software adapter (${[probed.adapter.vendor, probed.adapter.device, probed.adapter.description].filter(Boolean).join(' · ')}): the GPU's Vulkan driver (ICD) is not visible to Dawn; see "vulkan" in this report. GPU_CHECK_ALLOW_SOFTWARE=1 runs anyway.`;
    failures.push(report['error'] as string);
    return emit(2);
  }

  // 2. Correctness on the GPU: the tiny fixture against the independent reference.
  if (!SKIP.has('fixture')) {
    const r = await child('fixture', 'webgpu');
    report['fixture'] = r.ok ? { ...(r.value as object), seconds: r.seconds } : { ok: false, error: r.error, seconds: r.seconds };
    if (!r.ok) failures.push(`fixture: ${r.error}`);
    else if (!(r.value as { ok: boolean }).ok) failures.push(...(r.value as { failures: string[] }).failures.map((f) => `fixture ${f}`));
  }

  // 3. The organism's logits on webgpu against wasm (CPU), same prompts.
  if (!SKIP.has('organism')) {
    const gpu = await child('organism', 'webgpu');
    const cpu = await child('organism', 'wasm');
    if (gpu.ok && cpu.ok) {
      const g = gpu.value as { prompts: string[]; ids: number[][]; logits: number[][] };
      const c = cpu.value as { logits: number[][] };
      let maxDiff = 0;
      let maxAbsLogit = 0;
      let argmaxAgree = 0;
      g.logits.forEach((row, i) => {
        const other = c.logits[i]!;
        maxDiff = Math.max(maxDiff, maxAbsDiff(other, row));
        for (const x of other) maxAbsLogit = Math.max(maxAbsLogit, Math.abs(x));
        if (argmax(row) === argmax(other)) argmaxAgree++;
      });
      const ok = maxDiff < TOL && argmaxAgree === g.logits.length;
      report['organismLogits'] = { prompts: g.prompts.length, example: { prompt: g.prompts[0], ids: g.ids[0] }, maxAbsDiffWebgpuVsWasm: maxDiff, maxAbsLogit, argmaxAgree: `${argmaxAgree}/${g.logits.length}`, tolerance: TOL, ok, seconds: { webgpu: gpu.seconds, wasm: cpu.seconds } };
      if (!ok) failures.push(`organism logits: webgpu vs wasm max |Δ| ${maxDiff}, argmax agree ${argmaxAgree}/${g.logits.length}`);
    } else {
      report['organismLogits'] = { ok: false, webgpu: gpu.ok ? 'ok' : gpu.error, wasm: cpu.ok ? 'ok' : cpu.error };
      failures.push(`organism logits: ${gpu.ok ? '' : `webgpu: ${gpu.error} `}${cpu.ok ? '' : `wasm: ${cpu.error}`}`.trim());
    }
  }

  // 4. Speed: the bench shape (webgpu, and wasm for scale) and one 7B-shaped layer.
  const benchJob: BenchJob = {
    shape: BENCH_SHAPE,
    batch: envInt('GPU_CHECK_BATCH', QUICK ? 8 : 32),
    tokens: envInt('GPU_CHECK_TOKENS', 16),
    newTokens: envInt('GPU_CHECK_NEW_TOKENS', QUICK ? 4 : 8),
    reps: envInt('GPU_CHECK_REPS', QUICK ? 1 : 3),
    full: true,
  };
  const layerShape: ShapeSpec = QUICK ? { hidden: 1024, ffn: 2752, layers: 1, heads: 8, kvHeads: 8, vocab: 32000 } : LAYER_7B_SHAPE;
  const layerJob: BenchJob = {
    shape: layerShape,
    batch: envInt('GPU_CHECK_7B_BATCH', QUICK ? 4 : 32),
    tokens: envInt('GPU_CHECK_7B_TOKENS', 16),
    newTokens: 0,
    reps: envInt('GPU_CHECK_REPS', QUICK ? 1 : 3),
    full: false,
  };
  const speed: Record<string, unknown> = {};
  const record = async (key: string, backend: string, job: BenchJob) => {
    const r = await child('bench', backend, job);
    speed[key] = r.ok ? { ...(r.value as object), seconds: r.seconds } : { error: r.error, seconds: r.seconds };
    if (!r.ok) failures.push(`${key}: ${r.error}`);
    return r.ok ? (r.value as { forwardTokensPerS: number }) : null;
  };
  let gpuBench: { forwardTokensPerS: number } | null = null;
  let gpuLayer: { forwardTokensPerS: number } | null = null;
  if (!SKIP.has('bench')) gpuBench = await record('benchShapeWebgpu', 'webgpu', benchJob);
  if (!SKIP.has('bench') && !SKIP.has('wasm-bench')) await record('benchShapeWasm', 'wasm', benchJob);
  if (!SKIP.has('layer7b')) gpuLayer = await record(QUICK ? 'layer7bShapedWebgpu (quick: shrunk)' : 'layer7bShapedWebgpu', 'webgpu', layerJob);
  report['speed'] = speed;

  // 5. The peer: the same forwards in PyTorch on the same machine.
  if (!SKIP.has('torch')) {
    const jobs = [...(SKIP.has('bench') ? [] : [{ name: 'benchShape', job: benchJob }]), ...(SKIP.has('layer7b') ? [] : [{ name: 'layer7bShaped', job: layerJob }])];
    const t = await torchPeer(jobs);
    const ratio = (ours: { forwardTokensPerS: number } | null, theirs: unknown) => {
      const best = (theirs as { fp32?: { forwardTokensPerS?: number } } | undefined)?.fp32?.forwardTokensPerS;
      return ours && best ? +(ours.forwardTokensPerS / best).toFixed(4) : null;
    };
    if (t['available']) t['webgpuOverTorchFp32'] = { benchShape: ratio(gpuBench, t['benchShape']), layer7bShaped: ratio(gpuLayer, t['layer7bShaped']) };
    report['torch'] = t;
  }
  return emit(failures.length === 0 ? 0 : 1);
}

// ---------------------------------------------------------------------------------------------

/** Only the parent's own children pass arguments (one part each); run.sh passes none. */
const { values: partArgs } = parseScriptCommandLine(process.argv.slice(2), { part: { type: 'string' }, backend: { type: 'string', default: 'webgpu' }, arg: { type: 'string' } });
const part = partArgs.part;
/** Exit once stdout has been flushed: a pipe is written asynchronously, and process.exit would cut a long line. */
function finish(text: string, code: number): void {
  process.stdout.write(text, () => process.exit(code));
}
if (part !== undefined) {
  try {
    const value = await runPart(part, partArgs.backend, partArgs.arg);
    finish(JSON.stringify({ value }) + '\n', 0);
  } catch (e) {
    finish(JSON.stringify({ error: errText(e) }) + '\n', 1);
  }
} else if (!existsSync(join(ROOT, 'models'))) {
  finish(JSON.stringify({ check: 'rsn-gpu-check', ok: false, error: `${ROOT} is not an unpacked bundle (no models/); build one with npx tsx scripts/gpu-check/build.ts` }) + '\n', 2);
} else {
  const { text, code } = await parent();
  finish(text, code);
}
