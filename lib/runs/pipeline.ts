/**
 * The paper's stages with an on-disk cache (StageCache), for notebooks and the headless
 * reproduction: each stage is computed once per (model, data, backend, code, settings) and
 * reloaded afterwards, so a notebook cell re-runs in seconds. Change a parameter and only the
 * stages that depend on it are recomputed: a stage's key holds its own settings and those of
 * every stage it reads (known facts → ranking → experiments). The ranking's activation store is
 * kept next to it (`activations()`, `removeActivations()`).
 */
import { backendKey } from '../backend.ts';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { canonicalJson, sha256Hex } from '../data/io.ts';
import { join } from 'node:path';
import { CheckpointError, ConfigError } from '../errors.ts';
import { ParallelModel } from '../exec/parallel-model.ts';
import type { ModelRunner } from '../model/runner.ts';
import { ActivationStore, collectActivations } from '../method/activation-store.ts';
import { loadDataset, type Dataset } from '../method/dataset.ts';
import type { Experiment, ResultsOf } from '../method/experiment.ts';
import { jobsDigest, makeContext, runJobs, runScoreJobs, tokenIds, type Context, type Job, type JobResult, type ScoreJob, type ScoreResult } from '../method/jobs.ts';
import { modelIdentity, provenance } from '../method/identity.ts';
import { readIdentification, storeFingerprint } from './activation-shards.ts';
import type { KnownFacts } from '../method/known.ts';
import { findKnownFacts, knownFilter, type FilterPlan } from '../method/experiments/known-filter.ts';
import { identification } from '../method/experiments/identification.ts';
import { knownExpectation, KNOWN_FILE, readKnownFacts } from './known-shards.ts';
import { NeuronSpace, POOLS, type NeuronSite } from '../method/neurons.ts';
import { loadRanking, PAPER_NEGATIVE_RATIO, rankNeurons, saveRanking, type Ranking } from '../method/ranking.ts';
import type { RunOptions } from '../method/generation.ts';
import { codeFingerprint, StageCache } from './stage-cache.ts';
import { readJobResults, writeJobsFile, type JobKind } from './job-shards.ts';
import { executorKey, jobsStageDir, jobsStageDone, rankingStageDir, rankingStageDone, runJobsOnCluster, runRankingOnCluster, type ExecutorSettings } from './executor.ts';
import { expectedSeconds, formatCost, type Cost, type Timing } from '../method/cost.ts';
import { collectionCost, filterCost, generateJobsCost, scoreJobsCost } from '../method/stage-costs.ts';
import { formatDuration } from '../progress.ts';
import { writeFileAtomic } from '../data/io.ts';

/** Jobs are cached by their content: jobsDigest (lib/method/jobs.ts). */
export { jobsDigest } from '../method/jobs.ts';

export interface PipelineOptions {
  /** A converted model directory (`rsn convert`). */
  modelDir: string;
  /** Relation dataset directory (rsn-relation/1 files + splits/). */
  dataDir: string;
  /** Where stage results are cached. */
  cacheDir: string;
  relations?: readonly string[];
  seed?: number;
  /** Record attention sites too (needed for the App. G pools all / attn). */
  recordAttention?: boolean;
  includeBos?: boolean;
  activationDtype?: 'float32' | 'float16';
  run?: RunOptions;
  backend?: string;
  /** Worker threads for the model's calls (ParallelModel; default RSN_WORKERS, else the cores). */
  workers?: number;
  /**
   * The work folder of a sharded run (deploy/slurm/submit.sh --work, the Kubernetes Jobs'
   * volume, or `rsn known/collect/merge/rank` by hand): its known/known.json, ranking/ and
   * activations/ are used instead of computing them here, after checking they were made for
   * this model, data, relations, seed and settings. Nothing in it is written or deleted.
   */
  clusterRun?: string;
  /**
   * Where jobs run (lib/runs/executor.ts): local (default) computes them here; slurm runs the
   * filter, the collection, the ranking and every experiment's jobs as job arrays on a cluster
   * and caches what comes back, keyed by the numeric engine that computed it.
   */
  executor?: ExecutorSettings;
  /** Called for every stage the pipeline runs or reads from its cache, with what it costs. */
  onCost?: (record: CostRecord) => void;
  log?: (line: string) => void;
}

/** What one stage costs (lib/method/cost.ts) and, when it was computed now, how long it took where. */
export interface CostRecord {
  stage: 'known' | 'ranking' | 'evaluate' | 'score';
  label: string;
  /** What it computes: the jobs' digest, or the stage's key. */
  id: string;
  cost: Cost;
  /** Wall seconds when computed now; null when read from the cache. */
  seconds: number | null;
  /** Where it ran: "local <engine>" or "slurm ×N …" (executorKey). */
  executor: string;
}

const TIMINGS_FILE = 'timings.json';
/** Timings kept per executor for the estimates: the latest ones. */
const TIMINGS_KEPT = 100;

/** The stages a sharded run computed, checked against the pipeline that reads them. */
interface ClusterRun {
  dir: string;
  known: KnownFacts;
  ranking: Ranking;
  /** sha256 of known.json and ranking.json: the stages of this pipeline are cached under it. */
  fingerprint: string;
}

const CLUSTER_SUBDIRS = { known: 'known', ranking: 'ranking', activations: 'activations' } as const;

/**
 * When and how large a sharded run's known facts and ranking files are: changes when the run
 * is merged or ranked again, so a pipeline kept over it can be told to reopen.
 */
export function clusterRunStamp(dir: string): string {
  return [join(dir, CLUSTER_SUBDIRS.known, KNOWN_FILE), join(dir, CLUSTER_SUBDIRS.ranking, 'ranking.json')]
    .map((f) => {
      if (!existsSync(f)) return 'missing';
      const s = statSync(f);
      return `${s.size}@${s.mtimeMs}`;
    })
    .join(' ');
}

/**
 * Read and check a sharded run's known facts and ranking for this model and data: refused, naming
 * the file and what differs, when they were made for another model, data, relations, seed, answer
 * length, BOS setting, negative ratio or neuron pool, or when the ranking is not the known facts'.
 */
function readClusterRun(dir: string, model: ModelRunner, dataset: Dataset, opts: Pick<PipelineOptions, 'run' | 'includeBos' | 'recordAttention' | 'activationDtype'>): ClusterRun {
  const knownDir = join(dir, CLUSTER_SUBDIRS.known);
  const rankingDir = join(dir, CLUSTER_SUBDIRS.ranking);
  if (!existsSync(dir)) throw new ConfigError(`clusterRun ${dir}: no such folder (the --work folder of a sharded run)`, dir, 'clusterRun');
  if (!existsSync(knownDir)) throw new ConfigError(`clusterRun ${dir}: no known/ folder; expected the work folder of a sharded run (deploy/slurm/submit.sh --work), which holds known/, activations/ and ranking/`, dir, 'clusterRun');
  const known = readKnownFacts(knownDir, knownExpectation(model, dataset));
  const wantTokens = opts.run?.maxNewTokens ?? 2;
  if (known.maxNewTokens !== wantTokens) throw new ConfigError(`${join(knownDir, KNOWN_FILE)}: the filter checked ${known.maxNewTokens}-token answers, this run checks ${wantTokens}`, knownDir, 'clusterRun');
  if (!existsSync(join(rankingDir, 'ranking.json'))) throw new ConfigError(`clusterRun ${dir}: no ranking/ranking.json; the sharded run has not finished its merge + rank job (or --work names another folder)`, rankingDir, 'clusterRun');
  const ranking = loadRanking(rankingDir);
  const p = ranking.provenance;
  const diff: string[] = [];
  if (p.model?.sha256 !== modelIdentity(model).sha256) diff.push(`model ${p.model?.name} (${String(p.model?.sha256).slice(0, 12)}) ≠ the model given`);
  if (p.dataHash !== dataset.hash) diff.push('the data (its hash) differs');
  if (p.seed !== dataset.seed) diff.push(`seed ${p.seed} ≠ ${dataset.seed}`);
  if (ranking.includeBos !== (opts.includeBos ?? true)) diff.push(`includeBos ${ranking.includeBos} ≠ ${opts.includeBos ?? true}`);
  if (ranking.negativeRatio !== PAPER_NEGATIVE_RATIO) diff.push(`negative ratio ${ranking.negativeRatio} ≠ ${PAPER_NEGATIVE_RATIO}`);
  const names = dataset.relations.map((r) => r.relation.name);
  if (canonicalJson(ranking.relations.map((r) => r.name)) !== canonicalJson(names)) diff.push(`relations ${ranking.relations.map((r) => r.name).join(',')} ≠ ${names.join(',')}`);
  const space = NeuronSpace.forModel(model.config, opts.recordAttention ? 'all' : 'ffn');
  if (canonicalJson(ranking.space.describe()) !== canonicalJson(space.describe())) diff.push(`its neuron pool (${ranking.space.sites.join(', ')}) is not the one asked for (${space.sites.join(', ')}${opts.recordAttention ? '' : '; collect with --attention for the App. G pools'})`);
  if (diff.length) throw new ConfigError(`${join(rankingDir, 'ranking.json')}: this ranking was made for another run (${diff.join('; ')})`, rankingDir, 'clusterRun');
  // The ranking must come from these known facts: its store's identification.json names them.
  const storeDir = join(dir, CLUSTER_SUBDIRS.activations);
  if (existsSync(join(storeDir, 'meta.json'))) {
    const ident = readIdentification(storeDir);
    const dtype = opts.activationDtype ?? 'float32';
    if (ident.settings.dtype !== dtype) throw new ConfigError(`${storeDir}: its activations were stored as ${ident.settings.dtype}, this run ranks ${dtype} activations (collect again with --dtype ${dtype}, or set activationDtype: '${ident.settings.dtype}')`, storeDir, 'clusterRun');
    if (canonicalJson(ident.settings.known) !== canonicalJson(known.relations.map((r) => [r.name, r.known]))) throw new ConfigError(`${storeDir}: its activations were collected for other known facts than ${join(knownDir, KNOWN_FILE)}`, storeDir, 'clusterRun');
    if (p['activations'] !== storeFingerprint(ActivationStore.open(storeDir, { verify: false }))) throw new ConfigError(`${join(rankingDir, 'ranking.json')}: ranks another activation store than ${storeDir}`, rankingDir, 'clusterRun');
  }
  known.relations.forEach((r, i) => {
    const rr = ranking.relations[i]!;
    if (rr.numPositives !== r.known.length) throw new ConfigError(`${join(rankingDir, 'ranking.json')}: ${r.name} has ${rr.numPositives} positives, but the known facts have ${r.known.length}: the ranking is not these known facts'`, rankingDir, 'clusterRun');
  });
  const fingerprint = sha256Hex(readFileSync(join(knownDir, KNOWN_FILE), 'utf8') + '\u0000' + readFileSync(join(rankingDir, 'ranking.json'), 'utf8'));
  return { dir, known, ranking, fingerprint };
}

export class Pipeline {
  private knownCache: KnownFacts | null = null;
  private rankingCache: Ranking | null = null;
  private cluster: ClusterRun | null;
  /** Set once a remote executor's check found the known facts and the ranking cached here. */
  private rankedHere = false;

  private constructor(
    readonly model: ModelRunner,
    readonly dataset: Dataset,
    readonly opts: PipelineOptions,
    /** This (model, data)'s cache folder. */
    readonly dir: string,
    /** The stage cache; every key holds the model, data, backend and code fingerprint. */
    readonly cache: StageCache,
    clusterRun: ClusterRun | null,
  ) {
    this.cluster = clusterRun;
    if (clusterRun) {
      this.knownCache = clusterRun.known;
      this.rankingCache = clusterRun.ranking;
    }
  }

  static async open(opts: PipelineOptions): Promise<Pipeline> {
    const dataset = loadDataset(opts.dataDir, { seed: opts.seed ?? 0, relations: opts.relations });
    const model = await ParallelModel.load(opts.modelDir, { backend: opts.backend, workers: opts.workers, log: opts.log ?? null });
    let clusterRun: ClusterRun | null = null;
    try {
      if (opts.clusterRun) clusterRun = readClusterRun(opts.clusterRun, model, dataset, opts);
    } catch (e) {
      model.dispose();
      throw e;
    }
    if (clusterRun) opts.log?.(`[rsn] known facts and ranking: from the sharded run in ${clusterRun.dir}`);
    const id = modelIdentity(model);
    // One cache folder per (model, data): results of other models or data never mix.
    const dir = join(opts.cacheDir, `${id.name}-${id.sha256.slice(0, 8)}-data-${dataset.hash.slice(0, 8)}`);
    mkdirSync(dir, { recursive: true });
    const base = {
      model: { name: id.name, sha256: id.sha256, storageDtype: id.storageDtype },
      data: dataset.hash,
      backend: backendKey(model.info.backend),
      code: codeFingerprint(),
    };
    return new Pipeline(model, dataset, opts, dir, new StageCache(dir, base, (l) => opts.log?.(l)), clusterRun);
  }

  dispose(): void {
    this.model.dispose();
  }

  /** The sharded run whose known facts and ranking this pipeline reads (the clusterRun option's, or the executor's), if any. */
  get clusterRun(): ClusterRun | null {
    return this.cluster;
  }

  /** Where this pipeline's stages run, as timings and cost records name it. */
  private executorKey(): string {
    return executorKey(this.opts.executor, backendKey(this.model.info.backend));
  }

  private readTimings(): Record<string, Timing[]> {
    try {
      const t = JSON.parse(readFileSync(join(this.dir, TIMINGS_FILE), 'utf8')) as unknown;
      return t && typeof t === 'object' && !Array.isArray(t) ? (t as Record<string, Timing[]>) : {};
    } catch {
      // Missing or damaged: only estimates come from it, and the next timing rewrites it.
      return {};
    }
  }

  /**
   * Run `compute` as a stage that costs `cost`: the cost and the expected time (from this
   * executor's earlier timings) are printed before, the time taken after, and both are kept
   * for the next estimate and passed to `onCost`.
   */
  private async timed<T>(stage: CostRecord['stage'], label: string, id: string, cost: Cost, compute: () => Promise<T>): Promise<T> {
    const expected = this.announce(label, cost);
    const t0 = performance.now();
    const value = await compute();
    this.measured(stage, label, id, cost, (performance.now() - t0) / 1000, expected);
    return value;
  }

  /** Print a stage's cost and its expected time on this executor (null when nothing was timed there yet). */
  private announce(label: string, cost: Cost): number | null {
    const where = this.executorKey();
    const expected = expectedSeconds(this.readTimings()[where] ?? [], cost.flops);
    this.log(`[rsn] ${label}: ${formatCost(cost)}${expected !== null ? ` · expected ≈ ${formatDuration(expected)} on ${where}` : ''}`);
    return expected;
  }

  /** Keep a stage's time for the next estimates, print it, and pass the record to `onCost`. */
  private measured(stage: CostRecord['stage'], label: string, id: string, cost: Cost, seconds: number, expected: number | null): void {
    const where = this.executorKey();
    const timings = this.readTimings();
    timings[where] = [...(timings[where] ?? []), { flops: cost.flops, seconds }].slice(-TIMINGS_KEPT);
    writeFileAtomic(join(this.dir, TIMINGS_FILE), JSON.stringify(timings));
    this.log(`[rsn] ${label}: took ${formatDuration(seconds)}${expected !== null ? ` (expected ${formatDuration(expected)})` : ''}`);
    this.opts.onCost?.({ stage, label, id, cost, seconds, executor: where });
  }

  /** The ids the filter's and the ranking's records carry, here and on a cluster alike. */
  private knownId(): string {
    return sha256Hex(canonicalJson(this.cache.key('known', this.knownSettings())));
  }

  private cached(stage: CostRecord['stage'], label: string, id: string, cost: Cost): void {
    this.opts.onCost?.({ stage, label, id, cost, seconds: null, executor: this.executorKey() });
  }

  /** Tokens of a text by the model's tokenizer. */
  private readonly tokenCount = (t: string) => this.model.tokenizer!.encode(t).length;

  /** The known-facts filter's cost: every detection prompt answered. */
  private filterCost(): Cost {
    return filterCost(this.model.config, this.tokenCount, this.dataset, this.opts.run?.maxNewTokens ?? 2);
  }

  /** The collection's cost: every prompt of the identification set forwarded once. */
  private collectionCost(known: KnownFacts): Cost {
    return collectionCost(this.model.config, this.tokenCount, this.dataset, known, this.opts.seed ?? 0);
  }

  /** The executor when it is not this process. */
  private remote(): ExecutorSettings | null {
    const ex = this.opts.executor;
    return ex && ex.name !== 'local' ? ex : null;
  }

  /**
   * With a remote executor, the known facts and the ranking come from the cluster unless both
   * are cached here already: submitted (or found in the work folder), waited for, and read as a
   * sharded run, checked like the clusterRun option's. Every stage key then holds that run's
   * fingerprint, so stages computed from it are kept apart from those of a ranking made here.
   */
  private async fromExecutor(): Promise<void> {
    const ex = this.remote();
    if (!ex || this.cluster || this.rankedHere) return;
    const settings = this.rankingSettings();
    if (this.cache.read('known', this.knownSettings()).found && existsSync(join(this.rankingDir(), 'ranking.json'))) {
      this.rankedHere = true;
      return;
    }
    const id = modelIdentity(this.model);
    const key = sha256Hex(canonicalJson(this.cache.key('ranking', settings)));
    const chain = () => runRankingOnCluster(ex, {
      modelDir: this.opts.modelDir,
      dataDir: this.opts.dataDir,
      model: id,
      key,
      settings: {
        relations: this.dataset.relations.map((r) => r.relation.name),
        seed: this.opts.seed ?? 0,
        batchSize: this.opts.run?.batchSize,
        maxNewTokens: this.opts.run?.maxNewTokens,
        includeBos: this.opts.includeBos ?? true,
        recordAttention: this.opts.recordAttention ?? false,
        activationDtype: this.opts.activationDtype ?? 'float32',
      },
      log: (l) => this.log(l),
    });
    // Recorded as the two stages a run here records, with the same ids, so the ledger counts each once.
    const filter = { label: 'known-facts filter', cost: this.filterCost() };
    const collection = 'activations and ranking';
    let run: ClusterRun;
    if (rankingStageDone(rankingStageDir(ex, id, key))) {
      run = readClusterRun((await chain()).dir, this.model, this.dataset, this.opts);
      this.cached('known', filter.label, this.knownId(), filter.cost);
      this.cached('ranking', collection, key, this.collectionCost(run.known));
    } else {
      const expected = this.announce(filter.label, filter.cost);
      const t0 = performance.now();
      const done = await chain();
      const total = (performance.now() - t0) / 1000;
      run = readClusterRun(done.dir, this.model, this.dataset, this.opts);
      // Known facts merged before this wait (an earlier, interrupted submission) took no time now.
      const filterSeconds = done.knownSeconds ?? 0;
      if (done.knownSeconds === null) this.cached('known', filter.label, this.knownId(), filter.cost);
      else this.measured('known', filter.label, this.knownId(), filter.cost, filterSeconds, expected);
      const cost = this.collectionCost(run.known);
      this.log(`[rsn] ${collection}: ${formatCost(cost)}`);
      this.measured('ranking', collection, key, cost, Math.max(0, total - filterSeconds), null);
    }
    const dir = run.dir;
    this.cluster = run;
    this.knownCache = run.known;
    this.rankingCache = run.ranking;
    this.log(`[rsn] known facts and ranking: from ${ex.name} (${dir})`);
  }

  private log(line: string): void {
    this.opts.log?.(line);
  }

  /** The run options that reach a computation (progress and labels do not). */
  private runSettings(): Record<string, number | null> {
    const run = this.opts.run ?? {};
    return { batchSize: run.batchSize ?? null, maxNewTokens: run.maxNewTokens ?? null };
  }

  private knownSettings(): Record<string, unknown> {
    return { run: this.runSettings() };
  }

  /** Everything the ranking depends on besides the base key. */
  private rankingSettings(): Record<string, unknown> {
    return {
      known: this.knownSettings(),
      seed: this.opts.seed ?? 0,
      includeBos: this.opts.includeBos ?? true,
      recordAttention: this.opts.recordAttention ?? false,
      activationDtype: this.opts.activationDtype ?? 'float32',
      negativeRatio: PAPER_NEGATIVE_RATIO,
      // Stages computed from a sharded run's ranking are cached apart from those of a local one.
      ...(this.clusterRun ? { clusterRun: this.clusterRun.fingerprint } : {}),
    };
  }

  /**
   * A cached stage computed from this pipeline's model, data, known facts and ranking, for
   * results a notebook computes itself: `settings` must hold every parameter of `compute`
   * besides those (k, seeds, prompt sets, …).
   */
  async stage<T>(name: string, settings: unknown, compute: () => Promise<T>): Promise<T> {
    await this.fromExecutor();
    return this.cache.get(name, this.stageSettings(settings), compute);
  }

  private stageSettings(settings: unknown): Record<string, unknown> {
    return { ranking: this.rankingSettings(), run: this.runSettings(), stage: settings };
  }

  /** The filter's plan for this model and data: one job per relation with every detection prompt. */
  filterPlan(): FilterPlan {
    return knownFilter.plan(this.dataset, { maxNewTokens: this.opts.run?.maxNewTokens });
  }

  /** P^det: the detection prompts the model answers correctly (2-token greedy prefix check): the filter's plan, run and summarised. */
  async known(): Promise<KnownFacts> {
    await this.fromExecutor();
    if (this.knownCache) return this.knownCache;
    const settings = this.knownSettings();
    const id = this.knownId();
    let computed = false;
    const known = await this.cache.get('known', settings, () => {
      computed = true;
      return this.timed('known', 'known-facts filter', id, this.filterCost(), () => findKnownFacts(this.model, this.dataset, this.opts.run));
    });
    if (!computed) this.cached('known', 'known-facts filter', id, this.filterCost());
    this.knownCache = known;
    return known;
  }

  private sites(): NeuronSite[] {
    return [...(this.opts.recordAttention ? POOLS.all : POOLS.ffn)];
  }

  /** Where the ranking of these settings is saved (ranking.json, per-relation AP, CSV and JSON lists). */
  rankingDir(): string {
    if (this.clusterRun) return join(this.clusterRun.dir, CLUSTER_SUBDIRS.ranking);
    return this.cache.path('ranking', this.rankingSettings(), '');
  }

  /** Where the ranking's pooled activations are kept (one store per ranking setting). */
  activationsDir(): string {
    if (this.clusterRun) return join(this.clusterRun.dir, CLUSTER_SUBDIRS.activations);
    return this.cache.path('activations', this.rankingSettings(), '');
  }

  /** The kept activation store of this ranking (P^det prompts × neurons), or null when there is none. */
  activations(): ActivationStore | null {
    const dir = this.activationsDir();
    return existsSync(dir) ? ActivationStore.open(dir) : null;
  }

  /** Delete the kept activation store of this ranking (the ranking itself stays); true if there was one. */
  removeActivations(): boolean {
    const dir = this.activationsDir();
    if (this.clusterRun) {
      this.log(`[rsn] activations: ${dir} belongs to the sharded run; left in place`);
      return false;
    }
    if (!existsSync(dir)) return false;
    rmSync(dir, { recursive: true, force: true });
    this.log(`[rsn] activations: removed ${dir}`);
    return true;
  }

  /** Token-mean activations of P^det prompts → AP per neuron per relation. */
  async ranking(): Promise<Ranking> {
    await this.fromExecutor();
    if (this.rankingCache) return this.rankingCache;
    const known = await this.known();
    const settings = this.rankingSettings();
    const key = this.cache.key('ranking', settings);
    const rankingDir = this.rankingDir();
    if (existsSync(rankingDir)) {
      try {
        const cached = loadRanking(rankingDir);
        if (canonicalJson(cached.provenance['cacheKey']) !== canonicalJson(key)) throw new CheckpointError(`${rankingDir}: its key does not match the settings asked for`, rankingDir);
        this.log(`[rsn] ranking: cached (${rankingDir})`);
        this.cached('ranking', 'activations and ranking', sha256Hex(canonicalJson(key)), this.collectionCost(known));
        this.rankingCache = cached;
        return cached;
      } catch (e) {
        this.log(`[rsn] ranking: cache entry ${rankingDir} is unusable (${(e as Error).message}); recomputing`);
      }
    }
    const ranking = await this.timed('ranking', 'activations and ranking', sha256Hex(canonicalJson(key)), this.collectionCost(known), () => this.computeRanking(known, key, rankingDir));
    this.rankingCache = ranking;
    return ranking;
  }

  private async computeRanking(known: KnownFacts, key: Record<string, unknown>, rankingDir: string): Promise<Ranking> {
    const seed = this.opts.seed ?? 0;
    const includeBos = this.opts.includeBos ?? true;
    const t0 = performance.now();
    const idset = identification.plan(this.dataset, known, seed);
    const tok = this.model.tokenizer!;
    const storeDir = this.activationsDir();
    const collect = () =>
      collectActivations(this.model, idset.prompts.map((p) => tok.encode(p.text)), storeDir, {
        sites: this.sites(),
        includeBos,
        dtype: this.opts.activationDtype ?? 'float32',
        batchSize: this.opts.run?.batchSize,
        quiet: this.opts.run?.quiet,
        log: (l) => this.log(l),
      });
    let store: ActivationStore;
    try {
      store = await collect();
    } catch (e) {
      if (!(e instanceof CheckpointError)) throw e;
      // The store lives in the cache and its folder is named by the full key, so a store there that cannot be resumed is damaged, not someone else's.
      this.log(`[rsn] activations: ${(e as Error).message}; collecting again`);
      rmSync(storeDir, { recursive: true, force: true });
      store = await collect();
    }
    const ranking = await rankNeurons(store, idset, provenance(this.model, this.dataset.hash, seed, { includeBos, negativeRatio: PAPER_NEGATIVE_RATIO, cacheKey: key }));
    saveRanking(ranking, rankingDir);
    this.log(`[rsn] ranking: computed in ${((performance.now() - t0) / 1000).toFixed(1)} s (${rankingDir}; activations kept in ${storeDir})`);
    return ranking;
  }

  async context(): Promise<Context> {
    return makeContext(this.model, this.dataset, await this.known(), await this.ranking(), this.opts.run);
  }

  /**
   * Run jobs (prompts under ablations), cached by their content: the prompts, answers and
   * ablations themselves, so a notebook that builds the same jobs another way, or re-runs a
   * cell, reads the stored results, and any change to a job computes anew.
   */
  async evaluate(jobs: readonly Job[], label = 'evaluate'): Promise<JobResult[]> {
    const ctx = await this.context();
    const cost = generateJobsCost(this.model.config, (t) => tokenIds(ctx, t).length, jobs, this.opts.run?.maxNewTokens ?? 2);
    return this.executed('generate', jobs, label, cost, () => runJobs(ctx, jobs, label)) as Promise<JobResult[]>;
  }

  /** Sentences scored under ablations (log-likelihood), cached by the jobs' content like evaluate. */
  async score(jobs: readonly ScoreJob[], label = 'score'): Promise<ScoreResult[]> {
    const ctx = await this.context();
    const cost = scoreJobsCost(this.model.config, (t) => tokenIds(ctx, t).length, jobs);
    return this.executed('score', jobs, label, cost, () => runScoreJobs(ctx, jobs, label)) as Promise<ScoreResult[]>;
  }

  /** Jobs from the cache, else computed by `local` here or, with a remote executor, on the cluster. */
  private async executed(kind: JobKind, jobs: readonly Job[] | readonly ScoreJob[], label: string, cost: Cost, local: () => Promise<JobResult[] | ScoreResult[]>): Promise<JobResult[] | ScoreResult[]> {
    const stage = kind === 'score' ? 'score' : 'evaluate';
    const digest = jobsDigest(jobs);
    const ex = this.remote();
    if (!ex || this.cache.read(stage, this.stageSettings({ jobs: digest })).found) {
      let computed = false;
      const results = await this.stage(stage, { jobs: digest }, () => {
        computed = true;
        return this.timed(stage, label, digest, cost, local);
      });
      if (!computed) this.cached(stage, label, digest, cost);
      return results;
    }
    // Results merged in the work folder by an earlier run (another engine's, or before this cache existed) are read, not timed.
    if (jobsStageDone(jobsStageDir(ex, modelIdentity(this.model), stage, digest))) {
      this.cached(stage, label, digest, cost);
      return this.onCluster(ex, stage, jobs, digest, label);
    }
    return this.timed(stage, label, digest, cost, () => this.onCluster(ex, stage, jobs, digest, label));
  }

  private async onCluster(ex: ExecutorSettings, stage: 'evaluate' | 'score', jobs: readonly Job[] | readonly ScoreJob[], digest: string, label: string): Promise<JobResult[] | ScoreResult[]> {
    const dir = await runJobsOnCluster(ex, {
      modelDir: this.opts.modelDir,
      model: modelIdentity(this.model),
      digest,
      kind: stage,
      label,
      writeJobs: (file) => this.writeJobs(file, jobs),
      log: (l) => this.log(l),
    });
    return this.importResults(jobs, dir);
  }

  /**
   * Write jobs (a plan's) to a file for `rsn evaluate --jobs FILE --shard i/n` on other processes
   * or machines; their merged results come back through `importResults`. Returns the jobs' digest.
   */
  async writeJobs(file: string, jobs: readonly Job[] | readonly ScoreJob[]): Promise<string> {
    const ctx = await this.context();
    const kind = jobs.length > 0 && 'sentences' in jobs[0]! ? 'score' : 'generate';
    return writeJobsFile(file, kind, jobs, ctx.space, this.opts.run);
  }

  /**
   * The merged results of `rsn evaluate` shards (`rsn merge` → `dir`) for exactly these jobs and
   * this model, put into the stage cache. Results of this pipeline's numeric engine go under the
   * key `evaluate(jobs)` / `score(jobs)` reads, as if computed here; those of another engine (a
   * cluster's GPUs) under a key that names it, so a run here never mistakes their last bits for
   * its own and computes anew, while the executor finds them again through its work folder.
   */
  async importResults(jobs: readonly Job[] | readonly ScoreJob[], dir: string): Promise<JobResult[] | ScoreResult[]> {
    const r = readJobResults(dir, { digest: jobsDigest(jobs), model: modelIdentity(this.model).sha256 });
    const engine = backendKey(this.model.info.backend);
    const stage = r.kind === 'score' ? 'score' : 'evaluate';
    if (r.engine !== engine) this.log(`[rsn] ${stage}: results computed with ${r.engine} (this machine computes with ${engine}); cached apart from this machine's`);
    return this.stage(stage, { jobs: r.digest, ...(r.engine !== engine ? { engine: r.engine } : {}) }, async () => r.results as JobResult[] | ScoreResult[]);
  }

  /**
   * Any experiment in one cached call: plan → jobs → evaluate (or score) → summary, the steps a
   * notebook shows one by one. The jobs are cached by their content, so this and the steps done
   * by hand read the same entries.
   */
  async run<P, Plan extends { jobs: readonly J[] }, R, J extends Job | ScoreJob, V>(experiment: Experiment<P, Plan, R, J, V>, params: P): Promise<R> {
    const ctx = await this.context();
    const plan = experiment.plan(ctx, params);
    // jobKind is tied to J by the Experiment type; the two arms give exactly ResultsOf<J>.
    const results = (experiment.jobKind === 'score' ? await this.score(plan.jobs as readonly ScoreJob[], experiment.name) : await this.evaluate(plan.jobs as readonly Job[], experiment.name)) as ResultsOf<J>[];
    return experiment.summarise(ctx, plan, results);
  }
}
