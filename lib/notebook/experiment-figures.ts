/**
 * Figures of the experiments' results, as plotly specs the notebooks show with showFigure: kept
 * here so that a notebook cell says what it plots, not how.
 */
import type { InterResult, IntraResult, PromptSetName } from '../method/experiments.ts';
import type { PlotlySpec } from './figure.ts';

const pct = (x: number) => 100 * x;

/** Fig. 3: per relation, original / random-k (mean ± sd) / relation-k accuracy on one prompt set. */
export function intraBars(intra: IntraResult, set: PromptSetName, title: string): PlotlySpec {
  const x = intra.relations.map((r) => r.name);
  const of = (f: (s: IntraResult['relations'][number]['sets'][string]) => number) => intra.relations.map((r) => pct(f(r.sets[set]!)));
  return {
    data: [
      { type: 'bar', name: 'original', x, y: of((s) => s.original) },
      { type: 'bar', name: `random-${intra.k} (${intra.randomSeeds} seeds)`, x, y: of((s) => s.randomMean), error_y: { type: 'data', array: of((s) => s.randomSd) } },
      { type: 'bar', name: `relation-${intra.k}`, x, y: of((s) => s.relation) },
    ],
    layout: { title: { text: title }, barmode: 'group', yaxis: { title: { text: 'accuracy %' }, range: [0, 105] }, xaxis: { tickangle: -30 }, height: 460 },
  };
}

/** Fig. 4: the acc_drop matrix, red = accuracy drops, blue = it rises, each cell labelled. */
export function interHeatmap(inter: InterResult, title: string): PlotlySpec {
  const R = inter.relations;
  const D = inter.dropPercent;
  const lim = Math.max(1, ...D.flat().filter(Number.isFinite).map(Math.abs));
  const legend = 'acc_drop %<br><span style="font-size:11px">red: accuracy drops<br>blue: accuracy rises</span>';
  return {
    data: [
      {
        type: 'heatmap',
        z: D,
        x: R,
        y: R,
        zmin: -lim,
        zmax: lim,
        // Explicit: red = accuracy drops, white = no change, blue = it rises (plotly's named "RdBu" runs blue→red).
        colorscale: [[0, '#2166AC'], [0.5, '#F7F7F7'], [1, '#B2182B']],
        text: D.map((row) => row.map((v) => (Number.isFinite(v) ? v.toFixed(0) : '–'))),
        texttemplate: '%{text}',
        hovertemplate: 'evaluated %{y}, zeroed %{x}: %{z:.1f} %<extra></extra>',
        colorbar: { title: { text: legend } },
      },
    ],
    layout: {
      title: { text: `${title}<br><span style="font-size:12px">red = accuracy drops when the column's neurons are zeroed, blue = it rises</span>` },
      height: 660,
      xaxis: { title: { text: 'zeroed relation' }, tickangle: -40 },
      yaxis: { title: { text: 'evaluated relation' }, autorange: 'reversed' },
      margin: { l: 190, b: 170 },
    },
  };
}
