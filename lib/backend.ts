/**
 * Picks the TF.js backend: tfjs-node-gpu → webgpu → tfjs-node → wasm → cpu, the first that
 * actually initialises. The native packages are optional dependencies that may be present in
 * node_modules without their libtensorflow (npm 11 does not run their install script unless it
 * is approved), so presence proves nothing: we import and run a tiny op to be sure.
 *
 * webgpu runs TF.js's WebGPU backend on Dawn's Node bindings (npm `webgpu`) over any Vulkan
 * driver. Chosen automatically only on a hardware adapter: Mesa's software adapter (llvmpipe)
 * computes exactly but several times slower than wasm, so it is used only when forced
 * (RSN_BACKEND=webgpu), as the tests do. WebGPU reports failures (a binding over the device's
 * limits, too many buffers, out of memory, a lost device) as events, not exceptions, and the
 * kernel that hit one silently produces nothing; every such event is collected here and turned
 * into a DeviceError by the call that caused it (checkDeviceErrors).
 */
import { readdirSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { envVarName, readEnv } from './env.ts';
import { BackendError, DeviceError } from './errors.ts';
import { registerRowGather } from './wasm-kernels/gather.ts';
import { enableWasmMatMul, type MatMulEngine } from './wasm-kernels/matmul.ts';
import { parseDecimalInteger } from './numbers.ts';

export type BackendName = 'tensorflow-gpu' | 'webgpu' | 'tensorflow' | 'wasm' | 'cpu';

export const BACKEND_ORDER: readonly BackendName[] = ['tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu'];

/** Environment variable that forces a backend (same names as BackendName, or the package aliases). */
export const BACKEND_ENV = envVarName('backend');

export interface BackendChoice {
  /** What we chose, in the project's names. */
  name: BackendName;
  /** The TF.js backend name actually active (`tensorflow`, `wasm`, `cpu`). */
  tfBackend: string;
  /** Why each backend before the chosen one was skipped. */
  skipped: { name: BackendName; reason: string }[];
  /** How the choice was made. */
  source: 'argument' | 'environment' | 'auto';
  /** The GPU adapter (webgpu only): vendor, architecture, device, driver description. */
  adapter?: AdapterDescription;
  /** The matrix product's engine (wasm only): OpenBLAS or TF.js's own kernel. */
  matMul?: MatMulEngine;
}

export interface AdapterDescription {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A CPU implementation of the API (Mesa's llvmpipe / lavapipe, SwiftShader). */
  software: boolean;
  /** The limits that decide which tensors a kernel can bind. */
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
}

const ALIASES: Record<string, BackendName> = {
  'tensorflow-gpu': 'tensorflow-gpu',
  'tfjs-node-gpu': 'tensorflow-gpu',
  'node-gpu': 'tensorflow-gpu',
  gpu: 'tensorflow-gpu',
  tensorflow: 'tensorflow',
  'tfjs-node': 'tensorflow',
  node: 'tensorflow',
  webgpu: 'webgpu',
  'tfjs-backend-webgpu': 'webgpu',
  dawn: 'webgpu',
  wasm: 'wasm',
  cpu: 'cpu',
};

/** Names people use for a backend that is not one: what they most likely meant. */
const NEAR_NAMES: Record<string, string> = {
  cuda: 'tensorflow-gpu (TF.js on CUDA)',
  nvidia: 'tensorflow-gpu (CUDA) or webgpu (Vulkan)',
  vulkan: 'webgpu (Dawn on Vulkan)',
  metal: 'webgpu',
  'wasm-simd': 'wasm',
  tfjs: 'tensorflow',
};

export function parseBackendName(value: string, origin: string): BackendName {
  const key = value.trim().toLowerCase();
  const name = ALIASES[key];
  if (!name) {
    const near = NEAR_NAMES[key];
    throw new BackendError(`${origin}: unknown backend "${value}"; expected one of ${BACKEND_ORDER.join(', ')}${near ? ` (for "${value}", try ${near})` : ''}`);
  }
  return name;
}

/** "gpu" names TF.js's CUDA binding; a user of the Vulkan path meant webgpu. */
function aliasHint(value: string | undefined): string {
  const key = value?.trim().toLowerCase();
  return key === 'gpu' || key === 'node-gpu' ? `; note: "${value}" means tensorflow-gpu (TF.js's CUDA binding, @tensorflow/tfjs-node-gpu); for the GPU through Vulkan use webgpu` : '';
}

let current: BackendChoice | null = null;
let pending: Promise<BackendChoice> | null = null;

/** Runs a small op so a backend that registers but cannot compute is caught here. */
async function smokeTest(): Promise<void> {
  const t = tf.tidy(() => tf.matMul(tf.ones([2, 3]), tf.ones([3, 2])));
  const v = await t.data();
  t.dispose();
  if (v[0] !== 3) throw new Error(`smoke test gave ${v[0]} instead of 3`);
}

async function tryNative(pkg: '@tensorflow/tfjs-node-gpu' | '@tensorflow/tfjs-node'): Promise<void> {
  // The native packages bundle their own copy of tfjs-core in some installs; importing them
  // registers the 'tensorflow' backend on the tfjs-core singleton that we share.
  await import(pkg);
  if (!tf.findBackendFactory('tensorflow')) throw new Error(`${pkg} loaded but registered no "tensorflow" backend`);
  if (!(await tf.setBackend('tensorflow'))) throw new Error('setBackend("tensorflow") failed');
  if (pkg === '@tensorflow/tfjs-node-gpu') {
    // tfjs-node-gpu silently runs on the CPU when CUDA is missing; only count it as a GPU
    // backend when TensorFlow sees a GPU device.
    const backend = tf.backend() as unknown as { binding?: { TF_Version?: string }; isUsingGpuDevice?: boolean };
    if (!backend.binding) throw new Error('tensorflow backend has no native binding');
    if (backend.isUsingGpuDevice !== true) throw new Error('tfjs-node-gpu loaded but TensorFlow sees no GPU (CUDA/cuDNN libraries missing from LD_LIBRARY_PATH, or a CPU-only libtensorflow; see docs/gpu-cuda.md)');
    if (process.env['CUDA_VISIBLE_DEVICES'] === '' || process.env['CUDA_VISIBLE_DEVICES'] === '-1') {
      throw new Error('CUDA_VISIBLE_DEVICES hides every GPU');
    }
  }
  await smokeTest();
}

// Dawn's GPU object must outlive every device made from it.
let dawnGpu: GPU | null = null;
const deviceErrors: string[] = [];

function describeAdapter(adapter: GPUAdapter): AdapterDescription {
  const info = (adapter as GPUAdapter & { info?: GPUAdapterInfo & { isFallbackAdapter?: boolean } }).info;
  const text = (v: unknown) => (typeof v === 'string' ? v : '');
  const d = {
    vendor: text(info?.vendor) || 'unknown vendor',
    architecture: text(info?.architecture),
    device: text(info?.device),
    description: text(info?.description),
  };
  const software = info?.isFallbackAdapter === true || /llvmpipe|lavapipe|swiftshader|software/i.test(`${d.architecture} ${d.device} ${d.description}`);
  return { ...d, software, maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize, maxBufferSize: adapter.limits.maxBufferSize };
}

export function adapterText(a: AdapterDescription): string {
  return [a.vendor, a.architecture, a.device, a.description].filter(Boolean).join(' · ') + (a.software ? ' (software)' : '');
}

/**
 * Device nodes of hardware GPUs (NVIDIA's driver, or a DRM render node for AMD, Intel and
 * virtual GPUs). Without one, Dawn can only find a software adapter, so auto mode does not load
 * it (Dawn also prints warnings to stderr on every start, which would land in every notebook).
 */
export function gpuDeviceNodes(): string[] {
  const found: string[] = [];
  for (const [dir, re] of [['/dev', /^nvidia\d+$/], ['/dev/dri', /^renderD\d+$/]] as const) {
    try {
      for (const f of readdirSync(dir)) if (re.test(f)) found.push(`${dir}/${f}`);
    } catch {
      // no such directory: no device of that kind
    }
  }
  return found;
}

async function tryWebgpu(auto: boolean): Promise<AdapterDescription> {
  if (auto && gpuDeviceNodes().length === 0) throw new Error(`no GPU device node (/dev/nvidia*, /dev/dri/renderD*); force the software adapter with ${BACKEND_ENV}=webgpu`);
  let dawn: { create: (flags: string[]) => GPU; globals: Record<string, unknown> };
  try {
    // A specifier in a variable: the package is optional, so the type check must not need it.
    const pkg = 'webgpu';
    dawn = (await import(pkg)) as typeof dawn;
  } catch (e) {
    throw new Error(`the optional package "webgpu" (Dawn for Node) is not installed or does not load here (${firstLine(e)})`);
  }
  // TF.js reads GPUBufferUsage & co. and navigator.gpu as globals, at import time.
  Object.assign(globalThis, dawn.globals);
  dawnGpu ??= dawn.create([]);
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (!nav) Object.defineProperty(globalThis, 'navigator', { value: { gpu: dawnGpu }, configurable: true, writable: true });
  else if (!nav.gpu) Object.defineProperty(nav, 'gpu', { value: dawnGpu, configurable: true });
  const adapter = await dawnGpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    throw new Error('Dawn found no Vulkan adapter: install a Vulkan driver and loader (NVIDIA: libvulkan1 + the driver\'s Vulkan ICD; CPU: mesa-vulkan-drivers and libvulkan1 from bookworm-backports, see README "GPU")');
  }
  const described = describeAdapter(adapter);
  if (auto && described.software) throw new Error(`only a software adapter (${adapterText(described)}), slower than wasm; force it with ${BACKEND_ENV}=webgpu`);
  const backendPkg = '@tensorflow/tfjs-backend-webgpu';
  await import(backendPkg);
  if (!(await tf.setBackend('webgpu'))) throw new Error('setBackend("webgpu") failed');
  const device = (tf.backend() as unknown as { device?: GPUDevice }).device;
  if (!device) throw new Error('the webgpu backend exposes no device');
  device.addEventListener('uncapturederror', (e) => deviceErrors.push(`${(e as GPUUncapturedErrorEvent).error.constructor.name}: ${(e as GPUUncapturedErrorEvent).error.message}`));
  void device.lost.then((info) => deviceErrors.push(`device lost (${info.reason}): ${info.message}`));
  await smokeTest();
  checkDeviceErrors('the webgpu smoke test');
  return described;
}

/**
 * Throws a DeviceError naming `call` if the GPU device reported any error since the last check
 * (the errors are then forgotten, so the next call starts clean). A no-op on other backends.
 */
export function checkDeviceErrors(call: string): void {
  if (deviceErrors.length === 0) return;
  const errors = deviceErrors.splice(0);
  const first = errors[0]!.split('\n').map((l) => l.trim()).filter(Boolean);
  throw new DeviceError(
    `the GPU device reported ${errors.length} error${errors.length === 1 ? '' : 's'} during ${call}; its results are not valid. First: ${first.slice(0, 3).join(' ')}`,
    errors,
  );
}

/** Forget device errors raised before a call starts (e.g. by a call that threw for another reason). */
export function clearDeviceErrors(): void {
  deviceErrors.length = 0;
}

async function tryWasm(): Promise<MatMulEngine> {
  // In Node the package finds its .wasm files next to its own module; setWasmPaths would route
  // the load through fetch(), which cannot read plain file paths, so we leave it alone.
  // The Emscripten module installs process-wide uncaughtException/unhandledRejection handlers
  // that rethrow and print the whole minified module source; remove them so errors stay readable.
  const events = ['uncaughtException', 'unhandledRejection'];
  const emitter = process as NodeJS.EventEmitter;
  const before = new Map<string, Set<unknown>>(events.map((e) => [e, new Set<unknown>(emitter.listeners(e))]));
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    if (!(await tf.setBackend('wasm'))) throw new Error('setBackend("wasm") failed');
    // Worker threads load the addon the main thread has built.
    const matMul = enableWasmMatMul({ build: isMainThread });
    registerRowGather();
    await smokeTest();
    return matMul;
  } finally {
    for (const event of events) {
      for (const l of emitter.listeners(event)) {
        if (!before.get(event)!.has(l)) emitter.removeListener(event, l as (...args: unknown[]) => void);
      }
    }
  }
}

async function tryCpu(): Promise<void> {
  await import('@tensorflow/tfjs-backend-cpu');
  if (!(await tf.setBackend('cpu'))) throw new Error('setBackend("cpu") failed');
  await smokeTest();
}

async function tryBackend(name: BackendName, auto: boolean): Promise<{ adapter?: AdapterDescription; matMul?: MatMulEngine }> {
  switch (name) {
    case 'tensorflow-gpu':
      await tryNative('@tensorflow/tfjs-node-gpu');
      return {};
    case 'webgpu':
      return { adapter: await tryWebgpu(auto) };
    case 'tensorflow':
      await tryNative('@tensorflow/tfjs-node');
      return {};
    case 'wasm':
      return { matMul: await tryWasm() };
    case 'cpu':
      await tryCpu();
      return {};
  }
}

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n')[0]!.slice(0, 300);
}

export interface InitBackendOptions {
  /** Force this backend; overrides RSN_BACKEND. */
  backend?: BackendName | string;
  /** Where to log the choice (default: stderr). Pass null to stay silent. */
  log?: ((line: string) => void) | null;
}

/**
 * Initialise the backend once per process. A forced backend that fails raises BackendError
 * (silently falling back would make a GPU user's run take days without telling them).
 */
export async function initBackend(opts: InitBackendOptions = {}): Promise<BackendChoice> {
  const log = opts.log === undefined ? (l: string) => process.stderr.write(l + '\n') : opts.log;
  const envValue = readEnv('backend');
  let forced: BackendName | null = null;
  let source: BackendChoice['source'] = 'auto';
  if (opts.backend !== undefined) {
    forced = parseBackendName(opts.backend, 'backend argument');
    source = 'argument';
  } else if (envValue) {
    forced = parseBackendName(envValue, `${BACKEND_ENV}=${envValue}`);
    source = 'environment';
  }
  if (current) {
    if (forced && forced !== current.name) {
      throw new BackendError(
        `backend already initialised as "${current.name}" in this process; cannot switch to "${forced}" (restart the process/kernel)`,
      );
    }
    return current;
  }
  if (pending) return pending;
  // PROD silences TF.js's console banners (e.g. the cpu backend's "install tfjs-node" notice),
  // which would otherwise land in every notebook cell's output; we log our own choice below.
  tf.env().set('PROD', true);
  pending = (async () => {
    const skipped: BackendChoice['skipped'] = [];
    const candidates = forced ? [forced] : BACKEND_ORDER;
    for (const name of candidates) {
      try {
        const { adapter, matMul } = await tryBackend(name, !forced);
        current = { name, tfBackend: tf.getBackend(), skipped, source, ...(adapter ? { adapter } : {}), ...(matMul ? { matMul } : {}) };
        if (log) {
          const why = skipped.map((s) => `${s.name}: ${s.reason}`).join('; ');
          const on = adapter ? ` on ${adapterText(adapter)}` : '';
          const mm = matMul ? ` · matMul: ${matMul.detail}` : '';
          log(`[rsn] backend: ${name}${on} (${source === 'auto' ? 'auto' : `forced by ${source}`})${mm}${why ? ` — skipped ${why}` : ''}`);
        }
        return current;
      } catch (e) {
        // A setting the user forced that cannot be honoured (RSN_MATMUL=openblas) stops here.
        if (e instanceof BackendError) {
          pending = null;
          throw e;
        }
        skipped.push({ name, reason: firstLine(e) });
      }
    }
    pending = null;
    const detail = skipped.map((s) => `${s.name}: ${s.reason}`).join('; ');
    throw new BackendError(
      forced
        ? `backend "${forced}" (forced by ${source}) failed to initialise: ${detail}${aliasHint(opts.backend ?? envValue)}`
        : `no TF.js backend could be initialised: ${detail}`,
    );
  })();
  return pending;
}


/**
 * The largest tensor, in bytes, that one kernel can bind on the current backend: the adapter's
 * maxStorageBufferBindingSize on webgpu, unlimited elsewhere (RSN_MAX_BINDING_BYTES overrides).
 */
export function maxBindingBytes(): number {
  const env = readEnv('maxBindingBytes');
  if (env !== undefined) return parseDecimalInteger(env, envVarName('maxBindingBytes'), { min: 4 });
  return current?.adapter?.maxStorageBufferBindingSize ?? Infinity;
}

/**
 * The numeric engine as far as it reaches results, for cache, store and shard identities and
 * provenance: the backend, on wasm the matMul engine with OpenBLAS's version and CPU kernel, on
 * WebGPU the adapter. Two engines sum in different orders, so their results differ in the last
 * bits: results of different engines are never mixed without being told to.
 */
export function backendKey(choice: BackendChoice | null | undefined): string {
  if (!choice) return 'unknown';
  if (choice.matMul) return `${choice.name}+${choice.matMul.key}`;
  if (choice.adapter) return `${choice.name}+${[choice.adapter.vendor, choice.adapter.architecture, choice.adapter.device].filter(Boolean).join('/') || 'adapter'}`;
  return choice.name;
}

/** The backend chosen so far, or null before initBackend. */
export function currentBackend(): BackendChoice | null {
  return current;
}
