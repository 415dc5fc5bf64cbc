/**
 * What the lab keeps under .cache/, and how to remove it.
 *
 *   npm run cache                        # list: each (model, data) folder, its entries and sizes
 *   npm run cache -- clear --activations # remove the kept activation stores only (rankings stay)
 *   npm run cache -- clear --models      # remove the notebooks' converted models (.cache/models)
 *   npm run cache -- clear --all         # remove every stage cache, store and converted model
 *
 * Everything here is recomputed on demand; nothing under .cache/ is user input.
 */
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseScriptCommandLine } from '../lib/cli-args.ts';
import { formatBytes } from '../lib/progress.ts';
import { projectRoot } from '../lib/notebook/paths.ts';

const pipelineDir = join(projectRoot, '.cache', 'pipeline');
const modelsDir = join(projectRoot, '.cache', 'models');

function sizeOf(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.size;
  return readdirSync(path).reduce((a, f) => a + sizeOf(join(path, f)), 0);
}

function kindOf(entry: string): string {
  return entry.replace(/-[0-9a-f]{16}(\.json)?$/, '');
}

function list(): void {
  for (const [title, dir] of [['stage caches', pipelineDir], ['converted models', modelsDir]] as const) {
    if (!existsSync(dir) || readdirSync(dir).length === 0) {
      console.log(`${title}: none (${dir})`);
      continue;
    }
    console.log(`${title} (${dir}):`);
    for (const sub of readdirSync(dir).sort()) {
      const path = join(dir, sub);
      console.log(`  ${sub}  ${formatBytes(sizeOf(path))}`);
      if (dir !== pipelineDir || !statSync(path).isDirectory()) continue;
      const byKind = new Map<string, { n: number; bytes: number }>();
      for (const e of readdirSync(path)) {
        const k = byKind.get(kindOf(e)) ?? { n: 0, bytes: 0 };
        byKind.set(kindOf(e), { n: k.n + 1, bytes: k.bytes + sizeOf(join(path, e)) });
      }
      for (const [kind, { n, bytes }] of [...byKind].sort()) console.log(`    ${kind.padEnd(14)} ${String(n).padStart(3)} × ${formatBytes(bytes)}`);
    }
  }
}

function clear(opts: { activations: boolean; models: boolean; all: boolean }): void {
  const removed: string[] = [];
  if (opts.all || opts.activations) {
    if (existsSync(pipelineDir)) {
      for (const sub of readdirSync(pipelineDir)) {
        const path = join(pipelineDir, sub);
        if (!statSync(path).isDirectory()) continue;
        for (const e of readdirSync(path)) if (e.startsWith('activations-')) removed.push(join(path, e));
      }
    }
  }
  if (opts.all) removed.push(pipelineDir);
  if (opts.all || opts.models) removed.push(modelsDir);
  let bytes = 0;
  for (const p of removed.filter(existsSync)) {
    bytes += sizeOf(p);
    rmSync(p, { recursive: true, force: true });
    console.log(`removed ${p}`);
  }
  console.log(`freed ${formatBytes(bytes)}`);
}

const USAGE = 'usage: npm run cache [-- list | -- clear (--activations | --models | --all)]';
const { positionals, values } = parseScriptCommandLine(
  process.argv.slice(2),
  { activations: { type: 'boolean', default: false }, models: { type: 'boolean', default: false }, all: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } },
  true,
  USAGE,
);
const command = positionals[0] ?? 'list';
if (values.help || !['list', 'clear'].includes(command) || positionals.length > 1) {
  console.log(USAGE);
  process.exit(values.help ? 0 : 2);
}
if (command === 'list') list();
else if (!values.activations && !values.models && !values.all) {
  console.error('error: clear needs --activations, --models or --all');
  process.exit(2);
} else clear(values);
