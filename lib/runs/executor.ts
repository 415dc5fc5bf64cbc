/**
 * Where a stage's jobs run. `local` computes them in this process (the pipeline as before);
 * `slurm` writes them to a shared work folder, submits them through deploy/slurm/submit.sh as a
 * job array over shards plus a merge, shows the tasks' progress (pending, running, done,
 * failed, ETA from the tasks done so far), waits, and hands back the merged folder, which the
 * pipeline checks and puts into its stage cache. The same notebook cell runs either way.
 *
 * Each stage has a folder of its own in the work folder, named by what it computes (model,
 * jobs or settings, shard count), so a re-run finds it: merged results are used at once, a
 * submission still queued or running is waited for rather than submitted again, and a
 * resubmission after a failure reruns only the shards that did not finish (`rsn` leaves a
 * finished shard as it is). A task Slurm requeues runs its shard again from the start of the
 * shard (the activation collection from its last checkpoint).
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readSealedJson, seal } from '../data/sealed-json.ts';
import { writeFileAtomic } from '../data/io.ts';
import { ConfigError } from '../errors.ts';
import { formatDuration } from '../progress.ts';
import { ActivationStore } from '../method/activation-store.ts';
import { KNOWN_FILE, KNOWN_SHARD_FILE } from './known-shards.ts';
import { JOB_RESULTS_FILE, JOBS_SHARD_FILE } from './job-shards.ts';
import { cancelJobs, jobTasks, requireSlurm, submitStages, type TaskState } from './slurm.ts';

export const EXECUTORS = ['local', 'slurm'] as const;
export type ExecutorName = (typeof EXECUTORS)[number];

export interface ExecutorSettings {
  name: ExecutorName;
  /** A folder every node sees (the jobs, the shards' results, the merges and logs/ go there). */
  work: string;
  /** Tasks per job array. */
  shards: number;
  partition?: string;
  /** GPUs per task (`--gres=gpu:G`); 0 = none. */
  gpusPerShard?: number;
  /** More sbatch options, split into words ("--time=2:00:00 --mem=40G"). */
  sbatchArgs?: string;
  /** Seconds between two looks at the queue. */
  pollSeconds?: number;
  /** Seconds a task may look ended without its result before it counts as failed (default 90, see ENDED_GRACE_MS). */
  failureGraceSeconds?: number;
  /** The scheduler commands' environment (SLURM_CONF, …); default process.env. */
  env?: NodeJS.ProcessEnv;
}

/** The executor of the notebook parameters `executor`, `executorWork`, `executorShards`, …, checked. */
export function executorSettings(p: { executor: string; executorWork: string; executorShards: number; executorPartition?: string; executorGpus?: number; executorSbatchArgs?: string }, root: string): ExecutorSettings {
  const name = (p.executor || 'local') as ExecutorName;
  if (!EXECUTORS.includes(name)) throw new ConfigError(`parameter executor: "${p.executor}" is not an executor; expected one of ${EXECUTORS.join(', ')}`, undefined, 'executor');
  if (!Number.isInteger(p.executorShards) || p.executorShards < 1) throw new ConfigError(`parameter executorShards: ${p.executorShards} is not a positive integer`, undefined, 'executorShards');
  return {
    name,
    work: resolve(root, p.executorWork || join('.cache', 'work')),
    shards: p.executorShards,
    partition: p.executorPartition || undefined,
    gpusPerShard: p.executorGpus || undefined,
    sbatchArgs: p.executorSbatchArgs || undefined,
  };
}

/** Where stages run, as timings and cost records name it: "local <engine>" or "slurm ×4 (partition p, 1 GPU)". */
export function executorKey(ex: ExecutorSettings | undefined, localEngine: string): string {
  if (!ex || ex.name === 'local') return `local ${localEngine}`;
  const extra = [ex.partition ? `partition ${ex.partition}` : '', ex.gpusPerShard ? `${ex.gpusPerShard} GPU` : ''].filter(Boolean).join(', ');
  return `${ex.name} ×${ex.shards}${extra ? ` (${extra})` : ''}`;
}

/** One submitted stage: a job whose task i is done when `done(i)` (its result is on disk). */
interface WatchedStage {
  stage: string;
  tasks: number;
  done: (task: number) => boolean;
  /** Where task i writes its log (submit.sh's --output pattern). */
  log: (jobId: string, task: number) => string;
}

interface Submission {
  schema: 'rsn-submission/1';
  ids: Record<string, string>;
  submittedAt: string;
}

const SUBMISSION_FILE = 'submitted.json';
/**
 * How long a task may look ended without its result before it counts as failed: a requeued
 * task was seen FAILED for over 15 s under load before Slurm queued it again (its processes get
 * KillWait, 30 s by default, to exit).
 */
const ENDED_GRACE_MS = 90_000;

function schedulerEnv(ex: ExecutorSettings): NodeJS.ProcessEnv {
  // The tasks run the node that runs this, unless the cluster's environment says otherwise.
  return { RSN_JOB_NODE: process.execPath, ...(ex.env ?? process.env) };
}

function submitArgs(ex: ExecutorSettings, dir: string, args: readonly string[]): string[] {
  const out = [...args, '--shards', String(ex.shards), '--work', dir];
  if (ex.partition) out.push('--partition', ex.partition);
  if (ex.gpusPerShard) out.push('--gpus-per-shard', String(ex.gpusPerShard));
  if (ex.sbatchArgs) out.push('--sbatch-args', ex.sbatchArgs);
  return out;
}

function tail(file: string, lines = 12): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Submit `args` (or find the submission already in `dir`) and wait until every stage is done,
 * printing the tasks' counts whenever they change. A task that ends without its result stops
 * the wait with its shard, Slurm's state and the end of its log; the submission's other jobs
 * are cancelled.
 */
async function submitAndWait(ex: ExecutorSettings, dir: string, label: string, args: readonly string[], stages: readonly WatchedStage[], log: (line: string) => void): Promise<Map<string, number>> {
  const env = schedulerEnv(ex);
  const stageDone = (s: WatchedStage) => Array.from({ length: s.tasks }, (_, i) => s.done(i)).every(Boolean);
  // Seconds from the start of the wait until each stage was first seen done.
  const doneAfter = new Map<string, number>();
  const t0 = performance.now();
  if (stages.every(stageDone)) return doneAfter;
  // A stage done before this wait (an earlier submission's) gets no time.
  const doneBefore = new Set(stages.filter(stageDone).map((s) => s.stage));
  requireSlurm(env);
  mkdirSync(dir, { recursive: true });
  const subFile = join(dir, SUBMISSION_FILE);
  let sub: Submission | null = null;
  if (existsSync(subFile)) {
    try {
      const s = readSealedJson(subFile) as unknown as Submission;
      // Waited for again only while some job of it is still queued or running.
      const live = stages.some((st) => {
        const id = s.ids[st.stage];
        const tasks = id ? jobTasks(id, env) : null;
        return tasks !== null && [...tasks.values()].some((t) => t.phase !== 'ended');
      });
      if (live) sub = s;
    } catch {
      sub = null;
    }
  }
  if (sub) log(`[rsn] ${ex.name} ${label}: waiting for the jobs submitted at ${sub.submittedAt} (${Object.entries(sub.ids).map(([k, v]) => `${k} ${v}`).join(', ')})`);
  else {
    const ids = submitStages(submitArgs(ex, dir, args), env);
    sub = { schema: 'rsn-submission/1', ids: Object.fromEntries(ids), submittedAt: new Date().toISOString() };
    writeFileAtomic(subFile, JSON.stringify(seal({ ...sub })));
    log(`[rsn] ${ex.name} ${label}: submitted ${[...ids].map(([k, v]) => `${k} ${v}`).join(', ')} (${ex.shards} shards; work folder ${dir})`);
  }
  const start = Date.parse(sub.submittedAt);
  const total = stages.reduce((a, s) => a + s.tasks, 0);
  let last = '';
  // When a task was first seen ended without its result: a requeued or pre-empted task passes
  // through such states (FAILED, CANCELLED, gone) before it is pending again.
  const endedSince = new Map<string, number>();
  const grace = ex.failureGraceSeconds !== undefined ? ex.failureGraceSeconds * 1000 : ENDED_GRACE_MS;
  for (;;) {
    const counts = { pending: 0, running: 0, done: 0 };
    for (const st of stages) {
      const id = sub.ids[st.stage];
      if (!id) throw new ConfigError(`${subFile}: no job for stage ${st.stage}`, subFile, 'executor');
      // The queue first, then the files: a task seen ended has written its result by then if it ever will.
      const tasks = jobTasks(id, env);
      for (let i = 0; i < st.tasks; i++) {
        const t: TaskState = tasks?.get(i) ?? { phase: 'ended', state: tasks ? 'UNKNOWN' : 'GONE' };
        const task = `${st.stage} ${i}`;
        if (t.phase !== 'ended' || st.done(i)) endedSince.delete(task);
        else if (!endedSince.has(task)) endedSince.set(task, Date.now());
        const ended = endedSince.get(task);
        if (st.done(i)) counts.done++;
        else if (t.phase === 'pending' || (ended !== undefined && Date.now() - ended < grace)) counts.pending++;
        else if (t.phase === 'running') counts.running++;
        else {
          // A stage after a failed one is cancelled by Slurm (afterok); the first failure is the one to name.
          cancelJobs(Object.values(sub.ids), env);
          const file = st.log(id, i);
          throw new ConfigError(`${ex.name} ${label}: ${st.stage} task ${i} (job ${id}${st.tasks > 1 ? `_${i}` : ''}) ended ${t.state} without its result; its log ${file} ends:\n${tail(file)}`, file, 'executor');
        }
      }
    }
    for (const st of stages) if (!doneBefore.has(st.stage) && !doneAfter.has(st.stage) && stageDone(st)) doneAfter.set(st.stage, (performance.now() - t0) / 1000);
    const elapsed = (Date.now() - start) / 1000;
    const eta = counts.done > 0 && counts.done < total ? (elapsed * (total - counts.done)) / counts.done : null;
    const line = `${counts.pending} pending · ${counts.running} running · ${counts.done}/${total} done`;
    if (line !== last) {
      log(`[rsn] ${ex.name} ${label}: ${line} · ${formatDuration(elapsed)} elapsed${eta !== null ? ` · ETA ${formatDuration(eta)}` : ''}`);
      last = line;
    }
    if (counts.done === total) return doneAfter;
    await new Promise((r) => setTimeout(r, (ex.pollSeconds ?? 2) * 1000));
  }
}

/** The work folder's part for one model: stages of different models never share a folder. */
function modelFolder(ex: ExecutorSettings, model: { name: string; sha256: string }): string {
  return join(ex.work, `${model.name}-${model.sha256.slice(0, 12)}`);
}

const arrayLog = (dir: string, name: string) => (id: string, i: number) => join(dir, 'logs', `${name}-${id}_${i}.out`);
const singleLog = (dir: string, name: string) => (id: string) => join(dir, 'logs', `${name}-${id}.out`);

/**
 * Run a jobs file's jobs on the cluster (`rsn evaluate` over `ex.shards` tasks, then `rsn merge`)
 * and return the folder of the merged results (job-results.json). `writeJobs(file)` writes the
 * jobs file when the stage folder has none yet.
 */
export async function runJobsOnCluster(
  ex: ExecutorSettings,
  p: { modelDir: string; model: { name: string; sha256: string }; digest: string; kind: string; label: string; writeJobs: (file: string) => Promise<unknown>; log: (line: string) => void },
): Promise<string> {
  const dir = jobsStageDir(ex, p.model, p.kind, p.digest);
  const results = join(dir, 'job-results');
  const jobsFile = join(dir, 'jobs.json');
  if (!existsSync(join(results, JOB_RESULTS_FILE))) {
    mkdirSync(dir, { recursive: true });
    if (!existsSync(jobsFile)) await p.writeJobs(jobsFile);
  }
  const stages: WatchedStage[] = [
    { stage: 'evaluate', tasks: ex.shards, done: (i) => existsSync(join(dir, `jobs-shard-${i}`, JOBS_SHARD_FILE)), log: arrayLog(dir, 'rsn-evaluate') },
    { stage: 'merge-jobs', tasks: 1, done: () => existsSync(join(results, JOB_RESULTS_FILE)), log: singleLog(dir, 'rsn-merge-jobs') },
  ];
  await submitAndWait(ex, dir, p.label, ['--model', p.modelDir, '--jobs', jobsFile], stages, p.log);
  return results;
}

/** The work folder's stage of a jobs file: its jobs.json, shards, logs/ and merged job-results/. */
export function jobsStageDir(ex: ExecutorSettings, model: { name: string; sha256: string }, kind: string, digest: string): string {
  return join(modelFolder(ex, model), `${kind}-${digest.slice(0, 16)}-x${ex.shards}`);
}

/** True when the stage's merged results are there (a re-run reads them, nothing is submitted). */
export function jobsStageDone(dir: string): boolean {
  return existsSync(join(dir, 'job-results', JOB_RESULTS_FILE));
}

/** The work folder's stage of the filter, collection and ranking for the settings named by `key`. */
export function rankingStageDir(ex: ExecutorSettings, model: { name: string; sha256: string }, key: string): string {
  return join(modelFolder(ex, model), `ranking-${key.slice(0, 16)}-x${ex.shards}`);
}

export function rankingStageDone(dir: string): boolean {
  return existsSync(join(dir, 'ranking', 'ranking.json'));
}

/** Settings of the filter and the collection, as `rsn known` / `rsn collect` take them. */
export interface RankingJobSettings {
  relations: readonly string[];
  seed: number;
  batchSize?: number;
  maxNewTokens?: number;
  includeBos: boolean;
  recordAttention: boolean;
  activationDtype: 'float32' | 'float16';
}

function storeComplete(dir: string): boolean {
  if (!existsSync(join(dir, 'meta.json'))) return false;
  try {
    return ActivationStore.open(dir, { verify: false }).complete;
  } catch {
    return false;
  }
}

/**
 * The known-facts filter, the activation collection and the ranking on the cluster (submit.sh's
 * four chained jobs), for the settings named by `key`; returns the work folder that holds
 * known/, activations/ and ranking/ (the pipeline reads it as a sharded run, checked) and the
 * seconds until the known facts were merged (null when they were there before the wait).
 */
export async function runRankingOnCluster(
  ex: ExecutorSettings,
  p: { modelDir: string; dataDir: string; model: { name: string; sha256: string }; key: string; settings: RankingJobSettings; log: (line: string) => void },
): Promise<{ dir: string; knownSeconds: number | null }> {
  const dir = rankingStageDir(ex, p.model, p.key);
  const s = p.settings;
  const batch = s.batchSize ? ['--batch-size', String(s.batchSize)] : [];
  const knownArgs = ['--seed', String(s.seed), ...batch, ...(s.maxNewTokens ? ['--max-new-tokens', String(s.maxNewTokens)] : [])];
  const collectArgs = [...batch, '--dtype', s.activationDtype, ...(s.includeBos ? [] : ['--no-bos']), ...(s.recordAttention ? ['--attention'] : [])];
  const args = ['--model', p.modelDir, '--data', p.dataDir, '--known-args', knownArgs.join(' '), '--collect-args', collectArgs.join(' ')];
  if (s.relations.length) args.push('--relations', s.relations.join(','));
  const stages: WatchedStage[] = [
    { stage: 'known', tasks: ex.shards, done: (i) => existsSync(join(dir, `known-shard-${i}`, KNOWN_SHARD_FILE)), log: arrayLog(dir, 'rsn-known') },
    { stage: 'merge-known', tasks: 1, done: () => existsSync(join(dir, 'known', KNOWN_FILE)), log: singleLog(dir, 'rsn-merge-known') },
    { stage: 'collect', tasks: ex.shards, done: (i) => storeComplete(join(dir, `activations-shard-${i}`)), log: arrayLog(dir, 'rsn-collect') },
    { stage: 'rank', tasks: 1, done: () => existsSync(join(dir, 'ranking', 'ranking.json')), log: singleLog(dir, 'rsn-rank') },
  ];
  const doneAfter = await submitAndWait(ex, dir, 'known facts and ranking', args, stages, p.log);
  // How long the filter and its merge took: the known facts' share of the chain's time.
  return { dir, knownSeconds: doneAfter.get('merge-known') ?? null };
}
