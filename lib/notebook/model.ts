/**
 * Model and data for a notebook: a parameter names a model directory (the organism in Hugging
 * Face layout, a converted Llama-2, or any converted dir) and the notebook gets a ready
 * Pipeline. A Hugging Face directory is converted once into .cache/models/ (the same cache as
 * `npm run reproduce`) and reused while its files and the converter are unchanged.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { sha256Hex } from '../data/io.ts';
import { readEnv } from '../env.ts';
import type { RunOptions } from '../method/generation.ts';
import { executorSettings } from '../runs/executor.ts';
import { recordCost } from './cost-ledger.ts';
import { Pipeline } from '../runs/pipeline.ts';
import { fromRoot, projectRoot } from './paths.ts';

export interface PreparedModel {
  /** The directory as given (relative to the project root or absolute). */
  source: string;
  /** A converted directory (model.json + shards) that LlamaModel.load reads. */
  dir: string;
  hasTokenizer: boolean;
}

/** Why a model cannot be used, or null when it can. */
export function modelProblem(modelDir: string): string | null {
  const dir = fromRoot(modelDir);
  if (!existsSync(dir)) return `${modelDir} does not exist`;
  if (!existsSync(join(dir, 'model.json')) && !existsSync(join(dir, 'config.json'))) return `${modelDir} is neither a converted model (model.json) nor a Hugging Face checkpoint (config.json)`;
  return null;
}

/**
 * `rsn convert IN OUT --force` in a child process: the converter is a program of its own
 * (weights-converter/), which the lib does not import. Its progress lines go to `log`.
 */
function runConverter(input: string, output: string, log: (line: string) => void): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [join(projectRoot, 'bin', 'rsn.js'), 'convert', input, output, '--dtype', 'float32', '--force'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    const forward = (chunk: Buffer) => {
      for (const line of chunk.toString().split(/[\r\n]+/)) if (line.trim()) log(line.trim());
    };
    child.stdout.on('data', forward);
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      forward(chunk);
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code === 0) resolvePromise();
      else reject(new Error(`rsn convert ${input} ${output} failed (${signal ?? `exit ${code}`}): ${stderr.trim().split('\n').at(-1) ?? ''}`));
    });
  });
}

function converterFingerprint(): string {
  // The converter's folder and the lib modules that decide what it writes (reader, half floats, tensor list).
  const dir = join(projectRoot, 'weights-converter');
  const files = [...readdirSync(dir).filter((f) => f.endsWith('.ts')).sort().map((f) => join('weights-converter', f)), 'lib/safetensors.ts', 'lib/half.ts', 'lib/model/config.ts'];
  return sha256Hex(files.map((f) => `${f}\n${sha256Hex(readFileSync(join(projectRoot, f)))}`).join('\n'));
}

/** HF dir → converted dir under .cache/models (reused while unchanged); a converted dir as is. */
export async function prepareModel(modelDir: string, opts: { log?: (line: string) => void } = {}): Promise<PreparedModel> {
  const dir = fromRoot(modelDir);
  const problem = modelProblem(modelDir);
  if (problem) throw new Error(problem);
  let out = dir;
  if (!existsSync(join(dir, 'model.json'))) {
    // Only what the converter reads: editing a model card must not invalidate the conversion and every cached stage.
    const files = readdirSync(dir).filter((f) => /^(config\.json|tokenizer(_config)?\.json|.*\.safetensors|model\.safetensors\.index\.json)$/.test(f) && statSync(join(dir, f)).isFile()).sort();
    // The converter's own code is part of the key: a fixed or changed converter must not be served an old conversion.
    const stamp = sha256Hex(JSON.stringify({ converter: converterFingerprint(), files: files.map((f) => [f, statSync(join(dir, f)).size, statSync(join(dir, f)).mtimeMs]) }));
    out = join(projectRoot, '.cache', 'models', `${basename(dir)}-${stamp.slice(0, 10)}`);
    if (!existsSync(join(out, 'model.json'))) {
      const log = opts.log ?? console.log;
      log(`converting ${modelDir} → ${out}`);
      await runConverter(dir, out, log);
    }
  }
  return { source: modelDir, dir: out, hasTokenizer: existsSync(join(out, 'tokenizer.json')) };
}

/**
 * The relation data for a model: `data` when given, else the model's own `relations/` folder
 * (the organism ships its fact world there), else the paper's data/relations.
 */
export function dataDirFor(data: string, modelDir: string): string {
  if (data) return fromRoot(data);
  const own = join(fromRoot(modelDir), 'relations');
  return existsSync(own) ? own : join(projectRoot, 'data', 'relations');
}

export interface NotebookPipelineParams {
  model: string;
  data?: string;
  relations?: readonly string[];
  seed?: number;
  batchSize?: number;
  backend?: string;
  recordAttention?: boolean;
  /** A sharded run's work folder whose known facts and ranking are used; "" or absent = compute them. */
  clusterRun?: string;
  /** Where jobs run: the executor parameters (lib/notebook/params.ts); absent = here. */
  executor?: string;
  executorWork?: string;
  executorShards?: number;
  executorPartition?: string;
  executorGpus?: number;
  executorSbatchArgs?: string;
  quiet?: boolean;
}

/** Pipeline.open with notebook parameters: paths from the project root, shared stage cache. */
export async function openPipeline(p: NotebookPipelineParams): Promise<Pipeline> {
  const model = await prepareModel(p.model);
  const run: RunOptions = { batchSize: p.batchSize, quiet: p.quiet };
  return Pipeline.open({
    modelDir: model.dir,
    dataDir: dataDirFor(p.data ?? '', p.model),
    cacheDir: readEnv('cache') ? fromRoot(readEnv('cache')!) : join(projectRoot, '.cache', 'pipeline'),
    relations: p.relations?.length ? p.relations : undefined,
    clusterRun: p.clusterRun ? fromRoot(p.clusterRun) : undefined,
    executor: p.executor ? executorSettings({ ...p, executor: p.executor, executorWork: p.executorWork ?? '', executorShards: p.executorShards ?? 1 }, projectRoot) : undefined,
    seed: p.seed,
    recordAttention: p.recordAttention,
    backend: p.backend || undefined,
    run,
    onCost: (r) => recordCost(r),
    log: (l) => console.log(l),
  });
}
