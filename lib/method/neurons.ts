/**
 * The neuron space: every output coordinate of the linear layers we study, with one global
 * index. Order: layer by layer; inside a layer the sites in SITE_ORDER. A "pool" (the paper's
 * FFN pool, or App. G's all / self_attn / up / gate / down) is a subset of sites.
 *
 * An experiment row says what it does to a set of neurons with an Ablation: zeroing (the
 * paper's intervention), scaling, setting to a value, or setting each to its mean.
 */
import { HookError } from '../errors.ts';
import type { LlamaConfig } from '../model/config.ts';
import { hookPointName, siteWidth, type Site } from '../model/hooks.ts';
import type { Intervention } from '../model/hooks.ts';
import { sampleNegatives } from '../rng.ts';

export type NeuronSite = Extract<Site, 'attn.q' | 'attn.k' | 'attn.v' | 'attn.o' | 'mlp.gate' | 'mlp.up' | 'mlp.down' | 'mlp.act'>;
/** 'mlp.act' comes last so that adding it left the global indices of every earlier space unchanged. */
export const SITE_ORDER: readonly NeuronSite[] = ['attn.q', 'attn.k', 'attn.v', 'attn.o', 'mlp.gate', 'mlp.up', 'mlp.down', 'mlp.act'];

export type PoolName = 'ffn' | 'all' | 'attn' | 'gate' | 'up' | 'down' | 'act';
export const POOLS: Record<PoolName, readonly NeuronSite[]> = {
  ffn: ['mlp.gate', 'mlp.up', 'mlp.down'],
  all: ['attn.q', 'attn.k', 'attn.v', 'attn.o', 'mlp.gate', 'mlp.up', 'mlp.down'],
  attn: ['attn.q', 'attn.k', 'attn.v', 'attn.o'],
  gate: ['mlp.gate'],
  up: ['mlp.up'],
  down: ['mlp.down'],
  /** act(gate)·up (SiLU, or Gemma's tanh-GELU), the input of down_proj: the neuron of most interpretability work. */
  act: ['mlp.act'],
};

/** How neurons are ablated: zeroed (the paper), scaled, set to a value, or set to their means. */
export type AblationOp =
  | { op: 'zero' }
  | { op: 'scale'; factor: number }
  | { op: 'set'; value: number }
  /** `means[index]`: one value per neuron of the space (e.g. neuronMeans of an activation store). */
  | { op: 'mean'; means: Float32Array };

/** What a row does to neurons (global indices of a NeuronSpace) at every position and step. */
export type Ablation = AblationOp & { neurons: ArrayLike<number> };

export const ZERO: AblationOp = { op: 'zero' };

/** `neurons` ablated by `how` (default: zeroed, the paper's intervention). */
export function ablation(neurons: ArrayLike<number>, how: AblationOp = ZERO): Ablation {
  return { ...how, neurons };
}

/** How an ablation op is named in results and cache keys (means by their count, not their values). */
export function describeAblation(how: AblationOp): Record<string, string | number> {
  switch (how.op) {
    case 'zero':
      return { op: 'zero' };
    case 'scale':
      return { op: 'scale', factor: how.factor };
    case 'set':
      return { op: 'set', value: how.value };
    case 'mean':
      return { op: 'mean', neurons: how.means.length };
  }
}

export interface NeuronBlock {
  layer: number;
  site: NeuronSite;
  width: number;
  /** Global index of unit 0 of this block. */
  offset: number;
}

export interface Neuron {
  index: number;
  layer: number;
  site: NeuronSite;
  unit: number;
}

export class NeuronSpace {
  readonly blocks: NeuronBlock[] = [];
  readonly size: number;
  readonly sites: readonly NeuronSite[];

  constructor(readonly numLayers: number, sites: readonly NeuronSite[], widths: (site: NeuronSite) => number) {
    const ordered = SITE_ORDER.filter((s) => sites.includes(s));
    if (ordered.length === 0) throw new HookError('a neuron space needs at least one site');
    let offset = 0;
    for (let layer = 0; layer < numLayers; layer++) {
      for (const site of ordered) {
        const width = widths(site);
        this.blocks.push({ layer, site, width, offset });
        offset += width;
      }
    }
    this.size = offset;
    this.sites = ordered;
  }

  static forModel(c: LlamaConfig, pool: PoolName | readonly NeuronSite[] = 'ffn'): NeuronSpace {
    const sites = typeof pool === 'string' ? POOLS[pool] : pool;
    return new NeuronSpace(c.numLayers, sites, (s) => siteWidth(c, s));
  }

  /** The hook points of the space's blocks, in index order. */
  hookPoints(): string[] {
    return this.blocks.map((b) => hookPointName(b.layer, b.site));
  }

  /** JSON form, saved with every artefact that uses global indices. */
  describe(): { numLayers: number; sites: NeuronSite[]; widths: Record<string, number>; size: number } {
    const widths: Record<string, number> = {};
    for (const b of this.blocks) widths[b.site] = b.width;
    return { numLayers: this.numLayers, sites: [...this.sites], widths, size: this.size };
  }

  static fromDescription(d: { numLayers: number; sites: NeuronSite[]; widths: Record<string, number> }): NeuronSpace {
    return new NeuronSpace(d.numLayers, d.sites, (s) => d.widths[s]!);
  }

  neuron(index: number): Neuron {
    if (!Number.isInteger(index) || index < 0 || index >= this.size) throw new RangeError(`neuron index ${index} outside 0–${this.size - 1}`);
    let lo = 0;
    let hi = this.blocks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.blocks[mid]!.offset <= index) lo = mid;
      else hi = mid - 1;
    }
    const b = this.blocks[lo]!;
    return { index, layer: b.layer, site: b.site, unit: index - b.offset };
  }

  indexOf(layer: number, site: NeuronSite, unit: number): number {
    const b = this.blocks.find((x) => x.layer === layer && x.site === site);
    if (!b || unit < 0 || unit >= b.width) throw new RangeError(`no neuron ${site}[${unit}] in layer ${layer} of this space`);
    return b.offset + unit;
  }

  /** Global indices (of this space) of the neurons whose site is in `pool`, ascending. */
  poolIndices(pool: PoolName | readonly NeuronSite[]): Int32Array {
    const sites = typeof pool === 'string' ? POOLS[pool] : pool;
    const missing = sites.filter((s) => !this.sites.includes(s));
    if (missing.length) throw new HookError(`pool needs sites ${missing.join(', ')}, which this neuron space does not record (it has ${this.sites.join(', ')})`);
    const out: number[] = [];
    for (const b of this.blocks) if (sites.includes(b.site)) for (let u = 0; u < b.width; u++) out.push(b.offset + u);
    return Int32Array.from(out);
  }

  private readonly grouped = new WeakMap<object, Map<string, number[]>>();

  /** Hook point → units, for a set of global indices (cached per array object: masks are reused across batches). */
  groupByPoint(indices: ArrayLike<number>): Map<string, number[]> {
    const cached = this.grouped.get(indices as object);
    if (cached) return cached;
    const byPoint = new Map<string, number[]>();
    for (let i = 0; i < indices.length; i++) {
      const n = this.neuron(indices[i]!);
      const point = hookPointName(n.layer, n.site);
      const list = byPoint.get(point) ?? [];
      list.push(n.unit);
      byPoint.set(point, list);
    }
    this.grouped.set(indices as object, byPoint);
    return byPoint;
  }

  /** The hook interventions of one ablation, for every row of a call. */
  interventions(ablation: Ablation): Intervention[] {
    return [...this.groupByPoint(ablation.neurons)].map(([point, units]) => ({ point, op: interventionOp(ablation), units, values: this.unitValues(ablation, point, units) }));
  }

  /**
   * Interventions that apply rows[i] to batch row i (rows may differ in neurons and op, or be
   * null): one per-row intervention per (hook point, op), whose other rows have no units.
   */
  perRowInterventions(rows: readonly (Ablation | null)[]): Intervention[] {
    const perKey = new Map<string, { point: string; op: Intervention['op']; perRow: number[][]; perRowValues: number[][] | null }>();
    rows.forEach((ablation, row) => {
      if (!ablation || ablation.neurons.length === 0) return;
      const op = interventionOp(ablation);
      for (const [point, units] of this.groupByPoint(ablation.neurons)) {
        const key = `${point}|${op}`;
        let entry = perKey.get(key);
        if (!entry) {
          entry = { point, op, perRow: rows.map(() => []), perRowValues: op === 'zero' ? null : rows.map(() => []) };
          perKey.set(key, entry);
        }
        if (entry.perRow[row]!.length) throw new HookError(`row ${row}: an ablation names neurons at ${point} twice`);
        entry.perRow[row] = units;
        if (entry.perRowValues) entry.perRowValues[row] = this.unitValues(ablation, point, units)!;
      }
    });
    return [...perKey.values()].map(({ point, op, perRow, perRowValues }) => (perRowValues ? { point, op, perRow, perRowValues } : { point, op, perRow }));
  }

  /** Per-unit values of `ablation` at `point` (none for zeroing). */
  private unitValues(ablation: Ablation, point: string, units: readonly number[]): number[] | undefined {
    switch (ablation.op) {
      case 'zero':
        return undefined;
      case 'scale':
        return units.map(() => ablation.factor);
      case 'set':
        return units.map(() => ablation.value);
      case 'mean': {
        if (ablation.means.length !== this.size) throw new HookError(`mean ablation: ${ablation.means.length} means for a neuron space of ${this.size} neurons`);
        const block = this.blocks.find((b) => hookPointName(b.layer, b.site) === point)!;
        return units.map((u) => ablation.means[block.offset + u]!);
      }
    }
  }

  /** Neurons per layer, for a set of global indices (Fig. 1). */
  layerHistogram(indices: ArrayLike<number>): number[] {
    const counts = new Array<number>(this.numLayers).fill(0);
    for (let i = 0; i < indices.length; i++) counts[this.neuron(indices[i]!).layer]!++;
    return counts;
  }

  /** Neurons per site, for a set of global indices (App. G, Fig. 24). */
  siteHistogram(indices: ArrayLike<number>): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const s of this.sites) counts[s] = 0;
    for (let i = 0; i < indices.length; i++) counts[this.neuron(indices[i]!).site]!++;
    return counts;
  }
}

function interventionOp(a: Ablation): Intervention['op'] {
  return a.op === 'zero' ? 'zero' : a.op === 'scale' ? 'scale' : 'set';
}

/** k neurons drawn uniformly without replacement from `pool` (global indices), seeded; ascending. */
export function randomNeurons(pool: Int32Array, k: number, seed: number): Int32Array {
  if (!Number.isInteger(k) || k < 0 || k > pool.length) {
    throw new RangeError(`cannot draw k = ${k} random neurons from a pool of ${pool.length}; k must be an integer in 0–${pool.length}`);
  }
  return Int32Array.from(sampleNegatives(Array.from(pool), k, seed)).sort();
}
