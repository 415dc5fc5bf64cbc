/**
 * The second half of every notebook's parameter cell:
 *
 *   const P = rsn.params({ randomSeeds: 10 });
 *   const { pipeline, k, pool, run } = await rsn.setup(P);
 *
 * It resolves k against the model's FFN pool, names the run folder of this setting (figures,
 * tables and verdicts go there from now on; lib/notebook/run.ts) and returns a Pipeline. The
 * pipeline is kept for the kernel's life and reused while the model, data and run options are
 * unchanged, so re-running the cell after changing k or seeds costs nothing, and a cell can be
 * re-run any number of times (nothing here is disposed under a cell's feet).
 */
import { join, relative } from 'node:path';
import { canonicalJson, writeFileAtomic } from '../data/io.ts';
import { readEnv } from '../env.ts';
import { ConfigError } from '../errors.ts';
import { NeuronSpace } from '../method/neurons.ts';
import { executorSettings } from '../runs/executor.ts';
import { clusterRunStamp, type Pipeline } from '../runs/pipeline.ts';
import { resolveK } from './k.ts';
import { dataDirFor, openPipeline } from './model.ts';
import { currentParams, type ParamValue } from './params.ts';
import { fromRoot, projectRoot } from './paths.ts';
import { RUN_SETTING_SCHEMA, runDir, runId, runSetting } from './run.ts';
import { setRunDir } from './state.ts';

/** The parameters setup() reads (every notebook's P has them: they are registered). */
export interface SetupParams {
  model: string;
  data: string;
  relations: readonly string[];
  seed: number;
  batchSize: number;
  backend: string;
  clusterRun: string;
  k: number;
  kPercent: number;
  kMaxPercent: number;
  executor: string;
  executorWork: string;
  executorShards: number;
  executorPartition: string;
  executorGpus: number;
  executorSbatchArgs: string;
}

export interface SetupOptions {
  /** Record attention sites too (the App. G pools all / attn). */
  recordAttention?: boolean;
  /**
   * A relation data folder derived from the parameters (notebook 15 builds one from the base data
   * and the user's relation file), used instead of `data`, and whole: it already holds just the
   * relations to use, so `relations` does not filter it again. The run folder still names the parameters.
   */
  dataDir?: string;
  quiet?: boolean;
}

export interface Setup {
  pipeline: Pipeline;
  /** Neurons per relation as used (after kPercent / kMaxPercent). */
  k: number;
  /** How k was derived from the parameters. */
  kHow: string;
  /** The model's FFN pool (gate, up and down units of every layer). */
  pool: number;
  /** The run folder of this setting. */
  run: { id: string; dir: string };
}

let kept: { key: string; pipeline: Pipeline } | null = null;

/** What decides the pipeline: a change here opens a new one (and frees the old model). */
function pipelineKey(P: SetupParams, opts: SetupOptions): string {
  return canonicalJson({
    model: fromRoot(P.model),
    data: opts.dataDir ?? dataDirFor(P.data, P.model),
    relations: opts.dataDir ? [] : [...P.relations],
    seed: P.seed,
    batchSize: P.batchSize,
    backend: P.backend,
    // A sharded run merged or ranked again since the pipeline was opened is read again.
    clusterRun: P.clusterRun ? [P.clusterRun, clusterRunStamp(fromRoot(P.clusterRun))] : '',
    recordAttention: opts.recordAttention ?? false,
    executor: canonicalJson(executorSettings(P, projectRoot)),
  });
}

async function keptPipeline(P: SetupParams, opts: SetupOptions): Promise<Pipeline> {
  const key = pipelineKey(P, opts);
  if (kept?.key === key) return kept.pipeline;
  if (kept) {
    kept.pipeline.dispose();
    kept = null;
  }
  const pipeline = await openPipeline({ ...P, data: opts.dataDir ?? P.data, relations: opts.dataDir ? [] : P.relations, recordAttention: opts.recordAttention, quiet: opts.quiet });
  kept = { key, pipeline };
  return pipeline;
}

export async function setup(P: SetupParams & Readonly<Record<string, ParamValue>>, opts: SetupOptions = {}): Promise<Setup> {
  const log = opts.quiet ? () => {} : (l: string) => console.log(l);
  const pipeline = await keptPipeline(P, opts);
  const pool = NeuronSpace.forModel(pipeline.model.config, 'ffn').size;
  const k = resolveK(P, pool, { quiet: opts.quiet, poolName: 'the FFN pool' });
  const setting = runSetting(P, k);
  const id = runId(setting);
  // The headless runner computed the run folder before starting the notebook; a notebook whose own values change the setting would file elsewhere.
  const expected = readEnv('run');
  if (expected && expected !== id) {
    const changed = currentParams().filter((s) => s.from === 'cell').map((s) => `${s.name} = ${JSON.stringify(s.value)}`);
    throw new ConfigError(`this notebook's setting is run ${id}, but the runner files this run under ${expected}${changed.length ? `: the notebook's cell sets ${changed.join(', ')}; set it for every notebook (--set NAME=VALUE) or remove it from the cell` : ''}`, undefined, 'run');
  }
  const dir = runDir(P.model, id);
  writeFileAtomic(
    join(dir, 'setting.json'),
    JSON.stringify({ schema: RUN_SETTING_SCHEMA, id, model: P.model, setting, k: { value: k.k, how: k.how, pool }, updated: new Date().toISOString() }, null, 1) + '\n',
  );
  setRunDir(dir);
  log(`run ${id}: outputs go to ${relative(projectRoot, dir) || dir}`);
  return { pipeline, k: k.k, kHow: k.how, pool, run: { id, dir } };
}

/** Free the kept pipeline's model (the next setup() opens a new one). */
export function releasePipeline(): void {
  kept?.pipeline.dispose();
  kept = null;
}
