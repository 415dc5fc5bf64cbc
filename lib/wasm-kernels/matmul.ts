/**
 * The wasm backend's matrix product on OpenBLAS. TF.js's wasm kernels run 128-bit SIMD without
 * fused multiply-add; on the bench shape its BatchMatMul is 93 % of the forward and reaches a
 * third of what OpenBLAS's AVX2/AVX-512 sgemm does on the same core. This replaces the wasm
 * backend's BatchMatMul kernel with one that hands the operands, in place in the wasm heap, to
 * OpenBLAS (lib/wasm-kernels/sgemm.c); everything else stays on wasm. One BLAS thread per process
 * thread: the row pool already puts one worker on each core.
 *
 * RSN_MATMUL picks the engine: `auto` (OpenBLAS when the addon builds and loads, else wasm's
 * own, saying why), `openblas` (fail loudly when it cannot), `wasm` (TF.js's own kernel).
 */
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';
import { envVarName, readEnv } from '../env.ts';
import { BackendError } from '../errors.ts';
import { addonIntact, addonPath, ensureAddon } from './build.ts';
import { heapOffset, replaceWasmKernel, type WasmBackend } from './wasm-backend.ts';

export type MatMulEngineName = 'openblas' | 'wasm';

export interface MatMulEngine {
  name: MatMulEngineName;
  /**
   * What decides the product's bits: "wasm", or OpenBLAS with its version and CPU kernel
   * (another kernel sums in another order, so its results differ in the last bits).
   */
  key: string;
  /** What runs the product: OpenBLAS's version and CPU kernel, or why wasm's own is used. */
  detail: string;
}

interface SgemmAddon {
  matMul(heap: ArrayBuffer, aOffset: number, bOffset: number, cOffset: number, batch: number, aBatched: number, bBatched: number, m: number, n: number, k: number, transposeA: number, transposeB: number): void;
  setThreads(n: number): void;
  describe(): { config: string; core: string; threads: number };
}


const MATMUL_ENV = envVarName('matMul');

function parseEngine(): 'auto' | MatMulEngineName {
  const v = readEnv('matMul')?.toLowerCase();
  if (v === undefined || v === 'auto') return 'auto';
  if (v === 'openblas' || v === 'wasm') return v;
  throw new BackendError(`${MATMUL_ENV}=${readEnv('matMul')}: expected auto, openblas or wasm`);
}

let active: MatMulEngine | null = null;

function loadAddon(build: boolean): SgemmAddon {
  const built = build ? ensureAddon() : { ok: true as const, path: addonPath(), built: false };
  if (!built.ok) throw new Error(built.reason);
  // Loading a damaged shared object can kill the process (SIGBUS) before any error is thrown.
  if (!addonIntact(built.path)) throw new Error(`${built.path} does not match the digest its build recorded (damaged); it was removed and is built again on the next start`);
  const addon = createRequire(import.meta.url)(built.path) as SgemmAddon;
  addon.setThreads(1);
  selfCheck(addon);
  return addon;
}

/**
 * A product with a known answer before the kernel is trusted: an OpenBLAS whose CBLAS takes
 * 64-bit integers (an ILP64 build behind the same name), say, loads but computes garbage.
 */
function selfCheck(addon: SgemmAddon): void {
  const heap = new ArrayBuffer(16 * 4);
  const f = new Float32Array(heap);
  f.set([1, 2, 3, 4, 5, 6], 0); // A 2×3
  f.set([7, 8, 9, 10, 11, 12], 6); // B 3×2
  addon.matMul(heap, 0, 24, 48, 1, 0, 0, 2, 2, 3, 0, 0);
  const got = [...f.subarray(12)];
  if (got.join() !== '58,64,139,154') throw new Error(`the OpenBLAS addon computed [${got.join(', ')}] for a product whose answer is [58, 64, 139, 154]`);
}

/** Batch size, outer and inner (contracted) dimension of a matMul operand stored row-major. */
function dims(shape: number[], innerIsLast: boolean): { batch: number; outer: number; inner: number } {
  const r = shape.length;
  return {
    batch: tf.util.sizeFromShape(shape.slice(0, -2)),
    outer: innerIsLast ? shape[r - 2]! : shape[r - 1]!,
    inner: innerIsLast ? shape[r - 1]! : shape[r - 2]!,
  };
}

function registerKernel(addon: SgemmAddon): void {
  replaceWasmKernel('BatchMatMul', (original) => (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
    const A = dims(a.shape, !transposeA);
    const B = dims(b.shape, transposeB);
    // wasm's own kernel handles what OpenBLAS does not need to: other dtypes, and batch shapes
    // that broadcast other than one-against-many (it raises TF.js's usual errors for bad shapes).
    const sameOrShared = A.batch === B.batch || A.batch === 1 || B.batch === 1;
    if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 2 || b.shape.length < 2 || A.inner !== B.inner || !sameOrShared) {
      return original.kernelFunc(args);
    }
    const outer = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
    const backend = args.backend as unknown as WasmBackend;
    const out = backend.makeOutput([...outer, A.outer, B.outer], 'float32');
    // Each operand must be an allocation of its own: when the heap is exhausted, TF.js's allocator
    // can hand out offset 0, which lies inside the heap but overlaps other tensors.
    const offset = (t: tf.TensorInfo) => {
      const at = heapOffset(backend, t);
      if (at <= 0 && tf.util.sizeFromShape(t.shape) > 0) throw new Error(`wasm heap allocation failed: a ${t.shape.join('×')} tensor got offset ${at} (the heap is exhausted)`);
      return at;
    };
    // Read the heap after makeOutput: an allocation may have grown (and replaced) it.
    addon.matMul(backend.wasm.HEAPU8.buffer as ArrayBuffer, offset(a), offset(b), offset(out), Math.max(A.batch, B.batch), A.batch > 1 ? 1 : 0, B.batch > 1 ? 1 : 0, A.outer, B.outer, A.inner, transposeA ? 1 : 0, transposeB ? 1 : 0);
    return out;
  });
}

/**
 * Chooses the wasm backend's matMul engine once per thread (call after the wasm backend is set).
 * `build` compiles the addon when it is missing (the main thread does; worker threads only load
 * what the main thread built).
 */
export function enableWasmMatMul(opts: { build?: boolean } = {}): MatMulEngine {
  if (active) return active;
  const want = parseEngine();
  if (want === 'wasm') return (active = { name: 'wasm', key: 'wasm', detail: `TF.js's own (${MATMUL_ENV}=wasm)` });
  try {
    const heap = (tf.backend() as unknown as Partial<WasmBackend>).wasm?.HEAPU8?.buffer;
    // A threaded wasm build keeps its heap in a SharedArrayBuffer, which the addon does not take.
    if (!(heap instanceof ArrayBuffer)) throw new Error('the wasm heap is not a plain ArrayBuffer (a threaded wasm build?)');
    const addon = loadAddon(opts.build ?? true);
    registerKernel(addon);
    const d = addon.describe();
    const version = d.config.trim().split(/\s+/).slice(0, 2).join(' ');
    active = { name: 'openblas', key: `${version} ${d.core}`.toLowerCase().replace(/\s+/g, '-'), detail: `${version} (${d.core} kernels), ${d.threads} BLAS thread per worker` };
  } catch (e) {
    const why = (e as Error).message.split('\n')[0]!;
    if (want === 'openblas') throw new BackendError(`${MATMUL_ENV}=openblas, but the OpenBLAS matMul is unavailable: ${why}`);
    active = { name: 'wasm', key: 'wasm', detail: `TF.js's own; OpenBLAS unavailable: ${why}` };
  }
  return active;
}
