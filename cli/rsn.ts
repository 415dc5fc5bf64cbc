/**
 * `rsn`: the project's command line.
 *   rsn convert <hf-dir> <out-dir> [--dtype float16|float32] [--force] [--shard-mb N] [--quiet]
 *   rsn generate --model DIR (--prompt TEXT | --ids 1,5,9) [--max-new-tokens N] [--no-bos] [--backend NAME]
 *   rsn logits --model DIR --ids 1,5,9 [--backend NAME]
 */
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { parseCommandLine, UsageError } from '../lib/cli-args.ts';
import { ConfigError } from '../lib/errors.ts';
import { checkPositionLimit, type LlamaConfig, readLlamaConfig } from '../lib/model/config.ts';
import { LlamaModel } from '../lib/model/llama.ts';
import { type NumberRange, parseDecimalInteger } from '../lib/numbers.ts';
import { convertCli } from '../weights-converter/cli.ts';

const USAGE = `usage:
  rsn convert <hf-dir> <out-dir> [--dtype float16|float32] [--force] [--shard-mb N] [--quiet]
      Convert a Hugging Face Llama checkpoint (safetensors, fp32/fp16/bf16, sharded or not)
      into the project's TF.js format.
  rsn generate --model DIR (--prompt TEXT | --ids 1,5,9) [--max-new-tokens N] [--no-bos] [--backend NAME]
      Greedy generation; prints the new tokens (id and piece) and the text.
  rsn logits --model DIR --ids 1,5,9 [--backend NAME]
      Prints the last position's logits as JSON: {"logits":[...]}.

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
  const model = await LlamaModel.load(dir, { backend: values.backend });
  try {
    const tok = model.tokenizer;
    let prompt: number[];
    if (ids === null) {
      if (!tok) throw new UsageError(`${model.info.dir} has no tokenizer.json; pass token ids with --ids instead of --prompt`);
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
  const model = await LlamaModel.load(dir, { backend: values.backend });
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
    const ours = ['CheckpointError', 'ConfigError', 'ShapeError', 'HookError', 'BackendError', 'OutOfMemoryError', 'OutputError', 'DeviceError'].includes(err.name);
    process.stderr.write(`error: ${ours ? err.message : (err.stack ?? String(e))}\n`);
    return 1;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = await main(process.argv.slice(2));
}
