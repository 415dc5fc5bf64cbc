/**
 * A small, dependency-free progress reporter for long work (weight conversion, activation
 * collection, sweeps).
 *
 * - Counts items or bytes, computes the average rate since start and an ETA.
 * - On a TTY it redraws one line with `\r` (a bar, %, rate, ETA), throttled; elsewhere (CI logs,
 *   notebooks, pipes) it prints one plain line each time another `lineEvery` fraction (default
 *   10 %) is done, so logs stay short.
 * - `silent: true` prints nothing; `onUpdate` receives every state change (use it to drive a
 *   notebook display or to collect numbers in a test).
 *
 * ```ts
 * const p = new Progress({ total: bytes, unit: 'bytes', label: 'convert' });
 * p.update(done, 'model.layers.3.mlp.up_proj.weight');
 * p.finish();
 * ```
 */

export type ProgressUnit = 'items' | 'bytes';

/** The minimal stream interface we write to (process.stderr, a test buffer, …). */
export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressState {
  label: string;
  unit: ProgressUnit;
  done: number;
  total: number;
  /** done / total in [0, 1]; 0 when total is 0 and nothing is done, 1 when finished. */
  fraction: number;
  elapsedSeconds: number;
  /** Units per second, averaged since start; 0 until some time has passed. */
  rate: number;
  /** Seconds left at the current rate; null when unknown. */
  etaSeconds: number | null;
  detail: string;
  finished: boolean;
}

export interface ProgressOptions {
  /** Total amount of work, in `unit`s. */
  total: number;
  /** 'bytes' formats amounts as KiB/MiB/GiB; 'items' as plain counts. Default 'items'. */
  unit?: ProgressUnit;
  /** What an item is called when unit is 'items' (e.g. 'prompts'). Default 'items'. */
  itemName?: string;
  /** Printed in front of every line. */
  label?: string;
  /** Where to print. Default process.stderr. */
  stream?: ProgressStream;
  /** Print nothing (onUpdate still fires). */
  silent?: boolean;
  /** 'tty' = \r bar, 'lines' = a line every `lineEvery`; 'auto' (default) picks by stream.isTTY. */
  mode?: 'auto' | 'tty' | 'lines';
  /** Fraction of the total between two printed lines in 'lines' mode. Default 0.1. */
  lineEvery?: number;
  /** Minimum milliseconds between two redraws in 'tty' mode. Default 100. */
  minIntervalMs?: number;
  /** Called on every update and on finish. */
  onUpdate?: (state: ProgressState) => void;
  /** Clock in milliseconds (for tests). Default performance.now. */
  now?: () => number;
}

const IEC = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 1536 → "1.5 KiB". */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return '?';
  let v = Math.abs(n);
  let i = 0;
  while (v >= 1024 && i < IEC.length - 1) {
    v /= 1024;
    i++;
  }
  const s = i === 0 ? String(Math.round(v)) : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0);
  return `${n < 0 ? '-' : ''}${s} ${IEC[i]}`;
}

/** 75 → "1:15", 3725 → "1:02:05"; null/∞ → "?". */
export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds) || seconds < 0) return '?';
  const t = Math.round(seconds);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const s = t % 60;
  const ss = String(s).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

function formatCount(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

export class Progress {
  readonly label: string;
  readonly unit: ProgressUnit;
  private total: number;
  private done = 0;
  private detail = '';
  private finished = false;
  private readonly itemName: string;
  private readonly stream: ProgressStream;
  private readonly silent: boolean;
  private readonly tty: boolean;
  private readonly lineEvery: number;
  private readonly minIntervalMs: number;
  private readonly onUpdate?: (state: ProgressState) => void;
  private readonly now: () => number;
  private readonly start: number;
  private lastDraw = -Infinity;
  private lastLineStep = 0;
  private drewTty = false;

  constructor(opts: ProgressOptions) {
    this.total = Math.max(0, opts.total);
    this.unit = opts.unit ?? 'items';
    this.itemName = opts.itemName ?? 'items';
    this.label = opts.label ?? '';
    this.stream = opts.stream ?? process.stderr;
    this.silent = opts.silent ?? false;
    const mode = opts.mode ?? 'auto';
    this.tty = mode === 'tty' || (mode === 'auto' && this.stream.isTTY === true);
    this.lineEvery = opts.lineEvery !== undefined && opts.lineEvery > 0 ? opts.lineEvery : 0.1;
    this.minIntervalMs = opts.minIntervalMs ?? 100;
    this.onUpdate = opts.onUpdate;
    this.now = opts.now ?? (() => performance.now());
    this.start = this.now();
  }

  /** Set the amount done so far (absolute). `detail` (e.g. the current tensor) is shown on the TTY bar. */
  update(done: number, detail?: string): void {
    if (this.finished) return;
    this.done = Math.max(0, done);
    if (detail !== undefined) this.detail = detail;
    this.emit(false);
  }

  /** Add `n` (default 1) to the amount done. */
  tick(n = 1, detail?: string): void {
    this.update(this.done + n, detail);
  }

  /** Change the total (when it becomes known late). */
  setTotal(total: number): void {
    this.total = Math.max(0, total);
  }

  /** Mark as finished and print the final line (once). */
  finish(detail?: string): void {
    if (this.finished) return;
    if (detail !== undefined) this.detail = detail;
    if (this.done < this.total) this.done = this.total;
    this.finished = true;
    this.emit(true);
  }

  /** End the display without claiming completion (on error): terminates a TTY line. */
  abort(): void {
    if (this.finished) return;
    this.finished = true;
    if (!this.silent && this.tty && this.drewTty) this.stream.write('\n');
  }

  state(): ProgressState {
    const elapsedSeconds = Math.max(0, (this.now() - this.start) / 1000);
    const rate = elapsedSeconds > 0 ? this.done / elapsedSeconds : 0;
    const fraction = this.finished ? 1 : this.total > 0 ? Math.min(1, this.done / this.total) : 0;
    const left = Math.max(0, this.total - this.done);
    const etaSeconds = this.finished || left === 0 ? 0 : rate > 0 ? left / rate : null;
    return {
      label: this.label,
      unit: this.unit,
      done: this.done,
      total: this.total,
      fraction,
      elapsedSeconds,
      rate,
      etaSeconds,
      detail: this.detail,
      finished: this.finished,
    };
  }

  private amount(n: number): string {
    return this.unit === 'bytes' ? formatBytes(n) : formatCount(n);
  }

  private rateText(rate: number): string {
    return this.unit === 'bytes' ? `${formatBytes(rate)}/s` : `${rate.toFixed(rate < 10 ? 2 : 1)} ${this.itemName}/s`;
  }

  /** One human-readable line (no bar) describing the state. */
  describe(s: ProgressState = this.state()): string {
    const pct = `${(s.fraction * 100).toFixed(1).padStart(5)}%`;
    const amounts = `${this.amount(s.done)}/${this.amount(s.total)}${this.unit === 'items' ? ` ${this.itemName}` : ''}`;
    const tail = s.finished ? `in ${formatDuration(s.elapsedSeconds)}` : `ETA ${formatDuration(s.etaSeconds)}`;
    const prefix = this.label ? `${this.label} ` : '';
    return `${prefix}${pct}  ${amounts}  ${this.rateText(s.rate)}  ${tail}`;
  }

  private emit(final: boolean): void {
    const s = this.state();
    this.onUpdate?.(s);
    if (this.silent) return;
    if (this.tty) {
      const t = this.now();
      if (!final && t - this.lastDraw < this.minIntervalMs) return;
      this.lastDraw = t;
      this.stream.write(`\r${this.bar(s)}\x1b[K${final ? '\n' : ''}`);
      this.drewTty = true;
      return;
    }
    // Line mode: one line each time another `lineEvery` of the total is crossed (10 %, 20 %, …,
    // 90 %), then a final "100 % … in m:ss" line from finish().
    if (final) {
      this.stream.write(`${this.describe(s)}\n`);
      return;
    }
    const step = Math.floor(s.fraction / this.lineEvery + 1e-9);
    if (step > this.lastLineStep && s.fraction < 1) {
      this.lastLineStep = step;
      this.stream.write(`${this.describe(s)}\n`);
    }
  }

  private bar(s: ProgressState): string {
    const width = 24;
    const filled = Math.round(s.fraction * width);
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
    const prefix = this.label ? `${this.label} ` : '';
    const pct = `${(s.fraction * 100).toFixed(1).padStart(5)}%`;
    const amounts = `${this.amount(s.done)}/${this.amount(s.total)}`;
    const tail = s.finished ? `in ${formatDuration(s.elapsedSeconds)}` : `ETA ${formatDuration(s.etaSeconds)}`;
    let line = `${prefix}${bar} ${pct}  ${amounts}  ${this.rateText(s.rate)}  ${tail}`;
    if (s.detail && !s.finished) line += `  ${s.detail}`;
    const cols = this.stream.columns;
    if (cols !== undefined && cols > 10 && line.length > cols - 1) line = line.slice(0, cols - 1);
    return line;
  }
}
