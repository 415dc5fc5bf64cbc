/**
 * A verdict is data: the paper's claim, the paper's number, ours, and whether it is reproduced.
 * Experiments compute them from their results (experiment.verdicts); the notebooks show and
 * record them (lib/notebook/verdict.ts).
 */
export type VerdictStatus = 'reproduced' | 'differs' | 'not applicable';
export type VerdictValue = string | number | boolean | null;

export interface VerdictInput {
  /** The paper's claim in one sentence. */
  claim: string;
  /** What the paper reports (a number, or a short statement). */
  paper: VerdictValue;
  /** What we measured. */
  ours: VerdictValue;
  status: VerdictStatus;
  /** By how much / why (e.g. "−3.2 points", "no tokenizer in this model"). */
  detail?: string;
}

/** How a verdict shows a number: integers as they are, others with 4 significant digits. */
export function showValue(v: VerdictValue): string {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4)));
  return v === null ? '–' : String(v);
}

/**
 * Compare a paper number with ours: reproduced when |ours − paper| ≤ tolerance (absolute, or
 * relative to |paper| with `relative`), else differs; the detail says by how much.
 */
export function compare(paper: number, ours: number, opts: { tolerance?: number; relative?: boolean; unit?: string } = {}): { status: VerdictStatus; detail: string } {
  const tol = opts.tolerance ?? 0;
  const diff = ours - paper;
  const scale = opts.relative ? Math.abs(paper) : 1;
  const within = Number.isFinite(ours) && Math.abs(diff) <= tol * scale + 1e-12;
  const unit = opts.unit ? ` ${opts.unit}` : '';
  const by = opts.relative && paper !== 0 ? `${diff >= 0 ? '+' : '−'}${Math.abs((100 * diff) / paper).toFixed(1)}%` : `${diff >= 0 ? '+' : '−'}${showValue(Math.abs(diff))}${unit}`;
  return { status: within ? 'reproduced' : 'differs', detail: diff === 0 ? 'exact' : `${by} (tolerance ${opts.relative ? `${100 * tol}%` : showValue(tol) + unit})` };
}

/** "reproduced" when the criterion holds, else "differs". */
export function holds(criterion: boolean): VerdictStatus {
  return criterion ? 'reproduced' : 'differs';
}
