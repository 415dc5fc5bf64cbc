/**
 * The one worker-count policy of every pool (model calls and the AP engine): the number asked
 * for (the `workers` option, else RSN_WORKERS, else the available cores), refused above a hard
 * cap, and lowered to what the host memory (cgroup-aware) holds, at `perWorkerBytes` a worker.
 */
import { availableParallelism } from 'node:os';
import { envVarName, readEnv } from '../env.ts';
import { ConfigError } from '../errors.ts';
import { formatGB } from '../model/memory-plan.ts';
import { availableHostMemory } from '../host-memory.ts';

/** More threads than this many per core only add memory and context switches. */
export const MAX_WORKERS_PER_CORE = 4;

export function maxWorkers(cores = availableParallelism()): number {
  return cores * MAX_WORKERS_PER_CORE;
}

/**
 * The workers asked for: `requested` (the `workers` option), else RSN_WORKERS, else the
 * available cores. Refuses a non-integer, a count below 1 or one above maxWorkers().
 */
export function requestedWorkers(requested?: number, env: NodeJS.ProcessEnv = process.env, cores = availableParallelism()): number {
  const cap = maxWorkers(cores);
  if (requested !== undefined) {
    if (!Number.isInteger(requested) || requested < 1) throw new RangeError(`workers must be a positive integer (1 = no worker threads), got ${requested}`);
    if (requested > cap) throw new RangeError(`workers: ${requested} asked for, but at most ${cap} are allowed (${MAX_WORKERS_PER_CORE} per core, ${cores} cores)`);
    return requested;
  }
  const text = readEnv('workers', env);
  if (text === undefined) return cores;
  const name = envVarName('workers');
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new ConfigError(`${name}=${JSON.stringify(text)}: expected a positive integer (1 = no worker threads)`, undefined, name);
  if (Number(text) > cap) throw new ConfigError(`${name}=${text}: at most ${cap} workers are allowed (${MAX_WORKERS_PER_CORE} per core, ${cores} cores)`, undefined, name);
  return Number(text);
}

export interface WorkerCountOptions {
  /** The `workers` option; undefined: RSN_WORKERS, else the available cores. */
  requested?: number;
  /** Host memory one worker needs (its own copy of what it computes on, plus its working set). */
  perWorkerBytes: number;
  /** Said when memory lowers the count; null: silent. */
  log?: ((line: string) => void) | null;
  env?: NodeJS.ProcessEnv;
  /** Free host memory (default: availableHostMemory()). */
  hostFreeBytes?: number;
  cores?: number;
}

/** Worker threads to start: as asked, or as many as 80 % of the free host memory holds (at least 1). */
export function workerCount(opts: WorkerCountOptions): number {
  const want = requestedWorkers(opts.requested, opts.env, opts.cores);
  if (want === 1) return 1;
  const free = opts.hostFreeBytes ?? availableHostMemory();
  const fit = Math.max(1, Math.floor((0.8 * free) / Math.max(1, opts.perWorkerBytes)));
  if (fit >= want) return want;
  opts.log?.(`[rsn] workers: ${want} asked for, but host memory (${formatGB(free)} free) holds ${fit} cop${fit === 1 ? 'y' : 'ies'} (${formatGB(opts.perWorkerBytes)} each); using ${fit === 1 ? 'one thread' : `${fit} workers`}`);
  return fit;
}
