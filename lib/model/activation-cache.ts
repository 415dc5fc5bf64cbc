/**
 * The activations one forward pass recorded, by hook point name (TransformerLens's names:
 * `cache.get("blocks.3.mlp.act")`) and by site across layers (`cache.stack("mlp.act")`). It is
 * a Map, so code that iterates records keeps working.
 */
import { HookError } from '../errors.ts';
import type { ActivationRecord } from './activation-record.ts';
import { SITES, type Site } from './hooks.ts';

/** One site's records of every recorded layer, in layer order, as one array. */
export interface StackedRecord {
  site: Site;
  /** The layers, ascending; data[i] is layer layers[i]. */
  layers: number[];
  mode: 'full' | 'mean';
  /** [layers, B, T, N] for 'full', [layers, B, N] for 'mean'. */
  shape: number[];
  data: Float32Array;
  /** Real tokens per row (as in each record). */
  lengths: readonly number[];
}

const LAYER_POINT = /^blocks\.(\d+)\.(.+)$/;

export class ActivationCache extends Map<string, ActivationRecord> {
  /** The record of `point`; a HookError naming what was recorded when there is none. */
  record(point: string): ActivationRecord {
    const r = this.get(point);
    if (!r) throw new HookError(`no activations recorded at "${point}"; recorded: ${[...this.keys()].join(', ') || 'nothing'}`);
    return r;
  }

  /** Every recorded layer's record of `site`, stacked in layer order. */
  stack(site: Site): StackedRecord {
    if (!SITES.includes(site)) throw new HookError(`stack: "${site}" is not a layer site; expected one of ${SITES.join(', ')}`);
    const found: [number, ActivationRecord][] = [];
    for (const [point, rec] of this) {
      const m = LAYER_POINT.exec(point);
      if (m && m[2] === site) found.push([Number(m[1]), rec]);
    }
    if (found.length === 0) throw new HookError(`stack: no layer's "${site}" was recorded; recorded: ${[...this.keys()].join(', ') || 'nothing'}`);
    found.sort((a, b) => a[0] - b[0]);
    const first = found[0]![1];
    for (const [layer, rec] of found) {
      if (rec.mode !== first.mode || rec.shape.join() !== first.shape.join()) {
        throw new HookError(`stack: blocks.${layer}.${site} is a ${rec.mode} record of shape [${rec.shape}], blocks.${found[0]![0]}.${site} a ${first.mode} record of shape [${first.shape}]`);
      }
    }
    const data = new Float32Array(found.length * first.data.length);
    found.forEach(([, rec], i) => data.set(rec.data, i * first.data.length));
    return { site, layers: found.map(([l]) => l), mode: first.mode, shape: [found.length, ...first.shape], data, lengths: first.lengths };
  }
}
