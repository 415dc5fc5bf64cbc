/** App. G, Figs. 25–29: the inter-relation diagonal when the neurons come from other pools. */
import type { Analysis } from '../experiment.ts';
import type { PoolName } from '../neurons.ts';
import { mean } from '../../stats/summary.ts';
import type { VerdictInput } from '../verdicts.ts';
import type { InterResult } from './inter-relation.ts';

export interface PoolsInput {
  /** The inter-relation result of each pool, in the order the pools were asked for. */
  results: Partial<Record<PoolName, InterResult>>;
  /** Neurons in each pool. */
  sizes: Partial<Record<PoolName, number>>;
}

export interface PoolDiagonal {
  pool: PoolName;
  neurons: number;
  k: number;
  meanDiagonal: number;
  meanOffDiagonal: number;
  /** meanDiagonal − meanOffDiagonal: how clearly a relation's neurons hit that relation. */
  contrast: number;
  /** Rows whose diagonal cell is their largest drop. */
  diagonalMax: number;
}

export interface PoolsResult {
  relations: number;
  pools: PoolDiagonal[];
}

function summarise(input: PoolsInput): PoolsResult {
  const entries = Object.entries(input.results) as [PoolName, InterResult][];
  const pools = entries.map(([pool, r]) => {
    const D = r.dropPercent;
    const diag = D.map((row, i) => row[i]!).filter(Number.isFinite);
    const off = D.flatMap((row, i) => row.filter((v, j) => j !== i && Number.isFinite(v)));
    const diagonalMax = D.filter((row, i) => Number.isFinite(row[i]!) && row.every((v, j) => j === i || !Number.isFinite(v) || v < row[i]!)).length;
    return { pool, neurons: input.sizes[pool]!, k: r.k, meanDiagonal: mean(diag), meanOffDiagonal: mean(off), contrast: mean(diag) - mean(off), diagonalMax };
  });
  return { relations: entries[0]?.[1].relations.length ?? 0, pools };
}

/** The summary as the notebook's table shows it. */
export function poolTable(result: PoolsResult): Record<string, string | number>[] {
  return result.pools.map((p) => ({
    pool: p.pool,
    neurons: p.neurons,
    k: p.k,
    'mean diagonal %': p.meanDiagonal,
    'mean off-diagonal %': p.meanOffDiagonal,
    contrast: p.contrast,
    'diagonal max': p.diagonalMax,
  }));
}

function verdicts(result: PoolsResult): VerdictInput[] {
  const summary = result.pools;
  const R = result.relations;
  const get = (p: PoolName) => summary.find((s) => s.pool === p);
  const ffn = get('ffn');
  if (!ffn) return [{ claim: 'The FFN pool gives the clearest diagonal', paper: 'FFN clearest', ours: null, status: 'not applicable', detail: 'ffn is not among the pools' }];
  const best = [...summary].sort((a, b) => b.contrast - a.contrast)[0]!;
  const attn = get('attn');
  const down = get('down');
  const up = get('up');
  const all = get('all');
  const gate = get('gate');
  const close = (s: PoolDiagonal) => Math.abs(s.contrast - ffn.contrast) <= 0.5 * Math.abs(ffn.contrast);
  return [
    {
      claim: 'The FFN pool gives the clearest diagonal',
      paper: 'FFN clearest; all and gate close',
      ours: `contrast: ${summary.map((s) => `${s.pool} ${s.contrast.toFixed(1)}`).join(', ')}`,
      status: best.pool === 'ffn' ? 'reproduced' : 'differs',
      detail: best.pool === 'ffn' ? 'criterion: FFN has the largest contrast' : `${best.pool} is clearer than ffn (by ${(best.contrast - ffn.contrast).toFixed(1)} points)`,
    },
    {
      claim: 'self_attn and down_proj give inconsistent diagonals',
      paper: 'inconsistent (Figs. 26, 29)',
      ours: [attn, down].filter(Boolean).map((s) => `${s!.pool}: diagonal max ${s!.diagonalMax}/${R}`).join('; ') + ` (ffn: ${ffn.diagonalMax}/${R})`,
      ...(!attn || !down
        ? { status: 'not applicable' as const, detail: 'attn or down not among the pools' }
        : { status: attn.diagonalMax < ffn.diagonalMax && down.diagonalMax < ffn.diagonalMax ? ('reproduced' as const) : ('differs' as const), detail: 'criterion: fewer rows with the diagonal as their maximum than FFN' }),
    },
    {
      claim: 'up_proj alone has little effect',
      paper: 'little effect (Fig. 27)',
      ours: up ? `mean diagonal drop ${up.meanDiagonal.toFixed(1)} % (ffn ${ffn.meanDiagonal.toFixed(1)} %)` : null,
      ...(!up
        ? { status: 'not applicable' as const, detail: 'up not among the pools' }
        : { status: up.meanDiagonal < ffn.meanDiagonal / 2 ? ('reproduced' as const) : ('differs' as const), detail: "criterion: less than half of FFN's mean diagonal drop" }),
    },
    {
      claim: 'all and gate_proj come close to FFN',
      paper: 'close to FFN (Figs. 25, 28)',
      ours: [all, gate].filter(Boolean).map((s) => `${s!.pool} contrast ${s!.contrast.toFixed(1)}`).join(', ') + ` (ffn ${ffn.contrast.toFixed(1)})`,
      ...(!all || !gate
        ? { status: 'not applicable' as const, detail: 'all or gate not among the pools' }
        : { status: close(all) && close(gate) ? ('reproduced' as const) : ('differs' as const), detail: "criterion: contrast within ±50 % of FFN's" }),
    },
  ];
}

export const otherPools: Analysis<PoolsInput, Record<string, never>, PoolsResult> = {
  name: 'other pools',
  paper: 'App. G, Figs. 25–29',
  summarise,
  verdicts,
};
