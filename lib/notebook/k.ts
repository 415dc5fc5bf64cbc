/**
 * The number of neurons zeroed per relation, from the notebook parameters k, kPercent and
 * kMaxPercent, resolved in one place: the paper's k = 3000 is 0.36 % of LLaMA-2-7B's FFN pool,
 * so on a small model it is capped at kMaxPercent of the pool, or replaced by kPercent of it.
 * The value used is recorded (setEffective) so verdicts and the report show it, not the request.
 */
import { ConfigError } from '../errors.ts';
import { checkParam, setEffective } from './params.ts';

export interface KParams {
  k: number;
  kPercent: number;
  kMaxPercent: number;
}

export interface ResolvedK {
  /** Neurons per relation actually used. */
  k: number;
  /** How k was derived from the parameters ("as set", "3000 capped at 3 % of the pool", …). */
  how: string;
  /** The FFN pool size it was resolved against. */
  pool: number;
}

/** Resolve k against an FFN pool of `pool` neurons; prints one line (and a warning when k is the whole pool) unless `quiet`. */
export function resolveK(p: KParams, pool: number, opts: { quiet?: boolean; poolName?: string; log?: (line: string) => void } = {}): ResolvedK {
  checkParam('k', p.k);
  checkParam('kPercent', p.kPercent);
  checkParam('kMaxPercent', p.kMaxPercent);
  if (!Number.isInteger(pool) || pool < 1) throw new ConfigError(`the model's FFN pool has ${pool} neurons; k needs at least one`, undefined, 'pool');
  const poolName = opts.poolName ?? 'the pool';
  let k: number;
  let how: string;
  if (p.kPercent > 0) {
    k = Math.round((p.kPercent / 100) * pool);
    if (k < 1) throw new ConfigError(`parameter kPercent = ${p.kPercent}: ${p.kPercent} % of ${pool} neurons is less than one neuron; expected at least ${((100 / pool) * 0.5).toPrecision(2)}`, undefined, 'kPercent');
    how = `${p.kPercent} % of ${poolName}`;
  } else {
    const cap = Math.floor((p.kMaxPercent / 100) * pool);
    if (cap < 1) throw new ConfigError(`parameter kMaxPercent = ${p.kMaxPercent}: ${p.kMaxPercent} % of ${pool} neurons is less than one neuron; raise it`, undefined, 'kMaxPercent');
    k = Math.min(p.k, cap);
    how = k < p.k ? `${p.k} capped at ${p.kMaxPercent} % of ${poolName}` : 'as set';
  }
  setEffective('k', k, how);
  if (!opts.quiet) {
    const log = opts.log ?? ((l: string) => console.log(l));
    log(`k = ${k} (${how}) = ${((100 * k) / pool).toFixed(2)} % of this model's ${pool.toLocaleString('en-US')} FFN neurons; the paper's 3000 is 0.36 % of LLaMA-2-7B's 835,584`);
    if (k >= pool) log(`note: k covers every FFN neuron of this model, so "the top-k" is the whole pool (and equals any random k); lower kMaxPercent or set kPercent for a meaningful test`);
  }
  return { k, how, pool };
}
