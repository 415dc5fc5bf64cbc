/**
 * Compiles lib/wasm-kernels/sgemm.c into a Node-API addon linked against the system's OpenBLAS. The
 * addon's file name holds a hash of the source and the compile command, so an edited source or
 * flag gives a new file and a stale build is never loaded. The compiler writes to a temporary
 * name that is renamed into place, so concurrent builds and a build killed halfway leave either
 * no addon or a whole one. Its sha256 is written beside it (`.sha256`) and checked before every
 * load: a damaged file (truncated, overwritten) would crash the process when loaded, so it is
 * removed and built again instead. Compiled with warnings as errors and the usual hardening
 * flags (fortified libc calls, stack protector, read-only relocations).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SOURCE = fileURLToPath(new URL('./sgemm.c', import.meta.url));
const BUILD_DIR = resolve(fileURLToPath(new URL('../..', import.meta.url)), '.cache', 'native');
const FLAGS = ['-O2', '-std=c11', '-shared', '-fPIC', '-Wall', '-Wextra', '-Werror', '-Wformat=2', '-D_FORTIFY_SOURCE=2', '-fstack-protector-strong', '-Wl,-z,relro,-z,now'];
const LIBS = ['-lopenblas', '-lm'];

/** Node's own headers (node_api.h) ship beside the binary: <prefix>/include/node. */
export function nodeIncludeDir(): string {
  return join(dirname(dirname(process.execPath)), 'include', 'node');
}

function compiler(): string {
  return process.env['CC']?.trim() || 'cc';
}

/** Where the addon for the current source and flags lives (it may not exist yet). */
export function addonPath(): string {
  const h = createHash('sha256').update(readFileSync(SOURCE)).update(JSON.stringify([compiler(), FLAGS, LIBS])).digest('hex');
  return join(BUILD_DIR, `sgemm-${h.slice(0, 16)}.node`);
}

export type AddonBuild = { ok: true; path: string; built: boolean } | { ok: false; reason: string };

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/**
 * Whether the addon at `path` is the file its build wrote (its digest file matches). A missing
 * or damaged pair is removed, so the next build starts clean.
 */
export function addonIntact(path: string): boolean {
  try {
    if (readFileSync(`${path}.sha256`, 'utf8').trim() === sha256File(path)) return true;
  } catch {
    // missing addon or digest: not intact
  }
  rmSync(path, { force: true });
  rmSync(`${path}.sha256`, { force: true });
  return false;
}

/** The addon, compiled now if it is missing. Never throws: a failure says why. */
export function ensureAddon(): AddonBuild {
  let path: string;
  try {
    path = addonPath();
  } catch (e) {
    return { ok: false, reason: `cannot read ${SOURCE}: ${(e as Error).message}` };
  }
  if (existsSync(path) && addonIntact(path)) return { ok: true, path, built: false };
  const include = nodeIncludeDir();
  if (!existsSync(join(include, 'node_api.h'))) return { ok: false, reason: `Node's headers are missing (no ${join(include, 'node_api.h')})` };
  mkdirSync(BUILD_DIR, { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  const r = spawnSync(compiler(), [...FLAGS, `-I${include}`, SOURCE, '-o', tmp, ...LIBS], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    rmSync(tmp, { force: true });
    const out = `${r.stderr ?? ''}${r.stdout ?? ''}`;
    const why = r.error
      ? `the C compiler "${compiler()}" could not be run (${r.error.message})`
      : /cannot find -lopenblas|lopenblas: No such file/.test(out)
        ? 'OpenBLAS is not installed (Debian: apt-get install libopenblas-dev)'
        : `the compile failed: ${out.trim().split('\n').slice(0, 3).join(' ')}`;
    return { ok: false, reason: why };
  }
  // The digest first: an addon in place is always one whose digest can be checked.
  writeFileSync(`${path}.sha256.${process.pid}.tmp`, `${sha256File(tmp)}\n`);
  renameSync(`${path}.sha256.${process.pid}.tmp`, `${path}.sha256`);
  renameSync(tmp, path);
  return { ok: true, path, built: true };
}
