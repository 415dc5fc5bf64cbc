/**
 * How many worker threads a model's calls get (row-pool.ts): on the CPU backends, the number
 * asked for (LoadOptions.workers, RSN_WORKERS, else the available cores), lowered to what host
 * memory holds, since every worker keeps its own copy of the weights next to this thread's.
 */
import { availableParallelism, freemem } from 'node:os';
import { envVarName, readEnv } from '../env.ts';
import { ConfigError } from '../errors.ts';
import type { LlamaConfig } from './config.ts';
import { formatGB, predictMemory } from './memory-plan.ts';
import type { ExecutionPlan } from './weight-source.ts';

/** Backends that compute on the calling thread's CPU; a GPU backend is one device, shared by all. */
const CPU_BACKENDS = new Set(['wasm', 'cpu']);

/** The batch one worker is planned for: its share of a 64-prompt call of 32 tokens. */
const WORKER_WORKLOAD = { batchSize: 32, promptLength: 32, newTokens: 2 };

/** The workers asked for: `requested`, else RSN_WORKERS, else the available cores. */
export function requestedWorkers(requested?: number, env: NodeJS.ProcessEnv = process.env): number {
  if (requested !== undefined) {
    if (!Number.isInteger(requested) || requested < 1) throw new RangeError(`workers must be a positive integer (1 = no worker threads), got ${requested}`);
    return requested;
  }
  const text = readEnv('workers', env);
  if (text === undefined) return availableParallelism();
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new ConfigError(`${envVarName('workers')}=${JSON.stringify(text)}: expected a positive integer (1 = no worker threads)`, undefined, envVarName('workers'));
  return Number(text);
}

/**
 * Workers for a model on `backend`: 1 on a GPU backend; on wasm/cpu the number asked for, or as
 * many as host memory holds (each a copy of the weights plus one worker's activations).
 */
export function rowPoolSize(
  c: LlamaConfig,
  plan: ExecutionPlan,
  backend: string,
  requested?: number,
  log: ((line: string) => void) | null = null,
  hostFreeBytes = freemem(),
): number {
  const want = requestedWorkers(requested);
  if (want === 1 || !CPU_BACKENDS.has(backend)) return 1;
  const perWorker = predictMemory(c, WORKER_WORKLOAD, plan).peakBytes;
  const fit = Math.floor((0.8 * hostFreeBytes) / perWorker);
  if (fit >= want) return want;
  const n = Math.max(1, fit);
  log?.(`[rsn] workers: ${want} asked for, but host memory (${formatGB(hostFreeBytes)} free) holds ${n} more cop${n === 1 ? 'y' : 'ies'} of the model (${formatGB(perWorker)} each with its activations); using ${n === 1 ? 'this thread only' : `${n} workers`}`);
  return n === 1 ? 1 : n;
}
