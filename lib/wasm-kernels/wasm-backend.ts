/**
 * The parts of tfjs-backend-wasm's BackendWasm that the kernels in this folder use: where a
 * tensor's bytes live in the wasm heap, and allocating an output there. Not part of TF.js's
 * public API; pinned by the tests in test/wasm-kernels.test.ts.
 */
import type * as tf from '@tensorflow/tfjs-core';

export interface WasmBackend {
  dataIdMap: { get(id: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  wasm: { HEAPU8: Uint8Array };
}

/** Byte offset of a tensor's data in the wasm heap. */
export function heapOffset(backend: WasmBackend, t: tf.TensorInfo): number {
  const d = backend.dataIdMap.get(t.dataId);
  if (!d) throw new Error(`wasm backend: tensor ${t.shape} has no data`);
  return d.memoryOffset;
}

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((p, d) => p * d, 1);
}
