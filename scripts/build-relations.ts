/**
 * Build data/relations/ (the paper's 12 relations, their default splits, README and the LRE
 * licence) from a copy of the LRE data.
 *
 *   npx tsx scripts/build-relations.ts <lre-dir> [--out data/relations] [--seed 0] [--eval-triples 50]
 *
 * <lre-dir> holds factual/*.json and SOURCE.md (e.g. test/fixtures/lre, the project's copy). The output is
 * deterministic: rebuilding from the same input gives byte-identical files.
 */

import { join, resolve } from 'node:path';
import { parseCommandLine, UsageError } from '../lib/cli-args.ts';
import { writeFileAtomic } from '../lib/data/io.ts';
import { buildPaperRelations } from '../lib/data/lre.ts';
import { DataError } from '../lib/data/relation.ts';

const USAGE = 'usage: tsx scripts/build-relations.ts <lre-dir> [--out data/relations] [--seed 0] [--eval-triples 50]';

function parseBuildArgs(argv: string[]): { lreDir: string; out: string; seed: number; evalTriples: number } | null {
  const { values, positionals } = parseCommandLine(
    argv,
    { out: { type: 'string', default: 'data/relations' }, seed: { type: 'string', default: '0' }, 'eval-triples': { type: 'string', default: '50' }, help: { type: 'boolean', short: 'h' } },
    true,
  );
  if (values.help) return null;
  const int = (flag: string, v: string): number => {
    if (!/^\d+$/.test(v)) throw new UsageError(`${flag}: expected a non-negative integer, found ${v === '' ? 'nothing' : v}`);
    return Number(v);
  };
  if (positionals.length > 1) throw new UsageError(`unexpected argument ${positionals[1]}`);
  const [lreDir] = positionals;
  if (lreDir === undefined) throw new UsageError('missing <lre-dir>');
  return { lreDir, out: values.out, seed: int('--seed', values.seed), evalTriples: int('--eval-triples', values['eval-triples']) };
}

function main(): void {
  const args = parseBuildArgs(process.argv.slice(2));
  if (args === null) {
    console.log(USAGE);
    return;
  }
  const built = buildPaperRelations(resolve(args.lreDir), { seed: args.seed, evalTriples: args.evalTriples });
  for (const [rel, content] of built.files) writeFileAtomic(join(args.out, rel), content);
  for (const r of built.relations) {
    console.log(`${r.name.padEnd(24)} rows ${String(r.samples).padStart(4)}  eval ${r.evaluation}  det ${String(r.detection).padStart(4)}  templates ${r.templates}+${r.eva2Templates}`);
  }
  console.log(`wrote ${built.files.size} files to ${args.out}`);
}

try {
  main();
} catch (err) {
  console.error(err instanceof UsageError ? `${err.message}\n${USAGE}` : err instanceof DataError || err instanceof Error ? err.message : String(err));
  process.exit(1);
}
