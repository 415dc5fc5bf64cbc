/**
 * Where and when a measurement was taken, for the result files that benchmarks and timed runs
 * write: the docs' tables are rendered from those files (scripts/docs-tables.ts), so every
 * number shown comes with its date, machine, load and versions.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem, availableParallelism, release } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const MEASUREMENT_SCHEMA = 'rsn-measurement/1';

const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..');

export interface MeasurementContext {
  /** When the measurement ended (ISO 8601). */
  date: string;
  machine: { cpu: string; cores: number; memoryGiB: number; os: string };
  /** One-minute load average before and after (after counts the measured work itself): other work sharing the cores shows in `before`. */
  load: { before: number; after: number };
  versions: { node: string; commit: string; packages: Record<string, string> };
}

function packageVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(join(ROOT, 'node_modules', ...name.split('/'), 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'absent';
  }
}

function commit(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    // Changes to the code that measures, not to docs or result files, make a measurement "+changes".
    const code = ['lib', 'scripts', 'bench', 'cli', 'weights-converter', 'notebooks', 'package.json', 'package-lock.json'];
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', ...code], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty ? `${head}+changes` : head;
  } catch {
    return 'unknown';
  }
}

/** Call before measuring; `finish()` afterwards gives the context with the load after. */
export function startMeasurement(): { finish: () => MeasurementContext } {
  const before = loadavg()[0]!;
  return {
    finish: () => ({
      date: new Date().toISOString(),
      machine: { cpu: cpus()[0]?.model.trim() ?? 'unknown', cores: availableParallelism(), memoryGiB: Math.round(totalmem() / 2 ** 30), os: `${process.platform} ${release()}` },
      load: { before: Number(before.toFixed(2)), after: Number(loadavg()[0]!.toFixed(2)) },
      versions: {
        node: process.version,
        commit: commit(),
        packages: Object.fromEntries(['@tensorflow/tfjs-core', '@tensorflow/tfjs-backend-wasm', 'tslab'].map((p) => [p, packageVersion(p)])),
      },
    }),
  };
}
