/**
 * Picks the TF.js backend: tfjs-node-gpu → tfjs-node → wasm → cpu, the first that actually
 * initialises. The native packages are optional dependencies that may be present in
 * node_modules without their libtensorflow (npm 11 does not run their install script unless it
 * is approved), so presence proves nothing: we import and run a tiny op to be sure.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BackendError } from './errors.ts';

export type BackendName = 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';

export const BACKEND_ORDER: readonly BackendName[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

/** Environment variable that forces a backend (same names as BackendName, or the package aliases). */
export const BACKEND_ENV = 'RSN_BACKEND';

export interface BackendChoice {
  /** What we chose, in the project's names. */
  name: BackendName;
  /** The TF.js backend name actually active (`tensorflow`, `wasm`, `cpu`). */
  tfBackend: string;
  /** Why each backend before the chosen one was skipped. */
  skipped: { name: BackendName; reason: string }[];
  /** How the choice was made. */
  source: 'argument' | 'environment' | 'auto';
}

const ALIASES: Record<string, BackendName> = {
  'tensorflow-gpu': 'tensorflow-gpu',
  'tfjs-node-gpu': 'tensorflow-gpu',
  'node-gpu': 'tensorflow-gpu',
  gpu: 'tensorflow-gpu',
  tensorflow: 'tensorflow',
  'tfjs-node': 'tensorflow',
  node: 'tensorflow',
  wasm: 'wasm',
  cpu: 'cpu',
};

export function parseBackendName(value: string, origin: string): BackendName {
  const name = ALIASES[value.trim().toLowerCase()];
  if (!name) {
    throw new BackendError(`${origin}: unknown backend "${value}"; expected one of ${BACKEND_ORDER.join(', ')}`);
  }
  return name;
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
    const backend = tf.backend() as unknown as { binding?: { TF_Version?: string } };
    if (!backend.binding) throw new Error('tensorflow backend has no native binding');
    if (process.env['CUDA_VISIBLE_DEVICES'] === '' || process.env['CUDA_VISIBLE_DEVICES'] === '-1') {
      throw new Error('CUDA_VISIBLE_DEVICES hides every GPU');
    }
  }
  await smokeTest();
}

async function tryWasm(): Promise<void> {
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
    await smokeTest();
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

async function tryBackend(name: BackendName): Promise<void> {
  switch (name) {
    case 'tensorflow-gpu':
      return tryNative('@tensorflow/tfjs-node-gpu');
    case 'tensorflow':
      return tryNative('@tensorflow/tfjs-node');
    case 'wasm':
      return tryWasm();
    case 'cpu':
      return tryCpu();
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
  const envValue = process.env[BACKEND_ENV];
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
        await tryBackend(name);
        current = { name, tfBackend: tf.getBackend(), skipped, source };
        if (log) {
          const why = skipped.map((s) => `${s.name}: ${s.reason}`).join('; ');
          log(`[rsn] backend: ${name} (${source === 'auto' ? 'auto' : `forced by ${source}`})${why ? ` — skipped ${why}` : ''}`);
        }
        return current;
      } catch (e) {
        skipped.push({ name, reason: firstLine(e) });
      }
    }
    pending = null;
    const detail = skipped.map((s) => `${s.name}: ${s.reason}`).join('; ');
    throw new BackendError(
      forced
        ? `backend "${forced}" (forced by ${source}) failed to initialise: ${detail}`
        : `no TF.js backend could be initialised: ${detail}`,
    );
  })();
  return pending;
}

/** The backend chosen so far, or null before initBackend. */
export function currentBackend(): BackendChoice | null {
  return current;
}
