/**
 * Weight matrices held as blocks that each fit one device binding. WebGPU binds a tensor to a
 * kernel only up to the adapter's maxStorageBufferBindingSize (128 MiB on Mesa's software
 * adapter, 2–4 GiB on most GPUs); a larger tensor is silently not bound and the kernel returns
 * zeros. Llama-2-7B's embedding and LM head are 524 MB in float32 and each MLP weight 180 MB, so
 * on such a device they are split: linear weights into column blocks (one matMul per block,
 * concatenated), the embedding into row blocks (each id gathered from its block). Where one
 * block holds the whole matrix (every other backend, and most GPUs) this is the plain path.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ShapeError } from '../errors.ts';
import { halfBitsToTensor } from './half-upload.ts';

/** Row-major host values: float32, or float16 bits widened when uploaded. */
type HostMatrix = Float32Array | Uint16Array;

/** A matrix [inDim, outDim] (a pre-transposed linear weight) as column blocks, left to right. */
export interface LinearWeight {
  readonly blocks: readonly tf.Tensor2D[];
  readonly inDim: number;
  readonly outDim: number;
}

/** A lookup table [rows, cols] (the embedding) as row blocks of `rowsPerBlock` rows, top to bottom. */
export interface EmbeddingTable {
  readonly blocks: readonly tf.Tensor2D[];
  readonly rowsPerBlock: number;
  readonly rows: number;
  readonly cols: number;
}

/** How many rows of `rowBytes` bytes fit one binding of `limitBytes`. */
export function rowsPerBinding(rows: number, rowBytes: number, limitBytes: number, what: string): number {
  const fit = Math.floor(limitBytes / rowBytes);
  if (fit < 1) throw new ShapeError(`${what}: one row of ${rowBytes} bytes is larger than the device's largest binding (${limitBytes} bytes)`);
  return Math.min(rows, fit);
}

/** Upload a row-major [rows, cols] matrix as blocks of whole rows that each fit `limitBytes`, each passed through `place`. */
function uploadRowBlocks(data: HostMatrix, rows: number, cols: number, limitBytes: number, what: string, place: (block: tf.Tensor2D) => tf.Tensor2D): { blocks: tf.Tensor2D[]; per: number } {
  const per = rowsPerBinding(rows, cols * 4, limitBytes, what);
  const blocks: tf.Tensor2D[] = [];
  try {
    for (let r = 0; r < rows; r += per) {
      const n = Math.min(per, rows - r);
      const rowsData = data.subarray(r * cols, (r + n) * cols);
      blocks.push(place((rowsData instanceof Uint16Array ? halfBitsToTensor(rowsData, [n, cols]) : tf.tensor2d(rowsData, [n, cols])) as tf.Tensor2D));
    }
  } catch (e) {
    tf.dispose(blocks);
    throw e;
  }
  return { blocks, per };
}

/**
 * Upload an HF linear weight [out, inDim] (row-major `data`) transposed to [inDim, out], as
 * column blocks: each block of output rows is uploaded and transposed on the device by itself,
 * so no tensor larger than `limitBytes` ever exists on it.
 */
export function uploadTransposed(data: HostMatrix, out: number, inDim: number, limitBytes: number, what: string): LinearWeight {
  const { blocks } = uploadRowBlocks(data, out, inDim, limitBytes, what, (rowsBlock) => {
    const t = tf.transpose(rowsBlock);
    rowsBlock.dispose();
    return t;
  });
  return { blocks, inDim, outDim: out };
}

/** Upload a table [rows, cols] as row blocks that each fit `limitBytes`. */
export function uploadRows(data: HostMatrix, rows: number, cols: number, limitBytes: number, what: string): EmbeddingTable {
  const { blocks, per } = uploadRowBlocks(data, rows, cols, limitBytes, what, (block) => block);
  return { blocks, rowsPerBlock: per, rows, cols };
}

/** The table's transpose as a linear weight (tied embeddings: lm_head = embedᵀ), block by block. */
export function transposeTable(t: EmbeddingTable): LinearWeight {
  return { blocks: t.blocks.map((b) => tf.transpose(b)), inDim: t.cols, outDim: t.rows };
}

/** x [rows, in] or [B, T, in] · w → [rows, out] or [B, T, out]. */
export function linear(x: tf.Tensor, w: LinearWeight): tf.Tensor {
  const flat = x.rank === 2 ? (x as tf.Tensor2D) : tf.reshape(x, [-1, w.inDim]) as tf.Tensor2D;
  const y = w.blocks.length === 1 ? tf.matMul(flat, w.blocks[0]!) : tf.concat(w.blocks.map((b) => tf.matMul(flat, b)), 1);
  return x.rank === 2 ? y : tf.reshape(y, [...x.shape.slice(0, -1), w.outDim]);
}

/** Rows `ids` of the table, [ids.length, cols]. */
export function gatherRows(t: EmbeddingTable, ids: ArrayLike<number>): tf.Tensor2D {
  if (t.blocks.length === 1) return tf.gather(t.blocks[0]!, tf.tensor1d(Int32Array.from(ids), 'int32'));
  // The ids are on the host: gather each block's ids from that block, then put the rows back in order.
  const byBlock: number[][] = t.blocks.map(() => []);
  const positions: number[][] = t.blocks.map(() => []);
  for (let i = 0; i < ids.length; i++) {
    const b = Math.floor(ids[i]! / t.rowsPerBlock);
    byBlock[b]!.push(ids[i]! - b * t.rowsPerBlock);
    positions[b]!.push(i);
  }
  const parts: tf.Tensor2D[] = [];
  const order: number[] = [];
  t.blocks.forEach((block, b) => {
    if (byBlock[b]!.length === 0) return;
    parts.push(tf.gather(block, tf.tensor1d(byBlock[b]!, 'int32')));
    order.push(...positions[b]!);
  });
  const stacked = parts.length === 1 ? parts[0]! : tf.concat(parts, 0);
  const inverse = new Int32Array(ids.length);
  order.forEach((pos, k) => (inverse[pos] = k));
  return tf.gather(stacked, tf.tensor1d(inverse, 'int32'));
}

export function disposeBlocks(w: LinearWeight | EmbeddingTable): void {
  tf.dispose([...w.blocks]);
}
