/**
 * Build data/relations/ (the paper's 12 relations, their default splits, README and the LRE
 * licence) from a copy of the LRE data.
 *
 *   npx tsx scripts/build-relations.ts <lre-dir> [--out data/relations] [--seed 0] [--eval-triples 50]
 *
 * <lre-dir> holds factual/*.json and SOURCE.md (e.g. ../shared/data/lre). The output is
 * deterministic: rebuilding from the same input gives byte-identical files.
 */

import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../lib/data/io.ts';
import { buildPaperRelations } from '../lib/data/lre.ts';
import { DataError } from '../lib/data/relation.ts';

const USAGE = 'usage: tsx scripts/build-relations.ts <lre-dir> [--out data/relations] [--seed 0] [--eval-triples 50]';

function parseArgs(argv: string[]): { lreDir: string; out: string; seed: number; evalTriples: number } {
  let lreDir: string | undefined;
  let out = 'data/relations';
  let seed = 0;
  let evalTriples = 50;
  const int = (flag: string, v: string | undefined): number => {
    if (v === undefined || !/^\d+$/.test(v)) throw new Error(`${flag}: expected a non-negative integer, found ${v ?? 'nothing'}\n${USAGE}`);
    return Number(v);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--out') {
      const v = argv[++i];
      if (v === undefined) throw new Error(`--out: expected a directory\n${USAGE}`);
      out = v;
    } else if (a === '--seed') seed = int(a, argv[++i]);
    else if (a === '--eval-triples') evalTriples = int(a, argv[++i]);
    else if (a === '-h' || a === '--help') {
      console.log(USAGE);
      process.exit(0);
    } else if (a.startsWith('-')) throw new Error(`unknown option ${a}\n${USAGE}`);
    else if (lreDir === undefined) lreDir = a;
    else throw new Error(`unexpected argument ${a}\n${USAGE}`);
  }
  if (lreDir === undefined) throw new Error(USAGE);
  return { lreDir, out, seed, evalTriples };
}

function main(): void {
  const args = parseArgs(process.argv.slice(2));
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
  console.error(err instanceof DataError || err instanceof Error ? err.message : String(err));
  process.exit(1);
}
