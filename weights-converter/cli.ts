/**
 * `rsn convert <hf-dir> <out-dir> [--dtype float16|float32] [--force] [--shard-mb N] [--quiet]`
 *
 * Called by the dispatcher in cli/rsn.ts as `convertCli(argv.slice(1))`. Progress goes to
 * stderr (a \r bar on a TTY, a line every 10 % otherwise), the summary to stdout. Returns the
 * exit code: 0 on success, 1 on any error (printed as `error: <message>`), 2 on a usage error
 * (bad arguments; like cli/rsn.ts), 128 + the signal number when interrupted by SIGINT (130),
 * SIGTERM (143) or SIGHUP (129); the temp dir is removed first.
 */
import { constants } from 'node:os';
import { pathToFileURL } from 'node:url';
import { parseCommandLine, UsageError } from '../lib/cli-args.ts';
import { BackendError, CheckpointError, ConfigError, HookError, OutOfMemoryError, ShapeError } from '../lib/errors.ts';
import { parseDecimalNumber } from '../lib/numbers.ts';
import { formatBytes, Progress } from '../lib/progress.ts';
import type { ProgressStream } from '../lib/progress.ts';
import { convertCheckpoint, DEFAULT_SHARD_BYTES } from './convert.ts';
import type { StorageDtype } from './convert.ts';

export const CONVERT_USAGE = `usage: rsn convert <hf-dir> <out-dir> [--dtype float16|float32] [--force] [--shard-mb N] [--quiet]

Convert a Hugging Face Llama checkpoint (config.json + model.safetensors, or
model.safetensors.index.json + shards; F32, F16 or BF16) into the project's TF.js weights format.

  --dtype float32|float16  storage dtype of the weight shards (default float32; float16 halves
                           the size, values are rounded to nearest-even half precision)
  --force                  replace <out-dir> if it exists and is not empty (only after success)
  --shard-mb N             maximum shard file size in MiB (default ${DEFAULT_SHARD_BYTES / 1024 / 1024})
  --quiet                  no progress bar
  -h, --help               show this help`;

/** Signals that stop a conversion cleanly (SIGKILL cannot be caught; the next run cleans up after it). */
const INTERRUPT_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

interface CliIo {
  stdout: ProgressStream;
  stderr: ProgressStream;
}

interface ParsedArgs {
  help: boolean;
  inputDir: string;
  outputDir: string;
  dtype: StorageDtype;
  force: boolean;
  shardBytes: number;
  quiet: boolean;
}

function parseConvertArgs(args: string[]): ParsedArgs {
  const { values, positionals } = parseCommandLine(
    args,
    {
      dtype: { type: 'string', default: 'float32' },
      force: { type: 'boolean', short: 'f', default: false },
      'shard-mb': { type: 'string' },
      quiet: { type: 'boolean', short: 'q', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    true,
  );
  const dtype = values.dtype;
  if (dtype !== 'float32' && dtype !== 'float16') throw new UsageError(`--dtype must be float32 or float16, found ${JSON.stringify(dtype)}`);
  let shardBytes = DEFAULT_SHARD_BYTES;
  const shardText = values['shard-mb'];
  if (shardText !== undefined) {
    let v: number;
    try {
      v = parseDecimalNumber(shardText, '--shard-mb');
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    if (v <= 0) throw new UsageError(`--shard-mb must be a positive number of MiB, found ${shardText}`);
    shardBytes = Math.max(1, Math.round(v * 1024 * 1024));
  }
  const { force, quiet, help } = values;
  if (help) return { help, inputDir: '', outputDir: '', dtype, force, shardBytes, quiet };
  if (positionals.length !== 2) {
    throw new UsageError(`expected <hf-dir> and <out-dir>, found ${positionals.length} argument${positionals.length === 1 ? '' : 's'}`);
  }
  return { help, inputDir: positionals[0]!, outputDir: positionals[1]!, dtype, force, shardBytes, quiet };
}

/** Errors whose message is the whole story (no stack trace needed). */
function isExpectedError(e: unknown): e is Error {
  if (
    e instanceof CheckpointError ||
    e instanceof ConfigError ||
    e instanceof ShapeError ||
    e instanceof HookError ||
    e instanceof BackendError ||
    e instanceof OutOfMemoryError ||
    e instanceof UsageError
  ) {
    return true;
  }
  // System errors (ENOSPC, EACCES, …) carry a code and a clear message.
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string' && (e as NodeJS.ErrnoException).code !== 'ERR_INTERNAL_ASSERTION';
}

export async function convertCli(args: string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let parsed: ParsedArgs;
  try {
    parsed = parseConvertArgs(args);
  } catch (e) {
    io.stderr.write(`error: ${(e as Error).message}\n${CONVERT_USAGE}\n`);
    return 2;
  }
  if (parsed.help) {
    io.stdout.write(`${CONVERT_USAGE}\n`);
    return 0;
  }

  let progress: Progress | null = null;
  const abort = new AbortController();
  // Without handlers these signals end the process on the spot and leave the temp dir behind.
  // Each handler is `once`: a second signal of the same kind kills the process the default way,
  // so a cleanup that hangs can still be cut short.
  let caught: NodeJS.Signals | null = null;
  const handlers = new Map<NodeJS.Signals, () => void>();
  for (const sig of INTERRUPT_SIGNALS) {
    const onSignal = (): void => {
      caught ??= sig;
      abort.abort(new Error(`interrupted by ${sig}`));
    };
    handlers.set(sig, onSignal);
    process.once(sig, onSignal);
  }
  try {
    const report = await convertCheckpoint({
      inputDir: parsed.inputDir,
      outputDir: parsed.outputDir,
      dtype: parsed.dtype,
      force: parsed.force,
      shardBytes: parsed.shardBytes,
      signal: abort.signal,
      onLog: (message) => {
        io.stderr.write(`note: ${message}\n`);
      },
      onProgress: ({ bytesDone, bytesTotal, tensor }) => {
        progress ??= new Progress({ total: bytesTotal, unit: 'bytes', label: 'convert', stream: io.stderr, silent: parsed.quiet });
        progress.update(bytesDone, tensor);
      },
    });
    (progress as Progress | null)?.finish();
    const dtypes = report.sourceDtypes.join('/');
    io.stdout.write(
      `converted ${report.tensors} tensors (${dtypes} → ${report.storageDtype}) in ${report.seconds.toFixed(report.seconds < 10 ? 2 : 1)} s: ` +
        `read ${formatBytes(report.bytesRead)}, wrote ${formatBytes(report.bytesWritten)} to ${report.outputDir} ` +
        `(peak RSS ${formatBytes(report.peakRssBytes)})\n`,
    );
    return 0;
  } catch (e) {
    (progress as Progress | null)?.abort();
    if (caught !== null) {
      const sig: NodeJS.Signals = caught;
      io.stderr.write(`error: interrupted by ${sig}; no output was written and no temp dir was left\n`);
      return 128 + constants.signals[sig];
    }
    if (isExpectedError(e)) {
      io.stderr.write(`error: ${e.message}\n`);
    } else {
      const err = e instanceof Error ? e : new Error(String(e));
      io.stderr.write(`error: ${err.message}\n${err.stack ?? ''}\n`);
    }
    return 1;
  } finally {
    for (const [sig, onSignal] of handlers) process.removeListener(sig, onSignal);
  }
}

// Allow `tsx weights-converter/cli.ts <hf-dir> <out-dir> …` directly as well.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  void convertCli(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
