/**
 * The paper's stages with an on-disk cache, for notebooks and the headless reproduction:
 * each stage is computed once per (model, data, parameters) and reloaded afterwards, so a
 * notebook cell re-runs in seconds. Change a parameter and only the stages that depend on it
 * are recomputed (the cache key includes every parameter that matters).
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { sha256Hex, writeFileAtomic } from '../data/io.ts';
import { LlamaModel } from '../model/llama.ts';
import { collectActivations } from './activation-store.ts';
import { loadDataset, type Dataset } from './dataset.ts';
import {
  cumulativity,
  intraRelation,
  interRelation,
  kSweep,
  makeContext,
  perplexity,
  type Context,
  type CumulativityResult,
  type InterResult,
  type IntraOptions,
  type IntraResult,
  type PerplexityResult,
  type SweepResult,
} from './experiments.ts';
import { modelIdentity, provenance } from './identity.ts';
import { findKnownFacts, loadKnownFacts, saveKnownFacts, type KnownFacts } from './known.ts';
import { POOLS, type NeuronSite, type PoolName } from './neurons.ts';
import { buildIdentificationSet, loadRanking, rankNeurons, saveRanking, type Ranking } from './ranking.ts';
import type { RunOptions } from './generation.ts';

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
  log?: (line: string) => void;
}

export class Pipeline {
  private knownCache: KnownFacts | null = null;
  private rankingCache: Ranking | null = null;

  private constructor(
    readonly model: LlamaModel,
    readonly dataset: Dataset,
    readonly opts: PipelineOptions,
    readonly dir: string,
  ) {}

  static async open(opts: PipelineOptions): Promise<Pipeline> {
    const dataset = loadDataset(opts.dataDir, { seed: opts.seed ?? 0, relations: opts.relations });
    const model = await LlamaModel.load(opts.modelDir, { backend: opts.backend, log: opts.log ?? null });
    const id = modelIdentity(model);
    // One cache folder per (model, data): results of other models or data never mix.
    const dir = join(opts.cacheDir, `${id.name}-${id.sha256.slice(0, 8)}-data-${dataset.hash.slice(0, 8)}`);
    mkdirSync(dir, { recursive: true });
    return new Pipeline(model, dataset, opts, dir);
  }

  dispose(): void {
    this.model.dispose();
  }

  private log(line: string): void {
    this.opts.log?.(line);
  }

  /** Cached JSON stage: `key` holds every parameter the result depends on. */
  private async stage<T>(name: string, key: unknown, compute: () => Promise<T>): Promise<T> {
    const file = join(this.dir, `${name}-${sha256Hex(JSON.stringify(key)).slice(0, 12)}.json`);
    if (existsSync(file)) {
      this.log(`[rsn] ${name}: cached (${file})`);
      return JSON.parse(readFileSync(file, 'utf8')) as T;
    }
    const t0 = performance.now();
    const result = await compute();
    writeFileAtomic(file, JSON.stringify(result, (_, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 1));
    this.log(`[rsn] ${name}: computed in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    return result;
  }

  /** P^det: the detection prompts the model answers correctly (2-token greedy prefix check). */
  async known(): Promise<KnownFacts> {
    if (this.knownCache) return this.knownCache;
    const file = join(this.dir, 'known.json');
    if (existsSync(file)) {
      this.knownCache = loadKnownFacts(file, this.dataset);
    } else {
      this.knownCache = await findKnownFacts(this.model, this.dataset, this.opts.run);
      saveKnownFacts(this.knownCache, file);
    }
    return this.knownCache;
  }

  private sites(): NeuronSite[] {
    return [...(this.opts.recordAttention ? POOLS.all : POOLS.ffn)];
  }

  /** Token-mean activations of P^det prompts → AP per neuron per relation. */
  async ranking(): Promise<Ranking> {
    if (this.rankingCache) return this.rankingCache;
    const known = await this.known();
    const seed = this.opts.seed ?? 0;
    const includeBos = this.opts.includeBos ?? true;
    const tag = `${this.opts.recordAttention ? 'all' : 'ffn'}-${includeBos ? 'bos' : 'nobos'}-s${seed}`;
    const rankingDir = join(this.dir, `ranking-${tag}`);
    if (existsSync(join(rankingDir, 'ranking.json'))) {
      this.log(`[rsn] ranking: cached (${rankingDir})`);
      this.rankingCache = loadRanking(rankingDir);
      return this.rankingCache;
    }
    const idset = buildIdentificationSet(this.dataset, known, { seed });
    const empty = idset.tasks.filter((t) => t.positives.length === 0).map((t) => t.name);
    if (empty.length) throw new Error(`no known detection prompts for ${empty.join(', ')}: the model answers none correctly, so these relations cannot be ranked; leave them out (relations option)`);
    const tok = this.model.tokenizer!;
    const storeDir = join(this.dir, `activations-${tag}`);
    const store = await collectActivations(this.model, idset.prompts.map((p) => tok.encode(p.text)), storeDir, {
      sites: this.sites(),
      includeBos,
      dtype: this.opts.activationDtype ?? 'float32',
      batchSize: this.opts.run?.batchSize,
      quiet: this.opts.run?.quiet,
    });
    const ranking = await rankNeurons(store, idset, provenance(this.model, this.dataset.hash, seed, { includeBos, negativeRatio: 4 }));
    saveRanking(ranking, rankingDir);
    rmSync(storeDir, { recursive: true, force: true }); // the ranking is what later stages need; the store can be large
    this.rankingCache = ranking;
    return ranking;
  }

  async context(): Promise<Context> {
    return makeContext(this.model, this.dataset, await this.known(), await this.ranking(), this.opts.run);
  }

  async intra(opts: IntraOptions = {}): Promise<IntraResult> {
    const ctx = await this.context();
    return this.stage('intra', { ...opts, seed: ctx.dataset.seed }, () => intraRelation(ctx, opts));
  }

  async inter(opts: { k?: number; pool?: PoolName; set?: 'eva' | 'eva2' } = {}): Promise<InterResult> {
    const ctx = await this.context();
    return this.stage('inter', opts, () => interRelation(ctx, opts));
  }

  async sweep(opts: { ks?: number[]; pool?: PoolName } = {}): Promise<SweepResult> {
    const ctx = await this.context();
    return this.stage('ksweep', opts, () => kSweep(ctx, opts));
  }

  async cumulativity(opts: { ks?: number[] } = {}): Promise<CumulativityResult> {
    const ctx = await this.context();
    const sweep = await this.sweep(opts);
    return this.stage('cumulativity', opts, () => cumulativity(ctx, sweep));
  }

  async perplexity(sentences: Record<string, readonly string[]>, opts: { k?: number } = {}): Promise<PerplexityResult> {
    const ctx = await this.context();
    return this.stage('perplexity', { ...opts, sentences }, () => perplexity(ctx, sentences, opts));
  }
}
