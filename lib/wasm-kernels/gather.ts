/**
 * Row gathers on the wasm backend by copying whole rows. TF.js's wasm GatherV2 computes an index
 * per element (≈ 44 ns each here): the embedding lookup of 512 tokens × 512 took 11.6 ms, a
 * tenth of a decode step. Gathering along the first axis is a copy of contiguous rows, which
 * the heap's own copyWithin does at memory speed; the bytes are the same, so results are
 * identical. Any other gather (another axis, batch dims, other dtypes) goes to TF.js's kernel.
 */
import * as tf from '@tensorflow/tfjs-core';
import { heapOffset, replaceWasmKernel, type WasmBackend } from './wasm-backend.ts';

let registered = false;

/** Replace the wasm backend's GatherV2 (once per thread; call after the wasm backend is set). */
export function registerRowGather(): void {
  if (registered) return;
  replaceWasmKernel('GatherV2', (original) => (args) => {
    const { x, indices } = args.inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
    const { axis, batchDims } = args.attrs as { axis: number; batchDims: number };
    const rank = x.shape.length;
    const firstAxis = rank > 0 && (axis === 0 || axis === -rank);
    if (!firstAxis || batchDims !== 0 || (x.dtype !== 'float32' && x.dtype !== 'int32') || indices.dtype !== 'int32') return original.kernelFunc(args);
    const backend = args.backend as unknown as WasmBackend;
    const rows = x.shape[0]!;
    const rowBytes = tf.util.sizeFromShape(x.shape.slice(1)) * 4;
    const n = tf.util.sizeFromShape(indices.shape);
    // Copied out before makeOutput, which may grow the heap and detach its old buffer.
    const ids = new Int32Array(backend.wasm.HEAPU8.buffer, heapOffset(backend, indices), n).slice();
    for (const id of ids) {
      if (!(id >= 0 && id < rows)) throw new Error(`GatherV2: the index value ${id} is not in [0, ${rows - 1}]`);
    }
    const out = backend.makeOutput([...indices.shape, ...x.shape.slice(1)], x.dtype);
    if (rowBytes === 0 || n === 0) return out;
    const heap = backend.wasm.HEAPU8;
    const from = heapOffset(backend, x);
    const to = heapOffset(backend, out);
    for (let i = 0; i < n; i++) heap.copyWithin(to + i * rowBytes, from + ids[i]! * rowBytes, from + (ids[i]! + 1) * rowBytes);
    return out;
  });
  registered = true;
}
