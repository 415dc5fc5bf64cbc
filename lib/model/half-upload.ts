/**
 * float16 weights onto the device. TF.js has no float16 dtype, so float16 storage is normally
 * widened to float32 on the host, doubling host memory and upload. On webgpu the half bits are
 * uploaded instead (two per int32) and widened by a small WGSL kernel with the built-in
 * unpack2x16float, which is exact for every finite half (tested against the host table over all
 * 63,488 of them). Other backends widen on the host.
 */
import * as tf from '@tensorflow/tfjs-core';
import { currentBackend } from '../backend.ts';
import { halfToFloat } from '../half.ts';

/** Whether the current backend widens half bits itself (so readers should keep them). */
export function deviceWidensHalf(): boolean {
  return currentBackend()?.name === 'webgpu';
}

interface WebGpuProgramBackend {
  runWebGPUProgram(program: unknown, inputs: tf.TensorInfo[], outputDtype: 'float32'): tf.TensorInfo;
}

const WORKGROUP = 128;

/** The float32 tensor of `shape` whose values are the half-precision `bits` (row-major). */
export function halfBitsToTensor(bits: Uint16Array, shape: number[]): tf.Tensor {
  const n = bits.length;
  if (!deviceWidensHalf()) {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = halfToFloat(bits[i]!);
    return tf.tensor(out, shape);
  }
  // An even-length, 4-byte-aligned copy: pairs of halves become one int32 each.
  const even = new Uint16Array(n + (n & 1));
  even.set(bits);
  const packed = tf.tensor1d(new Int32Array(even.buffer), 'int32');
  try {
    const program = {
      variableNames: ['A'],
      size: true,
      workgroupSize: [WORKGROUP, 1, 1],
      outputShape: [n],
      dispatchLayout: { x: [0] },
      dispatch: [Math.ceil(n / WORKGROUP), 1, 1],
      shaderKey: 'rsn_half_bits_to_float32',
      getUserCode: () => `
        fn main(index : i32) {
          if (index < uniforms.size) {
            let pair = unpack2x16float(bitcast<u32>(A[index / 2]));
            setOutputAtIndex(index, select(pair.x, pair.y, index % 2 == 1));
          }
        }`,
    };
    const info = (tf.backend() as unknown as WebGpuProgramBackend).runWebGPUProgram(program, [packed], 'float32');
    const flat = tf.engine().makeTensorFromTensorInfo(info);
    const out = tf.reshape(flat, shape);
    flat.dispose();
    return out;
  } finally {
    packed.dispose();
  }
}
