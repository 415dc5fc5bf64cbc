/**
 * What the lab asks of a Slurm cluster: submit a stage through deploy/slurm/submit.sh (the same
 * script a user runs by hand) and read the state of each task of a job array with squeue. Both
 * talk to whichever cluster the environment names (SLURM_CONF, or the node's own configuration).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../errors.ts';

/** The lab checkout: submit.sh runs `bin/rsn.js` from it on the nodes, so it must be on a shared file system. */
export const LAB_DIR = fileURLToPath(new URL('../..', import.meta.url));
export const SUBMIT_SCRIPT = join(LAB_DIR, 'deploy', 'slurm', 'submit.sh');

/** A task as the lab sees it: waiting for a node, computing, or over (with Slurm's word for how). */
export type TaskPhase = 'pending' | 'running' | 'ended';
export interface TaskState {
  phase: TaskPhase;
  /** Slurm's state name (PENDING, RUNNING, COMPLETED, FAILED, TIMEOUT, …). */
  state: string;
}

const PENDING = new Set(['PENDING', 'CONFIGURING', 'REQUEUED', 'REQUEUE_FED', 'REQUEUE_HOLD', 'RESV_DEL_HOLD', 'SUSPENDED', 'PREEMPTED', 'RESIZING', 'SIGNALING', 'STAGE_OUT']);
const RUNNING = new Set(['RUNNING', 'COMPLETING']);

export function taskPhase(state: string): TaskPhase {
  if (PENDING.has(state)) return 'pending';
  if (RUNNING.has(state)) return 'running';
  return 'ended';
}

/** The Slurm commands on PATH, or a ConfigError saying what is missing and how to get a cluster. */
export function requireSlurm(env: NodeJS.ProcessEnv = process.env): void {
  for (const cmd of ['sbatch', 'squeue', 'scancel']) {
    if (spawnSync('sh', ['-c', `command -v ${cmd}`], { env }).status !== 0) {
      throw new ConfigError(`executor "slurm": ${cmd} is not on PATH; run on a Slurm login node, or start a test cluster with deploy/slurm/local-cluster.sh up (then export the SLURM_CONF it prints)`, undefined, 'executor');
    }
  }
}

/**
 * Run submit.sh with `args` and return the job id of each stage it printed ("known 12",
 * "merge-known 13", …). Its own error message is passed on.
 */
export function submitStages(args: readonly string[], env: NodeJS.ProcessEnv): Map<string, string> {
  if (!existsSync(SUBMIT_SCRIPT)) throw new ConfigError(`${SUBMIT_SCRIPT}: missing from the lab checkout`, SUBMIT_SCRIPT, 'executor');
  const r = spawnSync('bash', [SUBMIT_SCRIPT, ...args], { env, encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new ConfigError(`deploy/slurm/submit.sh ${args.join(' ')} failed (exit ${r.status ?? r.signal}): ${(r.stderr || r.stdout || String(r.error ?? '')).trim()}`, undefined, 'executor');
  const ids = new Map<string, string>();
  for (const line of r.stdout.split('\n')) {
    const m = /^([a-z-]+) (\d+)$/.exec(line.trim());
    if (m) ids.set(m[1]!, m[2]!);
  }
  if (ids.size === 0) throw new ConfigError(`deploy/slurm/submit.sh printed no job ids: ${r.stdout.trim()}`, undefined, 'executor');
  return ids;
}

/**
 * The state of every task of a job (array tasks by index; a plain job as task 0), or null when
 * Slurm no longer knows the job (it ended longer ago than the cluster's MinJobAge).
 */
export function jobTasks(jobId: string, env: NodeJS.ProcessEnv): Map<number, TaskState> | null {
  let out: string;
  try {
    out = execFileSync('squeue', ['-h', '-r', '-t', 'all', '-j', jobId, '-o', '%K|%T'], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
  } catch (e) {
    const stderr = String((e as { stderr?: unknown }).stderr ?? '');
    if (/Invalid job id/i.test(stderr)) return null;
    throw new ConfigError(`squeue -j ${jobId} failed: ${stderr.trim() || (e as Error).message}`, undefined, 'executor');
  }
  const tasks = new Map<number, TaskState>();
  for (const line of out.split('\n')) {
    const [task, state] = line.trim().split('|');
    if (!task || !state) continue;
    // A plain job prints "N/A" as its array index.
    const index = /^\d+$/.test(task) ? Number(task) : 0;
    const name = state.replace(/[^A-Z_].*$/, '');
    // A requeued task is listed twice for a while: its ended attempt and its queued retry. The retry counts.
    const seen = tasks.get(index);
    if (seen && seen.phase !== 'ended' && taskPhase(name) === 'ended') continue;
    tasks.set(index, { phase: taskPhase(name), state: name });
  }
  return tasks.size ? tasks : null;
}

/** Cancel jobs (best effort: a job that already ended is no error). */
export function cancelJobs(ids: readonly string[], env: NodeJS.ProcessEnv): void {
  if (ids.length) spawnSync('scancel', [...ids], { env, stdio: 'ignore', timeout: 60_000 });
}
