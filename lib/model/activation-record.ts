/**
 * Activations recorded at one hook point, with views indexed the way a researcher thinks of
 * them (batch row, token of that row, unit) instead of offsets into a left-padded array.
 *
 * 'full' records hold [B, T, N] with each row left-padded to T; token t of row b is its t-th
 * real token (t = 0 is the first, usually BOS). 'mean' records hold [B, N].
 */
import { HookError } from '../errors.ts';

export class ActivationRecord {
  constructor(
    readonly point: string,
    readonly mode: 'full' | 'mean',
    /** [B, T, N] for 'full', [B, N] for 'mean'. */
    readonly shape: number[],
    readonly data: Float32Array,
    /** Real tokens per row. */
    readonly lengths: readonly number[],
  ) {}

  get rows(): number {
    return this.shape[0]!;
  }

  get units(): number {
    return this.shape[this.shape.length - 1]!;
  }

  /** Row b's values: [N] for 'mean'; for 'full', the [len_b, N] block of its real tokens (row-major). */
  row(b: number): Float32Array {
    this.checkRow(b);
    const N = this.units;
    if (this.mode === 'mean') return this.data.subarray(b * N, (b + 1) * N);
    const T = this.shape[1]!;
    return this.data.subarray((b * T + T - this.lengths[b]!) * N, (b + 1) * T * N);
  }

  /** The [N] vector at token t of row b ('full' records only). */
  token(b: number, t: number): Float32Array {
    if (this.mode !== 'full') throw new HookError(`${this.point}: a 'mean' record has no per-token values`);
    this.checkRow(b);
    const len = this.lengths[b]!;
    if (!Number.isInteger(t) || t < -len || t >= len) throw new HookError(`${this.point}: row ${b} has tokens 0–${len - 1} (or −1 … −${len} from the end), got ${t}`);
    const N = this.units;
    const T = this.shape[1]!;
    const col = T - len + (t < 0 ? len + t : t);
    return this.data.subarray((b * T + col) * N, (b * T + col + 1) * N);
  }

  /** One value: unit u at token t of row b ('full'), or unit u of row b's mean ('mean', t omitted). */
  at(b: number, t: number | null, u: number): number {
    const v = t === null ? this.row(b) : this.token(b, t);
    if (!Number.isInteger(u) || u < 0 || u >= this.units) throw new HookError(`${this.point}: units are 0–${this.units - 1}, got ${u}`);
    if (t === null && this.mode !== 'mean') throw new HookError(`${this.point}: give a token index for a 'full' record`);
    return v[u]!;
  }

  private checkRow(b: number): void {
    if (!Number.isInteger(b) || b < 0 || b >= this.rows) throw new HookError(`${this.point}: rows are 0–${this.rows - 1}, got ${b}`);
  }
}
