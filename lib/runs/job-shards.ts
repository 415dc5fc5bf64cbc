/**
 * An experiment's jobs as files, for the masked experiments run over processes or machines:
 * `writeJobsFile` writes a plan's jobs (prompts or sentences, each job's ablation, the neuron
 * space and the run settings); `rsn evaluate --jobs FILE --shard i/n --out DIR` runs whole
 * batches of them, the batches the single run makes, so every answer and score is the same
 * bits; `rsn merge` puts the shards' rows back into the results `pipeline.evaluate` /
 * `pipeline.score` return for those jobs, and `readJobResults` gives them back, checked.
 * Every file is sealed (lib/data/sealed-json.ts) and names the jobs by their content digest.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { backendKey } from '../backend.ts';
import { canonicalJson, writeFileAtomic } from '../data/io.ts';
import { readSealedJson, seal } from '../data/sealed-json.ts';
import { writeThroughStagingSync } from '../data/staging.ts';
import { CheckpointError, ConfigError } from '../errors.ts';
import type { ModelRunner } from '../model/runner.ts';
import { accuracyOf } from '../method/accuracy.ts';
import type { RunOptions } from '../method/generation.ts';
import { modelIdentity, type ModelIdentity } from '../method/identity.ts';
import { jobRunner, jobsDigest, runJobs, runScoreJobs, shardJobRows, tokenIds, type Job, type JobResult, type ScoreJob, type ScoreResult } from '../method/jobs.ts';
import { NeuronSpace } from '../method/neurons.ts';
import { checkShardSet, mergedEngine, shardName, type MergeOptions, type ShardSpec } from '../shard-spec.ts';
import { decodeExact, encodeExact } from './stage-cache.ts';

export const JOBS_SCHEMA = 'rsn-jobs/1';
export const JOBS_SHARD_FILE = 'jobs-shard.json';
export const JOBS_SHARD_SCHEMA = 'rsn-jobs-shard/1';
export const JOB_RESULTS_FILE = 'job-results.json';
export const JOB_RESULTS_SCHEMA = 'rsn-job-results/1';

/** 'generate': greedy answers graded against the object; 'score': sentence perplexities. */
export type JobKind = 'generate' | 'score';

/** Rows per batch when the run settings give none: greedyRows' and scoreRows' defaults. */
const DEFAULT_BATCH = { generate: 64, score: 32 } as const;

export interface JobsFile {
  kind: JobKind;
  /** The neuron space the jobs' ablations index. */
  space: ReturnType<NeuronSpace['describe']>;
  /** What reaches the results besides the jobs: rows per batch, greedy tokens per answer. */
  run: { batchSize: number; maxNewTokens: number };
  /** jobsDigest of the jobs: what every shard and result names them by. */
  digest: string;
  jobs: (Job | ScoreJob)[];
}

/** Write a plan's jobs for `rsn evaluate`; returns the jobs' digest. */
export function writeJobsFile(file: string, kind: JobKind, jobs: readonly (Job | ScoreJob)[], space: NeuronSpace, run: RunOptions = {}): string {
  for (const [i, j] of jobs.entries()) {
    if (kind === 'generate' ? !('prompts' in j) : !('sentences' in j)) throw new ConfigError(`jobs[${i}]: a ${kind} job needs ${kind === 'generate' ? 'prompts' : 'sentences'}`, file, 'jobs');
  }
  const digest = jobsDigest(jobs);
  const body = { schema: JOBS_SCHEMA, kind, space: space.describe(), run: { batchSize: run.batchSize ?? DEFAULT_BATCH[kind], maxNewTokens: run.maxNewTokens ?? 2 }, digest, jobs: encodeExact(jobs) };
  writeFileAtomic(file, JSON.stringify(seal(body)));
  return digest;
}

export function readJobsFile(file: string): JobsFile {
  const f = readSealedJson(file, 'write it with writeJobsFile (pipeline.writeJobs) first');
  if (f['schema'] !== JOBS_SCHEMA) throw new CheckpointError(`${file}: field "schema" is ${JSON.stringify(f['schema'])}, expected "${JOBS_SCHEMA}"`, file);
  if (f['kind'] !== 'generate' && f['kind'] !== 'score') throw new CheckpointError(`${file}: field "kind" must be "generate" or "score"`, file);
  const jobs = decodeExact(f['jobs']) as (Job | ScoreJob)[];
  if (!Array.isArray(jobs)) throw new CheckpointError(`${file}: field "jobs" must be an array`, file);
  if (jobsDigest(jobs) !== f['digest']) throw new CheckpointError(`${file}: its jobs do not match their recorded digest`, file);
  return { kind: f['kind'], space: f['space'] as JobsFile['space'], run: f['run'] as JobsFile['run'], digest: f['digest'] as string, jobs };
}

/** The space the jobs index, checked against the model they run on. */
function spaceFor(f: JobsFile, model: ModelRunner, file: string): NeuronSpace {
  const space = NeuronSpace.fromDescription(f.space);
  const pool = f.space.sites.some((s) => !s.startsWith('mlp.')) ? 'all' : 'ffn';
  const own = NeuronSpace.forModel(model.config, pool).describe();
  if (canonicalJson(own) !== canonicalJson(space.describe())) throw new ConfigError(`${file}: its jobs index the neurons of another model (${canonicalJson(f.space)}), not those of ${model.info.dir ?? 'this model'}`, file, 'jobs');
  return space;
}

/** One shard's rows: per job, the indices of its prompts (or sentences) this shard ran, and their results. */
interface JobsShardFile {
  schema: typeof JOBS_SHARD_SCHEMA;
  kind: JobKind;
  digest: string;
  model: ModelIdentity;
  engine: string;
  shard: ShardSpec;
  /** Each job's key and number of rows, in order (the merge rebuilds the results from these). */
  jobs: { key: Job['key']; rows: number }[];
  rows: number[][];
  /** generate: per job, the decoded answers and whether each is correct; score: per job, the perplexities. */
  outputs: string[][];
  correct: boolean[][];
  perplexity: number[][];
}

/** What must agree between shards of one run, and between a shard and a re-run of it. */
function shardIdentity(s: Pick<JobsShardFile, 'kind' | 'digest' | 'model'>): string {
  return canonicalJson({ kind: s.kind, digest: s.digest, model: s.model.sha256 });
}

function readShard(dir: string): JobsShardFile {
  const file = join(dir, JOBS_SHARD_FILE);
  const s = readSealedJson(file, 'not a jobs shard, or it did not finish') as unknown as JobsShardFile;
  if (s.schema !== JOBS_SHARD_SCHEMA) throw new CheckpointError(`${file}: field "schema" is ${JSON.stringify(s.schema)}, expected "${JOBS_SHARD_SCHEMA}"`, file);
  return s;
}

export function isJobsShardDir(dir: string): boolean {
  return existsSync(join(dir, JOBS_SHARD_FILE));
}

/**
 * Run shard `shard` of a jobs file into `outDir` (jobs-shard.json). A finished shard of the same
 * jobs, model and engine there is left as it is; a file there for anything else is refused.
 */
export async function runJobsShard(model: ModelRunner, jobsFile: string, shard: ShardSpec, outDir: string, opts: { quiet?: boolean; log?: (line: string) => void } = {}): Promise<{ file: string; reused: boolean }> {
  const log = opts.log ?? (() => {});
  const f = readJobsFile(jobsFile);
  const space = spaceFor(f, model, jobsFile);
  const identity = { kind: f.kind, digest: f.digest, model: modelIdentity(model) };
  const engine = backendKey(model.info.backend);
  const file = join(outDir, JOBS_SHARD_FILE);
  if (existsSync(file)) {
    let found: JobsShardFile | null = null;
    try {
      found = readShard(outDir);
    } catch (e) {
      log(`[rsn] evaluate: ${file} is unusable (${(e as Error).message}); running the shard again`);
    }
    if (found) {
      if (shardIdentity(found) !== shardIdentity(identity) || found.engine !== engine || canonicalJson(found.shard) !== canonicalJson(shard)) {
        throw new ConfigError(`${file}: results of other jobs, another model, engine (${found.engine}) or shard are already there; choose another --out`, file, 'out');
      }
      log(`[rsn] evaluate: ${shardName(shard)} is already done (${file}); nothing to do`);
      return { file, reused: true };
    }
  }
  const runner = jobRunner(model, { batchSize: f.run.batchSize, maxNewTokens: f.run.maxNewTokens, quiet: opts.quiet }, space);
  const texts = f.jobs.map((j) => ('prompts' in j ? j.prompts.map((p) => p.text) : j.sentences));
  // Through the runner's cache: runJobs / runScoreJobs below tokenize each text from it, not again.
  const lengths = texts.map((t) => t.map((x) => tokenIds(runner, x).length));
  const rows = shardJobRows(lengths, f.kind === 'generate' ? 'length' : 'input', shard, f.run.batchSize);
  const label = `${f.kind === 'generate' ? 'evaluate' : 'score'} (${shardName(shard)})`;
  const outputs: string[][] = [];
  const correct: boolean[][] = [];
  const perplexity: number[][] = [];
  if (f.kind === 'generate') {
    const mine = (f.jobs as Job[]).map((j, ji) => ({ ...j, prompts: rows[ji]!.map((r) => j.prompts[r]!) }));
    for (const r of await runJobs(runner, mine, label)) {
      outputs.push(r.outputs);
      correct.push(r.correct);
    }
  } else {
    const mine = (f.jobs as ScoreJob[]).map((j, ji) => ({ ...j, sentences: rows[ji]!.map((r) => j.sentences[r]!) }));
    for (const r of await runScoreJobs(runner, mine, label)) perplexity.push(r.perplexity);
  }
  const body: JobsShardFile = {
    schema: JOBS_SHARD_SCHEMA,
    ...identity,
    engine,
    shard,
    jobs: f.jobs.map((j, ji) => ({ key: j.key, rows: texts[ji]!.length })),
    rows,
    outputs,
    correct,
    perplexity,
  };
  writeFileAtomic(file, JSON.stringify(seal(body)));
  log(`[rsn] evaluate: ${shardName(shard)}: ${rows.reduce((a, r) => a + r.length, 0)} of ${texts.reduce((a, t) => a + t.length, 0)} rows → ${file}`);
  return { file, reused: false };
}

/** The merged results of a jobs file, as pipeline.evaluate / pipeline.score give them. */
export interface JobResultsFile {
  kind: JobKind;
  digest: string;
  model: ModelIdentity;
  engine: string;
  results: (JobResult | ScoreResult)[];
}

/**
 * Merge the shards of one jobs file into `outDir`/job-results.json. Refuses shards of other
 * jobs, another model or (unless allowed) another engine, missing or repeated shards, and rows
 * run twice or never, naming the shard's directory.
 */
export function mergeJobShards(dirs: readonly string[], outDir: string, log: (line: string) => void = () => {}, opts: MergeOptions = {}): { file: string; reused: boolean } {
  const shards = dirs.map((d) => {
    try {
      return readShard(d);
    } catch (e) {
      throw new CheckpointError(`jobs shard ${d}: ${(e as Error).message}`, d);
    }
  });
  const first = shards[0]!;
  const label = (i: number) => `${dirs[i]} (${shardName(shards[i]!.shard)})`;
  shards.forEach((s, i) => {
    if (shardIdentity(s) !== shardIdentity(first) || canonicalJson(s.jobs) !== canonicalJson(first.jobs)) {
      throw new ConfigError(`${label(i)} ran other jobs or another model than ${label(0)} (jobs ${s.digest.slice(0, 12)} vs ${first.digest.slice(0, 12)})`, dirs[i], 'shards');
    }
  });
  checkShardSet(shards.map((s) => s.shard), label);
  const engine = mergedEngine(shards.map((s) => s.engine), label, opts);
  const generate = first.kind === 'generate';
  const outputs = first.jobs.map((j) => new Array<string | undefined>(j.rows));
  const correct = first.jobs.map((j) => new Array<boolean | undefined>(j.rows));
  const perplexity = first.jobs.map((j) => new Array<number | undefined>(j.rows));
  const owner = first.jobs.map((j) => new Array<number | undefined>(j.rows));
  shards.forEach((s, si) => {
    s.rows.forEach((rows, ji) => {
      rows.forEach((r, k) => {
        if (!Number.isInteger(r) || r < 0 || r >= first.jobs[ji]!.rows) throw new CheckpointError(`${label(si)}: job ${ji} has no row ${r}`, dirs[si]);
        const prev = owner[ji]![r];
        if (prev !== undefined) throw new ConfigError(`${label(prev)} and ${label(si)} both ran row ${r} of job ${ji} (overlapping shards)`, dirs[si], 'shards');
        owner[ji]![r] = si;
        if (generate) {
          outputs[ji]![r] = s.outputs[ji]![k]!;
          correct[ji]![r] = s.correct[ji]![k]!;
        } else perplexity[ji]![r] = s.perplexity[ji]![k]!;
      });
    });
  });
  first.jobs.forEach((j, ji) => {
    const missing = owner[ji]!.findIndex((o) => o === undefined);
    if (missing >= 0 || owner[ji]!.length !== j.rows) throw new ConfigError(`row ${missing} of job ${ji} (${canonicalJson(j.key)}) was run by no shard: the shards do not cover these jobs`, undefined, 'shards');
  });
  const results: (JobResult | ScoreResult)[] = first.jobs.map((j, ji) =>
    generate
      ? { key: j.key, outputs: outputs[ji] as string[], correct: correct[ji] as boolean[], accuracy: accuracyOf(correct[ji] as boolean[]) }
      : { key: j.key, perplexity: perplexity[ji] as number[] },
  );
  const body = { schema: JOB_RESULTS_SCHEMA, kind: first.kind, digest: first.digest, model: first.model, engine, shards: shards.length, results: encodeExact(results) };
  const file = join(outDir, JOB_RESULTS_FILE);
  if (existsSync(outDir)) {
    try {
      const existing = readJobResults(outDir);
      if (existing.digest === first.digest && existing.model.sha256 === first.model.sha256 && existing.engine === engine) {
        log(`[rsn] merge: ${file} already holds these results; nothing to do`);
        return { file, reused: true };
      }
    } catch {
      // not results of these jobs: refused below
    }
    throw new ConfigError(`${outDir}: already exists; merge into a new directory`, outDir, 'out');
  }
  writeThroughStagingSync(outDir, (tmp) => writeFileAtomic(join(tmp, JOB_RESULTS_FILE), JSON.stringify(seal(body))), log);
  log(`[rsn] merge: ${shards.length} jobs shards (${first.jobs.length} jobs) → ${file}`);
  return { file, reused: false };
}

/** Merged results, checked; with `digest`, refused unless they are the results of exactly those jobs. */
export function readJobResults(dir: string, expect?: { digest: string; model?: string }): JobResultsFile {
  const file = join(dir, JOB_RESULTS_FILE);
  const f = readSealedJson(file, 'merge the jobs shards first (rsn merge DIR… --out DIR)');
  if (f['schema'] !== JOB_RESULTS_SCHEMA) throw new CheckpointError(`${file}: field "schema" is ${JSON.stringify(f['schema'])}, expected "${JOB_RESULTS_SCHEMA}"`, file);
  const r: JobResultsFile = { kind: f['kind'] as JobKind, digest: f['digest'] as string, model: f['model'] as ModelIdentity, engine: f['engine'] as string, results: decodeExact(f['results']) as JobResultsFile['results'] };
  if (expect && r.digest !== expect.digest) throw new ConfigError(`${file}: results of other jobs (${r.digest.slice(0, 12)}), not of these (${expect.digest.slice(0, 12)})`, file, 'results');
  if (expect?.model && r.model.sha256 !== expect.model) throw new ConfigError(`${file}: results of another model (${r.model.name}, ${r.model.sha256.slice(0, 12)})`, file, 'results');
  return r;
}
