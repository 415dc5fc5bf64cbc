/** §4.1, Fig. 1: in which layers the top-k neurons of each relation sit. */
import type { Analysis } from '../experiment.ts';
import type { PoolName } from '../neurons.ts';
import { paperNumbers } from '../paper-numbers.ts';
import { type Ranking, topNeurons } from '../ranking.ts';
import type { VerdictInput } from '../verdicts.ts';

export interface LayersParams {
  k: number;
  pool?: PoolName;
}

export interface LayerShares {
  relation: string;
  middleShare: number;
  firstQuarterShare: number;
  lastQuarterShare: number;
  peakLayer: number;
  peakInMiddle: boolean;
}

export interface LayersResult {
  k: number;
  numLayers: number;
  relations: string[];
  /** counts[r][l]: relation r's top-k neurons in layer l. */
  counts: number[][];
  /** The middle layers: all but the first and last quarter (floor(L/4) layers each). */
  middle: number[];
  shares: LayerShares[];
}

/** Per relation, how many of its top-k neurons each layer holds. */
export function layerDistribution(ranking: Ranking, k: number, pool: PoolName = 'ffn'): { relations: string[]; k: number; counts: number[][] } {
  const names = ranking.relations.map((r) => r.name);
  return { relations: names, k, counts: names.map((n) => ranking.space.layerHistogram(topNeurons(ranking, n, k, pool))) };
}

function summarise(ranking: Ranking, params: LayersParams): LayersResult {
  const { k } = params;
  const dist = layerDistribution(ranking, k, params.pool);
  const L = ranking.space.numLayers;
  const layers = Array.from({ length: L }, (_, l) => l);
  const q = Math.floor(L / 4);
  const middle = layers.filter((l) => l >= q && l < L - q);
  const share = (c: number[], which: (l: number) => boolean) => layers.filter(which).reduce((a, l) => a + c[l]!, 0) / k;
  const shares = dist.relations.map((relation, i) => {
    const c = dist.counts[i]!;
    const peakLayer = c.indexOf(Math.max(...c));
    return {
      relation,
      middleShare: middle.reduce((a, l) => a + c[l]!, 0) / k,
      firstQuarterShare: share(c, (l) => l < q),
      lastQuarterShare: share(c, (l) => l >= L - q),
      peakLayer,
      peakInMiddle: middle.includes(peakLayer),
    };
  });
  return { k, numLayers: L, relations: dist.relations, counts: dist.counts, middle, shares };
}

/** Top-k neurons per layer, one row per relation (columns L0, L1, …). */
export function layerTable(result: LayersResult): Record<string, string | number>[] {
  return result.relations.map((relation, i) => ({ relation, ...Object.fromEntries(result.counts[i]!.map((c, l) => [`L${l}`, c])) }));
}

/** The shares per relation as the notebook's table shows them. */
export function layerShareTable(result: LayersResult): Record<string, string | number | boolean>[] {
  return result.shares.map((r) => ({
    relation: r.relation,
    'middle share': r.middleShare,
    'first-quarter share': r.firstQuarterShare,
    'last-quarter share': r.lastQuarterShare,
    'peak layer': r.peakLayer,
    'peak in middle': r.peakInMiddle,
  }));
}

function verdicts(result: LayersResult): VerdictInput[] {
  const { shares: rows, middle, numLayers: L, k } = result;
  const paperK = paperNumbers().ranking.k;
  const pooledMiddle = rows.reduce((a, r) => a + r.middleShare, 0) / rows.length;
  const uniform = middle.length / L;
  const peaks = rows.filter((r) => r.peakInMiddle).length;
  const span = `${middle[0]}–${middle[middle.length - 1]}`;
  const firstLast = rows.reduce((a, r) => a + r.firstQuarterShare + r.lastQuarterShare, 0) / rows.length;
  const quarter = (pick: (r: LayerShares) => number) => ((100 * rows.reduce((a, r) => a + pick(r), 0)) / rows.length).toFixed(1);
  return [
    {
      claim: 'Relation-specific neurons sit mostly in the middle layers',
      paper: `most of the top-${paperK} in the middle layers (7B and 13B)`,
      ours: `${(100 * pooledMiddle).toFixed(1)} % of the top-${k} in layers ${span} (uniform: ${(100 * uniform).toFixed(0)} %); peak layer in the middle for ${peaks}/${rows.length} relations`,
      status: pooledMiddle > uniform && peaks > rows.length / 2 ? 'reproduced' : 'differs',
      detail: `criterion: middle share above uniform and the peak layer in the middle for most relations; ${L} layers${L < 8 ? ' (a very shallow model: "middle" is only ' + middle.length + ' layers)' : ''}`,
    },
    {
      claim: 'Unlike language-specific neurons, they are not concentrated in the first and last layers',
      paper: 'not first/last (contrast with Kojima et al. 2024)',
      ours: `${(100 * firstLast).toFixed(1)} % in the first and last quarter (uniform: ${(100 * (1 - uniform)).toFixed(0)} %)`,
      status: firstLast < 1 - uniform ? 'reproduced' : 'differs',
      detail: `first quarter ${quarter((r) => r.firstQuarterShare)} %, last quarter ${quarter((r) => r.lastQuarterShare)} %`,
    },
  ];
}

export const layers: Analysis<Ranking, LayersParams, LayersResult> = {
  name: 'layers',
  paper: '§4.1, Fig. 1',
  summarise,
  verdicts,
};
