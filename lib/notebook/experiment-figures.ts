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

/**
 * App. G: one acc_drop heatmap per pool in a grid of `cols` columns, on one colour scale
 * symmetric around 0 (red = drop, blue = gain), its bar on the first panel.
 */
export function poolHeatmaps(results: Partial<Record<string, InterResult>>, sizes: Partial<Record<string, number>>, title: string, cols = 3): PlotlySpec {
  const pools = Object.keys(results);
  const R = results[pools[0]!]!.relations;
  const gridRows = Math.ceil(pools.length / cols);
  const ax = (i: number) => (i === 0 ? '' : String(i + 1));
  const lim = Math.max(1, ...pools.flatMap((p) => results[p]!.dropPercent.flat().filter(Number.isFinite).map(Math.abs)));
  // Every panel has the same columns; the bottom panel of each grid column names them.
  const bottom = (i: number) => i + cols >= pools.length;
  const axes = pools.flatMap((_, i) => [
    [`xaxis${ax(i)}`, { showticklabels: bottom(i), tickangle: -90, tickfont: { size: 8 }, ...(bottom(i) ? { title: { text: 'zeroed relation', font: { size: 11 } } } : {}) }],
    [`yaxis${ax(i)}`, { autorange: 'reversed', showticklabels: i % cols === 0, tickfont: { size: 8 } }],
  ]);
  return {
    data: pools.map((p, i) => ({
      type: 'heatmap',
      z: results[p]!.dropPercent,
      x: R,
      y: R,
      zmin: -lim,
      zmax: lim,
      colorscale: [[0, '#2166AC'], [0.5, '#F7F7F7'], [1, '#B2182B']],
      showscale: i === 0,
      ...(i === 0 ? { colorbar: { title: { text: 'acc_drop %' } } } : {}),
      xaxis: `x${ax(i)}`,
      yaxis: `y${ax(i)}`,
      hovertemplate: `${p}: evaluated %{y}, zeroed %{x}: %{z:.1f} %<extra></extra>`,
    })),
    layout: {
      title: { text: title },
      height: 430 * gridRows + 160,
      grid: { rows: gridRows, columns: cols, pattern: 'independent', ygap: 0.12 },
      annotations: pools.map((p, i) => ({ text: `<b>${p}</b> (${sizes[p]} neurons)`, showarrow: false, xref: `x${ax(i)} domain`, yref: `y${ax(i)} domain`, x: 0.5, y: 1.06 })),
      ...Object.fromEntries(axes),
      margin: { l: 160, b: 150 },
    },
  };
}
