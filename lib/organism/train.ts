/**
 * The organism's training loop: full next-token LM loss over the world corpus, AdamW (weight
 * decay on matrices), no dropout, linear warm-up then constant learning rate, gradient
 * clipping; seeded and deterministic on one backend (data order and initialisation come from
 * mulberry32; the wasm backend is single-threaded). Stops when the facts are known (accuracy on
 * a fixed probe set of P^det prompts stops improving), or at a step / time budget. Writes a
 * checkpoint (weights + AdamW state + step) every few minutes, and resumes from it.
 */
import * as tf from '@tensorflow/tfjs-core';
import { existsSync, readFileSync } from 'node:fs';
import { CheckpointError } from '../errors.ts';
import { mulberry32, shuffled } from '../rng.ts';
import { LlamaModel } from '../model/llama.ts';
import { decodeTensorF32, parseSafetensorsBytes, writeSafetensors, type NamedTensor } from '../safetensors.ts';
import { accuracyOf, gradeAnswers } from '../method/accuracy.ts';
import type { LlamaTokenizer } from '../tokenizer.ts';
import type { LlamaConfig } from '../model/config.ts';
import { AdamW, TrainableLlama, toHfTensors } from './model.ts';

export interface TrainOptions {
  seed: number;
  batchSize: number;
  lr: number;
  warmupSteps: number;
  /** Over the last this many of `maxSteps`, the learning rate falls linearly to 0 (0 = none: constant after warm-up). */
  coolDownSteps: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  clipNorm: number;
  maxSteps: number;
  maxMinutes: number;
  /** Probe accuracy every this many steps (0 = never). */
  evalEvery: number;
  /** Stop when the probe accuracy has not improved by `minDelta` over the last `patience` probes. */
  patience: number;
  minDelta: number;
  /** Do not stop for a plateau before this many steps. */
  minSteps: number;
  checkpointEveryMinutes: number;
  logEvery: number;
}

/**
 * The learning rate of a step (0-based): linear warm-up over `warmupSteps`, constant, then with
 * `coolDownSteps` a linear fall over the last steps before `maxSteps`, reaching lr / coolDownSteps
 * at the last step. A function of the step alone, so a resumed run keeps the schedule.
 */
export function learningRate(step: number, opts: Pick<TrainOptions, 'lr' | 'warmupSteps' | 'coolDownSteps' | 'maxSteps'>): number {
  const warm = step < opts.warmupSteps ? (step + 1) / opts.warmupSteps : 1;
  const left = opts.maxSteps - step;
  const cool = opts.coolDownSteps > 0 && left <= opts.coolDownSteps ? Math.max(0, left) / opts.coolDownSteps : 1;
  return opts.lr * Math.min(warm, cool);
}

export const DEFAULT_TRAIN_OPTIONS: TrainOptions = {
  seed: 0,
  batchSize: 128,
  lr: 6e-3,
  warmupSteps: 150,
  coolDownSteps: 0,
  weightDecay: 0.1,
  beta1: 0.9,
  beta2: 0.95,
  clipNorm: 1,
  maxSteps: 1_000_000,
  maxMinutes: 40,
  evalEvery: 300,
  patience: 3,
  minDelta: 0.01,
  minSteps: 2000,
  checkpointEveryMinutes: 3,
  logEvery: 50,
};

export interface ProbePrompt {
  ids: number[];
  object: string;
  relation: string;
}

export interface TrainLog {
  options: TrainOptions;
  config: LlamaConfig;
  losses: { step: number; loss: number; tokens: number; seconds: number }[];
  probes: { step: number; accuracy: number; perRelation: Record<string, number>; seconds: number }[];
  stoppedBecause: string;
  steps: number;
  seconds: number;
  tokensSeen: number;
}

/** Batches of one epoch: lines shuffled, grouped in pools of 32 batches sorted by length (little padding), pool order kept. */
function epochBatches(lengths: readonly number[], batchSize: number, seed: number, epoch: number): number[][] {
  const rng = mulberry32((seed * 1000003 + epoch * 7919 + 17) >>> 0);
  const order = shuffled(
    lengths.map((_, i) => i),
    rng,
  );
  const pool = batchSize * 32;
  const batches: number[][] = [];
  for (let s = 0; s < order.length; s += pool) {
    const chunk = order.slice(s, s + pool).sort((a, b) => lengths[a]! - lengths[b]! || a - b);
    const local: number[][] = [];
    for (let b = 0; b + batchSize <= chunk.length; b += batchSize) local.push(chunk.slice(b, b + batchSize));
    batches.push(...shuffled(local, rng));
  }
  return batches;
}

/** What training needs to resume: progress, the log so far, the weights and AdamW's moments. */
export interface Checkpoint {
  step: number;
  tokensSeen: number;
  secondsSoFar: number;
  log: TrainLog;
  weights: Map<string, Float32Array>;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

/** Metadata value marking a safetensors file as a training checkpoint of this format. */
const CHECKPOINT_FORMAT = 'rsn-organism-train-checkpoint/1';
/** Tensor name prefixes of the three maps (tensor names are the training-layout parameter names). */
const CHECKPOINT_PREFIX = { weights: 'param/', m: 'adam_m/', v: 'adam_v/' } as const;

/**
 * Write a checkpoint as a safetensors file, atomically: the weights and AdamW moments as 1-D F32
 * tensors `param/<name>`, `adam_m/<name>`, `adam_v/<name>`; step, tokensSeen, secondsSoFar and
 * the log JSON-encoded in "__metadata__" (whose values must be strings).
 */
export function saveCheckpoint(path: string, c: Checkpoint): void {
  const tensors: NamedTensor[] = [];
  for (const key of ['weights', 'm', 'v'] as const) {
    if (c[key].size !== c.weights.size) throw new Error(`checkpoint ${path}: ${key} has ${c[key].size} tensors, weights ${c.weights.size}`);
    for (const [name, w] of c.weights) {
      const data = c[key].get(name);
      if (!data || data.length !== w.length) throw new Error(`checkpoint ${path}: ${key} lacks ${name} or has another length than its weight`);
      tensors.push({ name: CHECKPOINT_PREFIX[key] + name, shape: [data.length], data });
    }
  }
  writeSafetensors(path, tensors, {
    checkpoint: CHECKPOINT_FORMAT,
    step: JSON.stringify(c.step),
    tokensSeen: JSON.stringify(c.tokensSeen),
    secondsSoFar: JSON.stringify(c.secondsSoFar),
    log: JSON.stringify(c.log),
  });
}

/** Read a checkpoint written by `saveCheckpoint`; a truncated or foreign file gives a CheckpointError naming it. */
export function loadCheckpoint(path: string): Checkpoint {
  const bytes = readFileSync(path);
  const header = parseSafetensorsBytes(path, bytes);
  const bad = (what: string): never => {
    throw new CheckpointError(`${path}: not a training checkpoint of this project (${what})`, path);
  };
  const meta = header.metadata ?? {};
  if (meta['checkpoint'] !== CHECKPOINT_FORMAT) bad(`"__metadata__.checkpoint" is ${JSON.stringify(meta['checkpoint'])}, expected ${JSON.stringify(CHECKPOINT_FORMAT)}`);
  const field = (key: string): unknown => {
    const text = meta[key];
    if (typeof text !== 'string') return bad(`"__metadata__.${key}" is missing`);
    try {
      return JSON.parse(text) as unknown;
    } catch (e) {
      return bad(`"__metadata__.${key}" is not JSON (${(e as Error).message})`);
    }
  };
  const count = (key: string): number => {
    const x = field(key);
    return typeof x === 'number' && Number.isFinite(x) && x >= 0 ? x : bad(`"__metadata__.${key}" must be a non-negative number, found ${JSON.stringify(x)}`);
  };
  const step = count('step');
  const tokensSeen = count('tokensSeen');
  const secondsSoFar = count('secondsSoFar');
  const log = field('log');
  if (typeof log !== 'object' || log === null || Array.isArray(log)) bad('"__metadata__.log" must be a JSON object');
  const maps = { weights: new Map<string, Float32Array>(), m: new Map<string, Float32Array>(), v: new Map<string, Float32Array>() };
  for (const e of header.entries) {
    const key = (Object.keys(CHECKPOINT_PREFIX) as (keyof typeof CHECKPOINT_PREFIX)[]).find((k) => e.name.startsWith(CHECKPOINT_PREFIX[k]));
    if (!key) bad(`tensor ${e.name} has none of the prefixes ${Object.values(CHECKPOINT_PREFIX).join(', ')}`);
    maps[key!].set(e.name.slice(CHECKPOINT_PREFIX[key!].length), decodeTensorF32(header, bytes, e));
  }
  for (const key of ['m', 'v'] as const) {
    for (const [name, w] of maps.weights) {
      if (maps[key].get(name)?.length !== w.length) bad(`${CHECKPOINT_PREFIX[key]}${name} is missing or has another length than ${CHECKPOINT_PREFIX.weights}${name}`);
    }
    if (maps[key].size !== maps.weights.size) bad(`${maps[key].size} ${CHECKPOINT_PREFIX[key]} tensors for ${maps.weights.size} parameters`);
  }
  return { step, tokensSeen, secondsSoFar, log: log as TrainLog, ...maps };
}

/** Greedy 2-token accuracy of the current weights on the probe prompts, through the inference model. */
export async function probeAccuracy(config: LlamaConfig, weights: Map<string, Float32Array>, tok: LlamaTokenizer, probe: readonly ProbePrompt[]): Promise<{ accuracy: number; perRelation: Record<string, number> }> {
  const hf = new Map(toHfTensors(config, weights).map((t) => [t.name, t]));
  const model = await LlamaModel.fromArrays(config, (name) => hf.get(name)!, { log: null });
  try {
    const graded = await gradeAnswers(model, tok, probe, { batchSize: 256, quiet: true });
    const perRelation: Record<string, number> = {};
    for (const r of new Set(probe.map((p) => p.relation))) perRelation[r] = accuracyOf(graded.filter((_, i) => probe[i]!.relation === r));
    return { accuracy: accuracyOf(graded), perRelation };
  } finally {
    model.dispose();
  }
}

export interface TrainResult {
  weights: Map<string, Float32Array>;
  log: TrainLog;
}

/**
 * Train on `sequences` (token ids, each BOS … EOS). Resumes from `checkpointPath` when it
 * exists. `print` gets progress lines; `onLog` the JSON log after every probe.
 */
export async function train(
  config: LlamaConfig,
  sequences: readonly number[][],
  tok: LlamaTokenizer,
  probe: readonly ProbePrompt[],
  opts: TrainOptions,
  io: { checkpointPath: string | null; print: (line: string) => void; onLog?: (log: TrainLog) => void },
): Promise<TrainResult> {
  const print = io.print;
  let step = 0;
  let tokensSeen = 0;
  let secondsBefore = 0;
  let log: TrainLog = { options: opts, config, losses: [], probes: [], stoppedBecause: '', steps: 0, seconds: 0, tokensSeen: 0 };
  let init = TrainableLlama.initialValues(config, opts.seed);
  let resumeState: Checkpoint | null = null;
  if (io.checkpointPath && existsSync(io.checkpointPath)) {
    resumeState = loadCheckpoint(io.checkpointPath);
    init = resumeState.weights;
    step = resumeState.step;
    tokensSeen = resumeState.tokensSeen;
    secondsBefore = resumeState.secondsSoFar;
    log = { ...resumeState.log, options: opts };
    print(`[train] resumed from ${io.checkpointPath} at step ${step}`);
  }
  const model = new TrainableLlama(config, init);
  const opt = new AdamW(model, { beta1: opts.beta1, beta2: opts.beta2, eps: 1e-8, weightDecay: opts.weightDecay, clipNorm: opts.clipNorm });
  if (resumeState) opt.load({ step: resumeState.step, m: resumeState.m, v: resumeState.v });
  const vars = [...model.vars.values()];
  const lengths = sequences.map((s) => s.length);
  const perEpoch = Math.floor(sequences.length / opts.batchSize);
  let epochCache: { epoch: number; batches: number[][] } | null = null;
  const batchAt = (s: number) => {
    const epoch = Math.floor(s / perEpoch);
    if (!epochCache || epochCache.epoch !== epoch) epochCache = { epoch, batches: epochBatches(lengths, opts.batchSize, opts.seed, epoch) };
    return epochCache.batches[s % perEpoch]!;
  };
  const t0 = Date.now();
  const elapsed = () => secondsBefore + (Date.now() - t0) / 1000;
  let lastCkpt = Date.now();
  let windowLoss = 0;
  let windowN = 0;
  let windowStart = Date.now();
  let windowTokens = 0;
  let stopped = '';
  const checkpoint = async () => {
    if (!io.checkpointPath) return;
    const st = await opt.state();
    saveCheckpoint(io.checkpointPath, { step, tokensSeen, secondsSoFar: elapsed(), log, weights: await model.snapshot(), m: st.m, v: st.v });
    lastCkpt = Date.now();
  };
  try {
    while (!stopped) {
      if (step >= opts.maxSteps) {
        stopped = `step budget (${opts.maxSteps})`;
        break;
      }
      if (elapsed() / 60 >= opts.maxMinutes) {
        stopped = `time budget (${opts.maxMinutes} min)`;
        break;
      }
      const rows = batchAt(step).map((i) => sequences[i]!);
      const T = Math.max(...rows.map((r) => r.length));
      const B = rows.length;
      const ids = new Int32Array(B * T);
      const mask = new Float32Array(B * (T - 1));
      let realTargets = 0;
      rows.forEach((r, b) => {
        ids.set(r, b * T);
        for (let t = 0; t + 1 < r.length; t++) mask[b * (T - 1) + t] = 1;
        realTargets += r.length - 1;
      });
      const lr = learningRate(step, opts);
      const maskT = tf.tensor2d(mask, [B, T - 1]);
      const { value, grads } = tf.variableGrads(() => model.loss(ids, B, maskT), vars);
      const norm = opt.apply(grads, lr);
      const loss = (await value.data())[0]!;
      tf.dispose([maskT, value, norm, ...Object.values(grads)]);
      if (!Number.isFinite(loss)) throw new Error(`loss is ${loss} at step ${step}`);
      step++;
      tokensSeen += realTargets;
      windowLoss += loss;
      windowN++;
      windowTokens += realTargets;
      if (step % opts.logEvery === 0) {
        const secs = (Date.now() - windowStart) / 1000;
        const sps = windowN / secs;
        const left = Math.min((opts.maxSteps - step) / sps, opts.maxMinutes * 60 - elapsed());
        const avg = windowLoss / windowN;
        log.losses.push({ step, loss: avg, tokens: tokensSeen, seconds: elapsed() });
        print(
          `[train] step ${step} epoch ${(step / perEpoch).toFixed(2)} loss ${avg.toFixed(4)} lr ${lr.toExponential(2)} ` +
            `${sps.toFixed(2)} steps/s ${(windowTokens / secs).toFixed(0)} tok/s elapsed ${(elapsed() / 60).toFixed(1)} min ETA ≤ ${(left / 60).toFixed(1)} min`,
        );
        windowLoss = 0;
        windowN = 0;
        windowTokens = 0;
        windowStart = Date.now();
      }
      if (opts.evalEvery > 0 && step % opts.evalEvery === 0) {
        const p = await probeAccuracy(config, await model.snapshot(), tok, probe);
        log.probes.push({ step, accuracy: p.accuracy, perRelation: p.perRelation, seconds: elapsed() });
        print(`[probe] step ${step} accuracy ${(100 * p.accuracy).toFixed(1)} % ` + Object.entries(p.perRelation).map(([r, a]) => `${r} ${(100 * a).toFixed(0)}`).join(' '));
        const ps = log.probes;
        if (step >= opts.minSteps && ps.length > opts.patience) {
          const recentBest = Math.max(...ps.slice(-opts.patience).map((x) => x.accuracy));
          const before = Math.max(...ps.slice(0, -opts.patience).map((x) => x.accuracy));
          if (recentBest < before + opts.minDelta) stopped = `accuracy plateau (best of last ${opts.patience} probes ${(100 * recentBest).toFixed(1)} % < ${(100 * before).toFixed(1)} % + ${100 * opts.minDelta} pts)`;
        }
        io.onLog?.(log);
      }
      if ((Date.now() - lastCkpt) / 60000 >= opts.checkpointEveryMinutes) await checkpoint();
    }
    log.stoppedBecause = stopped;
    log.steps = step;
    log.seconds = elapsed();
    log.tokensSeen = tokensSeen;
    await checkpoint();
    print(`[train] stopped: ${stopped}; ${step} steps, ${(elapsed() / 60).toFixed(1)} min, ${tokensSeen} tokens`);
    return { weights: await model.snapshot(), log };
  } finally {
    model.dispose();
    opt.dispose();
  }
}
