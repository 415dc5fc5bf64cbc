/**
 * `rsn`: the project's command line.
 *   rsn convert <hf-dir> <out-dir> [--dtype float16|float32] [--force] [--shard-mb N] [--quiet]
 *   rsn generate --model DIR (--prompt TEXT | --ids 1,5,9) [--max-new-tokens N] [--no-bos] [--backend NAME]
 *   rsn logits --model DIR --ids 1,5,9 [--backend NAME]
 *   rsn known | collect | merge | rank …   (the method's stages, shardable; see USAGE)
 */
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { parseCommandLine, UsageError } from '../lib/cli-args.ts';
import { ConfigError } from '../lib/errors.ts';
import { checkPositionLimit, type LlamaConfig, readLlamaConfig } from '../lib/model/config.ts';
import { ParallelModel } from '../lib/exec/parallel-model.ts';
import { WeightStore } from '../lib/model/weights.ts';
import { type NumberRange, parseDecimalInteger } from '../lib/numbers.ts';
import { convertCli } from '../weights-converter/cli.ts';
import { loadDataset } from '../lib/method/dataset.ts';
import { knownExpectation, readKnownFacts, runKnownStage } from '../lib/runs/known-shards.ts';
import { runCollectStage } from '../lib/runs/activation-shards.ts';
import { mergeShards } from '../lib/runs/merge-shards.ts';
import { runJobsShard } from '../lib/runs/job-shards.ts';
import { rankStoreDir, storeNeuronCount } from '../lib/runs/ranking-shards.ts';
import { parseShard, shardSlice, WHOLE, type ShardSpec } from '../lib/shard-spec.ts';

const USAGE = `usage:
  rsn convert <hf-dir> <out-dir> [--dtype float16|float32] [--force] [--shard-mb N] [--quiet]
      Convert a Hugging Face Llama checkpoint (safetensors, fp32/fp16/bf16, sharded or not)
      into the project's TF.js format.
  rsn generate --model DIR (--prompt TEXT | --ids 1,5,9) [--max-new-tokens N] [--no-bos] [--backend NAME]
      Greedy generation; prints the new tokens (id and piece) and the text.
  rsn logits --model DIR --ids 1,5,9 [--backend NAME]
      Prints the last position's logits as JSON: {"logits":[...]}.
  rsn verify --model DIR
      Reads every file of a converted model and checks it against the size and sha256 that
      model.json records (a load re-reads only files whose size or time changed).

The method's stages, each over a shard i/n (0 ≤ i < n; default 0/1, the whole stage), for
Slurm job arrays and Kubernetes Indexed Jobs (deploy/); merged, they give the bytes of one run:
  rsn known --model DIR --data DIR --out DIR [--shard i/n] [--relations a,b] [--seed N]
            [--batch-size N] [--max-new-tokens N] [--backend NAME] [--quiet]
      Known-facts filter (P^det) over a range of the detection prompts.
  rsn collect --model DIR --data DIR --known DIR --out DIR [--shard i/n] [--batch-size N]
            [--dtype float32|float16] [--no-bos] [--attention] [--backend NAME] [--quiet]
      Pooled activations of the identification set for a prompt range (resumes when re-run).
  rsn merge DIR... --out DIR [--allow-mixed-engines]
      Merge known-facts shards, activation shards or ranking parts (checked: same model, data,
      settings and numeric engine; every shard once, no gaps or overlaps). Shards computed on
      different engines (CPU kernel, matMul, GPU) merge only with --allow-mixed-engines.
  rsn evaluate --model DIR --jobs FILE --out DIR [--shard i/n] [--backend NAME] [--quiet]
      An experiment's jobs (a file from pipeline.writeJobs: prompts or sentences under
      ablations) over whole batches of the single run; rsn merge gives their results.
  rsn rank --store DIR --out DIR [--neurons a:b | --shard i/n] [--workers N]
      AP ranking of a merged store; a neuron range writes a part for \`rsn merge\`.

Backends: tensorflow-gpu, webgpu, tensorflow, wasm, cpu (default: the first that works; env RSN_BACKEND).`;

/** The run went through but its result cannot be printed truthfully. */
class OutputError extends Error {
  override name = 'OutputError';
}

function opt(values: Record<string, unknown>, name: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`missing --${name}`);
  return v;
}

/** A strict decimal integer argument; "0x10", "1e2", "" and "7.0" are refused rather than read as other numbers. */
function intArg(text: string, name: string, range: NumberRange): number {
  try {
    return parseDecimalInteger(text, name, range);
  } catch (e) {
    if (e instanceof ConfigError) throw new UsageError(e.message);
    throw e;
  }
}

function parseIds(raw: string): number[] {
  return raw.split(',').map((s, i) => {
    try {
      // Spaces after the commas are harmless ("1, 5, 9"); anything but decimal digits is not.
      return parseDecimalInteger(s.trim(), `--ids item ${i + 1}`, { min: 0 });
    } catch (e) {
      if (e instanceof ConfigError) throw new UsageError(`--ids must be comma-separated token ids (decimal integers ≥ 0), got ${JSON.stringify(raw)}: ${e.message}`);
      throw e;
    }
  });
}

/**
 * Checks token ids and lengths against the model's config.json before the weights are read:
 * a 7B model takes minutes to load only to refuse the call.
 */
function checkAgainstConfig(config: LlamaConfig, configFile: string, ids: number[] | null, maxNewTokens: number, what = '--ids'): void {
  if (ids) {
    const bad = ids.find((id) => id >= config.vocabSize);
    if (bad !== undefined) throw new UsageError(`${what}: token id ${bad} is not below vocab_size ${config.vocabSize} (${configFile})`, false);
  }
  try {
    // A prompt has at least one token, so the limit also bounds --max-new-tokens alone.
    checkPositionLimit(config, ids?.length ?? 1, maxNewTokens, configFile);
  } catch (e) {
    if (e instanceof ConfigError) throw new UsageError(e.message, false);
    throw e;
  }
}

async function generateCommand(args: string[]): Promise<number> {
  const { values } = parseCommandLine(args, {
    model: { type: 'string' },
    prompt: { type: 'string' },
    ids: { type: 'string' },
    'max-new-tokens': { type: 'string', default: '8' },
    'no-bos': { type: 'boolean', default: false },
    backend: { type: 'string' },
  });
  const n = intArg(values['max-new-tokens']!, '--max-new-tokens', { min: 0 });
  if ((values.prompt === undefined) === (values.ids === undefined)) throw new UsageError('give exactly one of --prompt TEXT or --ids 1,5,9');
  const dir = opt(values, 'model');
  const ids = values.ids === undefined ? null : parseIds(values.ids);
  const configFile = join(dir, 'config.json');
  const config = readLlamaConfig(configFile);
  checkAgainstConfig(config, configFile, ids, n);
  const model = await ParallelModel.load(dir, { backend: values.backend });
  try {
    const tok = model.tokenizer;
    let prompt: number[];
    if (ids === null) {
      if (!tok) throw new UsageError(`${dir} has no tokenizer.json; pass token ids with --ids instead of --prompt`);
      prompt = tok.encode(values.prompt!, { addBos: !values['no-bos'] });
      checkAgainstConfig(config, configFile, prompt, n, 'the tokenized --prompt');
    } else {
      prompt = ids;
    }
    const { tokens } = await model.generate([prompt], { maxNewTokens: n });
    const out = tokens[0]!;
    const pieces = tok ? tok.pieces(out) : out.map(() => null);
    process.stdout.write(`prompt ids: ${prompt.join(' ')}\n`);
    process.stdout.write(`new tokens: ${out.map((id, i) => (pieces[i] === null ? `${id}` : `${id}:${JSON.stringify(pieces[i])}`)).join(' ')}\n`);
    if (tok) process.stdout.write(`text: ${JSON.stringify(tok.decode(out))}\n`);
  } finally {
    model.dispose();
  }
  return 0;
}

async function logitsCommand(args: string[]): Promise<number> {
  const { values } = parseCommandLine(args, { model: { type: 'string' }, ids: { type: 'string' }, backend: { type: 'string' } });
  const ids = parseIds(opt(values, 'ids'));
  const dir = opt(values, 'model');
  const configFile = join(dir, 'config.json');
  checkAgainstConfig(readLlamaConfig(configFile), configFile, ids, 0);
  const model = await ParallelModel.load(dir, { backend: values.backend });
  try {
    const r = await model.forward([ids], { logits: 'last' });
    const logits = r.logits!.data;
    // JSON has no NaN or Infinity: they would print as null, which reads like a valid answer.
    const bad = logits.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) throw new OutputError(`the logits hold a non-finite value (${logits[bad]} for token ${bad}); the weights are finite, so the activations overflowed float32`);
    process.stdout.write(JSON.stringify({ logits: Array.from(logits) }) + '\n');
  } finally {
    model.dispose();
  }
  return 0;
}


function shardArg(values: Record<string, unknown>): ShardSpec {
  const v = values['shard'];
  if (v === undefined) return WHOLE;
  try {
    return parseShard(String(v));
  } catch (e) {
    if (e instanceof ConfigError) throw new UsageError(e.message, false);
    throw e;
  }
}

function optionalInt(values: Record<string, unknown>, name: string, range: NumberRange): number | undefined {
  const v = values[name];
  return v === undefined ? undefined : intArg(String(v), `--${name}`, range);
}

const stderrLog = (line: string) => process.stderr.write(line + '\n');

async function knownCommand(args: string[]): Promise<number> {
  const { values } = parseCommandLine(args, {
    model: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' }, shard: { type: 'string' },
    relations: { type: 'string' }, seed: { type: 'string' }, 'batch-size': { type: 'string' }, 'max-new-tokens': { type: 'string' },
    backend: { type: 'string' }, quiet: { type: 'boolean', default: false },
  });
  const shard = shardArg(values);
  const out = opt(values, 'out');
  const seed = optionalInt(values, 'seed', { min: 0 }) ?? 0;
  const run = { batchSize: optionalInt(values, 'batch-size', { min: 1 }), maxNewTokens: optionalInt(values, 'max-new-tokens', { min: 1 }), quiet: values.quiet };
  const dataset = loadDataset(opt(values, 'data'), { seed, relations: values.relations?.split(',') });
  const model = await ParallelModel.load(opt(values, 'model'), { backend: values.backend });
  try {
    await runKnownStage(model, dataset, shard, out, run, stderrLog);
  } finally {
    model.dispose();
  }
  return 0;
}

async function collectCommand(args: string[]): Promise<number> {
  const { values } = parseCommandLine(args, {
    model: { type: 'string' }, data: { type: 'string' }, known: { type: 'string' }, out: { type: 'string' }, shard: { type: 'string' },
    'batch-size': { type: 'string' }, dtype: { type: 'string', default: 'float32' }, 'no-bos': { type: 'boolean', default: false },
    attention: { type: 'boolean', default: false }, backend: { type: 'string' }, quiet: { type: 'boolean', default: false },
  });
  const shard = shardArg(values);
  const out = opt(values, 'out');
  const dtype = values.dtype;
  if (dtype !== 'float32' && dtype !== 'float16') throw new UsageError(`--dtype must be float32 or float16, got ${JSON.stringify(dtype)}`, false);
  const batchSize = optionalInt(values, 'batch-size', { min: 1 });
  // The relations and seed are the known facts' own: the identification set is built from them.
  const knownDir = opt(values, 'known');
  const known = readKnownFacts(knownDir);
  const dataset = loadDataset(opt(values, 'data'), { seed: known.settings.seed, relations: known.settings.relations });
  const model = await ParallelModel.load(opt(values, 'model'), { backend: values.backend });
  try {
    readKnownFacts(knownDir, knownExpectation(model, dataset));
    await runCollectStage(model, dataset, known, shard, out, { seed: known.settings.seed, recordAttention: values.attention, includeBos: !values['no-bos'], dtype, batchSize, quiet: values.quiet, log: stderrLog });
  } finally {
    model.dispose();
  }
  return 0;
}

async function mergeCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, { out: { type: 'string' }, 'allow-mixed-engines': { type: 'boolean' } }, true);
  const out = opt(values, 'out');
  if (positionals.length === 0) throw new UsageError('give the shard directories to merge: rsn merge DIR... --out DIR [--allow-mixed-engines]');
  await mergeShards(positionals, out, stderrLog, { allowMixedEngines: values['allow-mixed-engines'] === true });
  return 0;
}

function neuronRangeArg(text: string): [number, number] {
  const m = /^(\d+):(\d+)$/.exec(text);
  if (!m || Number(m[1]) >= Number(m[2])) throw new UsageError(`--neurons = ${JSON.stringify(text)}: expected a:b with a < b (neuron indices, end exclusive), e.g. 0:1024`, false);
  return [Number(m[1]), Number(m[2])];
}

async function evaluateCommand(args: string[]): Promise<number> {
  const { values } = parseCommandLine(args, { model: { type: 'string' }, jobs: { type: 'string' }, out: { type: 'string' }, shard: { type: 'string' }, backend: { type: 'string' }, quiet: { type: 'boolean' } });
  const jobs = opt(values, 'jobs');
  const out = opt(values, 'out');
  const shard = shardArg(values);
  const model = await ParallelModel.load(opt(values, 'model'), { backend: values.backend, log: stderrLog });
  try {
    await runJobsShard(model, jobs, shard, out, { quiet: values.quiet === true, log: stderrLog });
  } finally {
    model.dispose();
  }
  return 0;
}

async function verifyCommand(args: string[]): Promise<number> {
  const { values } = parseCommandLine(args, { model: { type: 'string' } });
  const store = new WeightStore(opt(values, 'model'), { verify: 'full' });
  const files = Object.entries(store.digests);
  const bytes = files.reduce((a, [, d]) => a + d.size, 0);
  const recorded = store.manifest.files ? 'every file matches the size and sha256 model.json records' : 'model.json records no digests (converted before they existed): hashed, nothing to compare; convert again to record them';
  process.stdout.write(`${files.length} files, ${(bytes / 1e6).toFixed(1)} MB: ${recorded}\nmodel identity: ${store.contentSha256}\n`);
  return 0;
}

async function rankCommand(args: string[]): Promise<number> {
  const { values } = parseCommandLine(args, { store: { type: 'string' }, out: { type: 'string' }, neurons: { type: 'string' }, shard: { type: 'string' }, workers: { type: 'string' } });
  const store = opt(values, 'store');
  const out = opt(values, 'out');
  if (values.neurons !== undefined && values.shard !== undefined) throw new UsageError('give at most one of --neurons a:b and --shard i/n');
  let neurons: [number, number] | undefined;
  if (values.neurons !== undefined) neurons = neuronRangeArg(values.neurons);
  else if (values.shard !== undefined) neurons = shardSlice(storeNeuronCount(store), shardArg(values));
  await rankStoreDir(store, out, { neurons, workers: optionalInt(values, 'workers', { min: 0 }), log: stderrLog });
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'convert':
        return await convertCli(rest);
      case 'generate':
        return await generateCommand(rest);
      case 'logits':
        return await logitsCommand(rest);
      case 'known':
        return await knownCommand(rest);
      case 'collect':
        return await collectCommand(rest);
      case 'merge':
        return await mergeCommand(rest);
      case 'rank':
        return await rankCommand(rest);
      case 'verify':
        return await verifyCommand(rest);
      case 'evaluate':
        return await evaluateCommand(rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(USAGE + '\n');
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (e) {
    const err = e as Error;
    if (e instanceof UsageError) {
      process.stderr.write(`error: ${err.message}\n${e.showUsage ? `\n${USAGE}\n` : ''}`);
      return 2;
    }
    // Our own error classes carry complete messages; a stack trace would only bury them.
    const ours = ['CheckpointError', 'ConfigError', 'DataError', 'ShapeError', 'HookError', 'BackendError', 'OutOfMemoryError', 'OutputError', 'DeviceError'].includes(err.name);
    process.stderr.write(`error: ${ours ? err.message : (err.stack ?? String(e))}\n`);
    return 1;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = await main(process.argv.slice(2));
}
