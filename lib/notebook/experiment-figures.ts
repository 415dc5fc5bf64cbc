/**
 * Figures of the experiments' results, as plotly specs the notebooks show with showFigure: kept
 * here so that a notebook cell says what it plots, not how.
 */
import { sweepCurves, type InterResult, type IntraResult, type MultilingualResult, type PromptSetName, type SweepResult } from '../method/experiments.ts';
import type { PlotlySpec } from './figure.ts';

const pct = (x: number) => 100 * x;

/** Fig. 3: per relation, original / random-k (mean ± sd) / relation-k accuracy on one prompt set. */
export function intraBars(intra: IntraResult, set: PromptSetName, title: string, height = 460): PlotlySpec {
  const x = intra.relations.map((r) => r.name);
  const of = (f: (s: IntraResult['relations'][number]['sets'][string]) => number) => intra.relations.map((r) => pct(f(r.sets[set]!)));
  return {
    data: [
      { type: 'bar', name: 'original', x, y: of((s) => s.original) },
      { type: 'bar', name: `random-${intra.k} (${intra.randomSeeds} seeds)`, x, y: of((s) => s.randomMean), error_y: { type: 'data', array: of((s) => s.randomSd) } },
      { type: 'bar', name: `relation-${intra.k}`, x, y: of((s) => s.relation) },
    ],
    layout: { title: { text: title }, barmode: 'group', yaxis: { title: { text: 'accuracy %' }, range: [0, 105] }, xaxis: { tickangle: -30 }, height },
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
 * Fig. 7: original accuracy per relation and language (bars), with the relation's or random neurons
 * zeroed (markers). One trace per language: the legend names the bar colours and relations sit on a
 * plain category axis; scattermode "group" + offsetgroup put each language's markers on its own bar.
 */
export function multilingualBars(result: MultilingualResult, title: string): PlotlySpec {
  const palette = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b'];
  const k = result.k;
  const of = (l: string) => result.rows.filter((a) => a.language === l);
  const x = (l: string) => of(l).map((a) => a.relation);
  const langs = result.languages;
  return {
    data: [
      ...langs.map((l, i) => ({ type: 'bar', name: l, legendgroup: l, offsetgroup: l, x: x(l), y: of(l).map((a) => pct(a.original)), marker: { color: palette[i % 6] } })),
      ...langs.map((l, i) => ({
        type: 'scatter', mode: 'markers', name: `relation-${k} zeroed`, legendgroup: 'relation', showlegend: i === 0, offsetgroup: l,
        x: x(l), y: of(l).map((a) => pct(a.relation_k)), marker: { symbol: 'line-ew-open', size: 10, color: 'black', line: { width: 2.5 } },
      })),
      ...langs.map((l, i) => ({
        type: 'scatter', mode: 'markers', name: `random-${k} zeroed`, legendgroup: 'random', showlegend: i === 0, offsetgroup: l,
        x: x(l), y: of(l).map((a) => pct(a.random)), marker: { symbol: 'circle-open', size: 6, color: 'gray' },
      })),
    ],
    layout: {
      title: { text: `${title}<br><span style="font-size:12px">bars: original accuracy per language; markers: with the relation's or random neurons zeroed</span>` },
      barmode: 'group', scattermode: 'group', bargap: 0.2, bargroupgap: 0.05, xaxis: { tickangle: -30, automargin: true },
      yaxis: { title: { text: 'accuracy %' }, range: [0, 105] }, legend: { title: { text: 'language' } }, height: 520,
    },
  };
}

/** Figs. 5 / 14–15: the k-sweep in two panels, each relation's own P^eva accuracy (left) and the mean of the others' (right). */
export function sweepPanels(sweep: SweepResult, title: string): PlotlySpec {
  const { own, others } = sweepCurves(sweep);
  const kLabel = sweep.ks.map((x) => `${x.toLocaleString('en-US')} (${Number(((100 * x) / sweep.poolSize).toPrecision(2))} %)`);
  const kAxis = { title: { text: 'k (% of FFN neurons)' }, tickangle: -40 };
  return {
    data: [
      ...sweep.relations.flatMap((r, i) => [
        { type: 'scatter', mode: 'lines+markers', name: r, legendgroup: r, x: kLabel, y: own[i], xaxis: 'x', yaxis: 'y' },
        { type: 'scatter', mode: 'lines+markers', name: `${r} (others)`, legendgroup: r, showlegend: false, line: { dash: 'dot' }, x: kLabel, y: others[i], xaxis: 'x2', yaxis: 'y2' },
      ]),
      { type: 'scatter', mode: 'lines', name: 'solid: own relation (left)', x: [null], y: [null], line: { color: '#444' }, legendrank: 1 },
      { type: 'scatter', mode: 'lines', name: 'dotted: mean of the other relations (right)', x: [null], y: [null], line: { color: '#444', dash: 'dot' }, legendrank: 2 },
    ],
    layout: {
      title: { text: title }, height: 500,
      grid: { rows: 1, columns: 2, pattern: 'independent' }, legend: { title: { text: 'relation' } },
      xaxis: kAxis, xaxis2: kAxis,
      yaxis: { title: { text: 'accuracy % (own)' }, range: [0, 102] }, yaxis2: { title: { text: 'accuracy % (others)' }, range: [0, 102] },
    },
  };
}
