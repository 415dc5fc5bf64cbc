/**
 * What the kernels in this folder share: the parts of tfjs-backend-wasm's BackendWasm they use
 * (where a tensor's bytes live in the wasm heap, allocating an output there; not part of TF.js's
 * public API, pinned by test/wasm-kernels.test.ts), and putting a kernel in place of wasm's own.
 */
import * as tf from '@tensorflow/tfjs-core';

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

/**
 * Put `make(original)` in place of the wasm backend's kernel `name`; the original stays callable
 * for the cases the replacement hands back.
 */
export function replaceWasmKernel(name: string, make: (original: tf.KernelConfig) => tf.KernelFunc): void {
  const original = tf.getKernel(name, 'wasm');
  if (!original) throw new Error(`the wasm backend has no ${name} kernel to replace`);
  const kernelFunc = make(original);
  tf.unregisterKernel(name, 'wasm');
  tf.registerKernel({ ...original, kernelFunc });
}
