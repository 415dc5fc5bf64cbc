/**
 * Makes the wasm backend's matrix product run on OpenBLAS (lib/wasm-kernels/matmul.ts): installs
 * Debian's libopenblas-dev with apt-get when running as root (otherwise prints the command) and
 * compiles the addon lib/wasm-kernels/sgemm.c with the system C compiler against Node's own headers.
 * Without it the lab still runs, on TF.js's own wasm matMul, about 3× slower. Idempotent.
 *
 *   npx tsx scripts/native-setup.ts [--no-install]
 */
import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { parseScriptCommandLine } from '../lib/cli-args.ts';
import { ensureAddon } from '../lib/wasm-kernels/build.ts';

const PACKAGES = ['libopenblas-dev'];
const INSTALL_COMMAND = `apt-get install -y --no-install-recommends ${PACKAGES.join(' ')}`;

export interface NativeSetup {
  ok: boolean;
  message: string;
}

function aptInstall(log: (line: string) => void): boolean {
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!root || spawnSync('apt-get', ['--version']).status !== 0) return false;
  log(`OpenBLAS: installing ${PACKAGES.join(' ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const apt = (args: string[]) => spawnSync('apt-get', args, { stdio: ['ignore', 'inherit', 'inherit'], env }).status === 0;
  // A fresh machine's package lists may be missing or stale: update once if the first try fails.
  return apt(['install', '-y', '--no-install-recommends', ...PACKAGES]) || (apt(['update']) && apt(['install', '-y', '--no-install-recommends', ...PACKAGES]));
}

/** The addon built (installing OpenBLAS first when allowed and needed), or why not. */
export function ensureNativeMatMul(opts: { install?: boolean; log?: (line: string) => void } = {}): NativeSetup {
  const log = opts.log ?? ((l: string) => console.log(l));
  let r = ensureAddon();
  if (!r.ok && /OpenBLAS is not installed/.test(r.reason) && opts.install !== false && aptInstall(log)) r = ensureAddon();
  if (r.ok) return { ok: true, message: `OpenBLAS matMul: ${r.built ? 'built' : 'up to date'} (${r.path})` };
  const how = /OpenBLAS is not installed/.test(r.reason) ? ` As root on Debian: ${INSTALL_COMMAND}` : '';
  return { ok: false, message: `the OpenBLAS matMul is not available, so the wasm backend uses TF.js's own (about 3× slower): ${r.reason}.${how}` };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseScriptCommandLine(process.argv.slice(2), { 'no-install': { type: 'boolean', default: false } });
  const r = ensureNativeMatMul({ install: !values['no-install'] });
  (r.ok ? console.log : console.error)(r.message);
  process.exit(r.ok ? 0 : 1);
}
