/**
 * `rsn`: the project's command line.
 *   rsn convert <hf-dir> <out-dir> [--dtype float16|float32] [--force]
 *   rsn generate --model DIR (--prompt TEXT | --ids 1,5,9) [--max-new-tokens N] [--no-bos] [--backend NAME]
 *   rsn logits --model DIR --ids 1,5,9 [--backend NAME]
 */
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { LlamaModel } from '../lib/model/llama.ts';
import { convertCli } from '../weights-converter/cli.ts';

const USAGE = `usage:
  rsn convert <hf-dir> <out-dir> [--dtype float16|float32] [--force]
      Convert a Hugging Face Llama checkpoint (safetensors, fp32/fp16/bf16, sharded or not)
      into the project's TF.js format.
  rsn generate --model DIR (--prompt TEXT | --ids 1,5,9) [--max-new-tokens N] [--no-bos] [--backend NAME]
      Greedy generation; prints the new tokens (id and piece) and the text.
  rsn logits --model DIR --ids 1,5,9 [--backend NAME]
      Prints the last position's logits as JSON: {"logits":[...]}.

Backends: tensorflow-gpu, tensorflow, wasm, cpu (default: the first that works; env RSN_BACKEND).`;

class UsageError extends Error {}

function opt(values: Record<string, unknown>, name: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`missing --${name}`);
  return v;
}

function parseIds(raw: string): number[] {
  return raw.split(',').map((s) => {
    const v = Number(s.trim());
    if (s.trim() === '' || !Number.isInteger(v) || v < 0) throw new UsageError(`--ids must be comma-separated token ids, got "${raw}"`);
    return v;
  });
}

async function generateCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: 'string' },
      prompt: { type: 'string' },
      ids: { type: 'string' },
      'max-new-tokens': { type: 'string', default: '8' },
      'no-bos': { type: 'boolean', default: false },
      backend: { type: 'string' },
    },
    strict: true,
  });
  const n = Number(values['max-new-tokens']);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--max-new-tokens must be a non-negative integer, got ${values['max-new-tokens']}`);
  if ((values.prompt === undefined) === (values.ids === undefined)) throw new UsageError('give exactly one of --prompt TEXT or --ids 1,5,9');
  const model = await LlamaModel.load(opt(values, 'model'), { backend: values.backend });
  try {
    const tok = model.tokenizer;
    let ids: number[];
    if (values.prompt !== undefined) {
      if (!tok) throw new UsageError(`${model.info.dir} has no tokenizer.json; pass token ids with --ids instead of --prompt`);
      ids = tok.encode(values.prompt, { addBos: !values['no-bos'] });
    } else {
      ids = parseIds(values.ids!);
    }
    const { tokens } = await model.generate([ids], { maxNewTokens: n });
    const out = tokens[0]!;
    const pieces = tok ? tok.pieces(out) : out.map(() => null);
    process.stdout.write(`prompt ids: ${ids.join(' ')}\n`);
    process.stdout.write(`new tokens: ${out.map((id, i) => (pieces[i] === null ? `${id}` : `${id}:${JSON.stringify(pieces[i])}`)).join(' ')}\n`);
    if (tok) process.stdout.write(`text: ${JSON.stringify(tok.decode(out))}\n`);
  } finally {
    model.dispose();
  }
  return 0;
}

async function logitsCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { model: { type: 'string' }, ids: { type: 'string' }, backend: { type: 'string' } },
    strict: true,
  });
  const ids = parseIds(opt(values, 'ids'));
  const model = await LlamaModel.load(opt(values, 'model'), { backend: values.backend });
  try {
    const r = await model.forward([ids], { logits: 'last' });
    process.stdout.write(JSON.stringify({ logits: Array.from(r.logits!.data) }) + '\n');
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
    if (e instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`error: ${err.message}\n\n${USAGE}\n`);
      return 2;
    }
    // Our own error classes carry complete messages; a stack trace would only bury them.
    const ours = ['CheckpointError', 'ConfigError', 'ShapeError', 'HookError', 'BackendError', 'OutOfMemoryError'].includes(err.name);
    process.stderr.write(`error: ${ours ? err.message : (err.stack ?? String(e))}\n`);
    return 1;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = await main(process.argv.slice(2));
}
