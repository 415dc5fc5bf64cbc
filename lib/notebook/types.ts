/**
 * Type declarations of lib/notebook/index.ts for the tslab kernel.
 *
 * tslab (TypeScript 5.0 inside, CommonJS output, rootDir = the notebook's folder) cannot compile
 * the lib itself: the lib is ESM with `.ts` import specifiers and uses import.meta. So the lib
 * runs through tsx (notebooks/rsn.ts) and tslab only needs its *types*: this emits .d.ts files
 * for the facade and everything it reaches into .cache/jupyter/types/, with the `.ts`
 * extensions of relative specifiers dropped (tslab resolves like Node 10). Declaration files
 * are not emitted by tslab, so their living outside the notebook folder is fine.
 *
 * Rebuilt only when a source file changed (a stamp of paths, sizes and mtimes), so callers can
 * run it before every notebook run; a rebuild takes a few seconds.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { sha256Hex, writeFileAtomic } from '../data/io.ts';
import { jupyterDir, projectRoot } from './paths.ts';

export const typesDir = join(jupyterDir, 'types');
const STAMP = '.stamp';
/** Folders whose .ts files the facade can reach. */
const SOURCE_DIRS = ['lib', 'weights-converter'];

function listTs(dir: string, out: string[]): string[] {
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) listTs(p, out);
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

function sourceStamp(): string {
  const files = SOURCE_DIRS.flatMap((d) => listTs(join(projectRoot, d), [])).sort();
  const tsVersion = (JSON.parse(readFileSync(join(projectRoot, 'node_modules', 'typescript', 'package.json'), 'utf8')) as { version: string }).version;
  return sha256Hex(JSON.stringify([tsVersion, files.map((f) => { const s = statSync(f); return [relative(projectRoot, f), s.size, s.mtimeMs]; })]));
}

export function typesUpToDate(): boolean {
  const f = join(typesDir, STAMP);
  return existsSync(f) && readFileSync(f, 'utf8').trim() === sourceStamp();
}

/** `from './x.ts'` / `import('./x.ts')` → without the extension, for Node-10 resolution. */
export function stripTsExtensions(dts: string): string {
  return dts.replace(/((?:from|import)\s*\(?\s*)(['"])(\.{1,2}\/[^'"]*?)\.ts\2/g, '$1$2$3$2');
}

export interface TypesResult {
  built: boolean;
  ms: number;
  dir: string;
  /** Declaration-emit problems (the lib's own type errors are `npm run typecheck`'s job). */
  problems: string[];
}

export async function ensureNotebookTypes(opts: { force?: boolean; log?: (line: string) => void } = {}): Promise<TypesResult> {
  const t0 = performance.now();
  if (!opts.force && typesUpToDate()) return { built: false, ms: performance.now() - t0, dir: typesDir, problems: [] };
  const stamp = sourceStamp();
  // typescript is CommonJS; a dynamic import keeps it off the load path when types are fresh.
  const ts = (await import('typescript')).default;
  // Emit into a sibling folder (same depth, so relative paths hold) and swap it in at the end:
  // a kernel or another run reading the types never sees a half-written tree.
  const building = `${typesDir}.tmp-${process.pid}`;
  rmSync(building, { recursive: true, force: true });
  mkdirSync(building, { recursive: true });
  const options: import('typescript').CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    esModuleInterop: true,
    skipLibCheck: true,
    allowImportingTsExtensions: true,
    resolveJsonModule: true,
    declaration: true,
    emitDeclarationOnly: true,
    rootDir: projectRoot,
    outDir: building,
    types: ['node'],
    typeRoots: [join(projectRoot, 'node_modules', '@types')],
  };
  const program = ts.createProgram([join(projectRoot, 'lib', 'notebook', 'index.ts')], options);
  const problems: string[] = [];
  const node10: import('typescript').CompilerOptions = { moduleResolution: ts.ModuleResolutionKind.Node10, esModuleInterop: true };
  /**
   * A package that declares its types only under `exports` (danfojs, for one) is invisible to
   * tslab's Node-10 resolution; point such specifiers at the declaration file itself.
   */
  const retarget = (file: string, spec: string): string => {
    if (spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('node:')) return spec;
    if (ts.resolveModuleName(spec, file, node10, ts.sys).resolvedModule) return spec;
    const r = ts.resolveModuleName(spec, join(projectRoot, 'lib', 'notebook', 'index.ts'), options, ts.sys, undefined, undefined, ts.ModuleKind.ESNext).resolvedModule;
    if (!r || !/\.d\.[cm]?ts$/.test(r.resolvedFileName)) return spec;
    let rel = relative(dirname(file), r.resolvedFileName).replace(/\.d\.ts$/, '').replace(/\.d\.mts$/, '.mjs').replace(/\.d\.cts$/, '.cjs');
    if (!rel.startsWith('.')) rel = './' + rel;
    return rel;
  };
  const emitted = program.emit(undefined, (file, text) => {
    if (!file.endsWith('.d.ts')) return;
    const out = stripTsExtensions(text).replace(/((?:from|import)\s*\(?\s*)(['"])([^'"]+)\2/g, (_m, pre: string, q: string, spec: string) => `${pre}${q}${retarget(file, spec)}${q}`);
    writeFileAtomic(file, out);
  });
  for (const d of emitted.diagnostics) problems.push(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  if (!existsSync(join(building, 'lib', 'notebook', 'index.d.ts'))) {
    rmSync(building, { recursive: true, force: true });
    throw new Error(`declaration emit wrote no lib/notebook/index.d.ts: ${problems.join('; ') || 'no diagnostics'}`);
  }
  writeFileAtomic(join(building, STAMP), stamp + '\n');
  const old = `${typesDir}.old-${process.pid}`;
  if (existsSync(typesDir)) renameSync(typesDir, old);
  renameSync(building, typesDir);
  rmSync(old, { recursive: true, force: true });
  const ms = performance.now() - t0;
  opts.log?.(`notebook types: rebuilt in ${(ms / 1000).toFixed(1)} s → ${relative(projectRoot, typesDir)}`);
  return { built: true, ms, dir: typesDir, problems };
}
