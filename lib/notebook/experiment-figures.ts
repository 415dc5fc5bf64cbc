/**
 * Figures of the experiments' results, as plotly specs the notebooks show with showFigure: kept
 * here so that a notebook cell says what it plots, not how.
 */
import {
  sweepCurves,
  type Eva2Result,
  type FactFrequencyResult,
  type FlipCategoriesResult,
  type InterResult,
  type IntraResult,
  type MultilingualResult,
  type PromptSetName,
  type SweepResult,
} from '../method/experiments.ts';
import { topNeurons, type Ranking, type RelationRanking } from '../method/ranking.ts';
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

/** Fig. 8: per relation, original and relation-k accuracy on P^eva and on P^eva-2. */
export function eva2Bars(result: Eva2Result, title: string): PlotlySpec {
  const { rows, k } = result;
  const x = rows.map((r) => r.relation);
  return {
    data: [
      { type: 'bar', name: 'P^eva original', x, y: rows.map((r) => r.evaOriginal), marker: { color: '#9ecae1' } },
      { type: 'bar', name: `P^eva relation-${k}`, x, y: rows.map((r) => r.evaRelation), marker: { color: '#3182bd' } },
      { type: 'bar', name: 'P^eva-2 original', x, y: rows.map((r) => r.eva2Original), marker: { color: '#fdae6b' } },
      { type: 'bar', name: `P^eva-2 relation-${k}`, x, y: rows.map((r) => r.eva2Relation), marker: { color: '#e6550d' } },
    ],
    layout: { title: { text: title }, barmode: 'group', yaxis: { title: { text: 'accuracy %' }, range: [0, 105] }, xaxis: { tickangle: -30 }, height: 460 },
  };
}

/** Table 4 stacked: per relation, the categories' shares of its flips, the flip count above each bar. */
export function flipCategoryBars(result: FlipCategoriesResult, title: string): PlotlySpec {
  const cats = result.relations;
  const names = { repeat: 'repeat', the: '"The"', 'a.': '"A."', other: 'other' } as const;
  return {
    data: (['repeat', 'the', 'a.', 'other'] as const).map((c) => ({ type: 'bar', name: names[c], x: cats.map((x) => x.relation), y: cats.map((x) => (x.flips ? 100 * x.shares[c] : 0)) })),
    layout: {
      title: { text: `${title}<br><span style="font-size:12px">n = flipped prompts per relation</span>` },
      barmode: 'stack',
      yaxis: { title: { text: '% of flips' }, range: [0, 110] },
      xaxis: { tickangle: -30, automargin: true },
      height: 460,
      // A relation without flips gets a note instead of an unexplained empty slot.
      annotations: cats.map((x) => ({
        x: x.relation,
        y: x.flips ? 100 : 0,
        yanchor: 'bottom',
        showarrow: false,
        text: x.flips ? `n = ${x.flips}` : 'no flips:<br>nothing to<br>categorise',
        font: { size: x.flips ? 11 : 10, color: x.flips ? '#333' : '#888' },
      })),
    },
  };
}

/** Fig. 23: per relation, the relative frequency difference of resilient vs sensitive facts, labelled with the group sizes. */
export function frequencyBars(result: FactFrequencyResult, title: string): PlotlySpec {
  const rows = result.rows ?? [];
  return {
    data: [
      {
        type: 'bar',
        x: rows.map((r) => r.relation),
        y: rows.map((r) => (Number.isFinite(r.dif) ? 100 * r.dif : null)),
        // Short labels outside the bars keep one readable size (inside, plotly shrinks each to fit its bar).
        text: rows.map((r) => `${r.resilient} / ${r.sensitive}`),
        textposition: 'outside',
        cliponaxis: false,
        textfont: { size: 11 },
        hovertemplate: '%{x}: %{y:.1f} % (resilient / sensitive facts: %{text})<extra></extra>',
      },
    ],
    layout: {
      title: { text: `${title}<br><span style="font-size:12px">bar labels: resilient / sensitive facts</span>` },
      yaxis: { title: { text: 'dif % (> 0: resilient more frequent)' } },
      xaxis: { tickangle: -30, automargin: true },
      height: 440,
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

/**
 * Fig. 22: one panel per zeroed relation (a grid of `cols` columns), every relation's P^eva
 * accuracy against k as a share of the FFN pool; the zeroed relation's own line dashed and thick.
 */
export function sweepGrid(sweep: SweepResult, title: string, cols = 4): PlotlySpec {
  const R = sweep.relations;
  const rows = Math.ceil(R.length / cols);
  const axis = (i: number) => (i === 0 ? '' : String(i + 1));
  const x = sweep.ks.map((k) => (100 * k) / sweep.poolSize);
  const lines = R.flatMap((z, zi) =>
    R.map((e, ei) => ({
      type: 'scatter', mode: 'lines', name: e, legendgroup: e, showlegend: zi === (ei === 0 ? 1 : 0), legendrank: 10 + ei,
      line: { dash: e === z ? 'dash' : 'solid', width: e === z ? 3 : 1 },
      x, y: sweep.ks.map((_, ki) => 100 * sweep.accuracy[zi]![ki]![ei]!),
      xaxis: `x${axis(zi)}`, yaxis: `y${axis(zi)}`, hovertemplate: `zeroed ${z}, evaluated ${e}: %{y:.0f} %<extra></extra>`,
    })),
  );
  const key = { type: 'scatter', mode: 'lines', name: 'dashed, thick: the zeroed relation (* in the panel title)', x: [null], y: [null], line: { color: '#444', dash: 'dash', width: 3 }, legendrank: 1 };
  const xMax = (100 * Math.max(...sweep.ks)) / sweep.poolSize;
  return {
    data: [...lines, key],
    layout: {
      title: { text: title },
      grid: { rows, columns: cols, pattern: 'independent' }, height: 260 * rows + 200, legend: { orientation: 'h', y: -0.08, yanchor: 'top' },
      annotations: R.map((z, zi) => ({ text: `${z}*`, showarrow: false, xref: `x${axis(zi)} domain`, yref: `y${axis(zi)} domain`, x: 0.5, y: 1.12, font: { size: 11 } })),
      ...Object.fromEntries(R.flatMap((_, zi) => [[`xaxis${axis(zi)}`, { range: [0, xMax] }], [`yaxis${axis(zi)}`, { range: [0, 102] }]])),
    },
  };
}

/**
 * Figs. 1–2's premise: every relation's AP by rank over the FFN pool (log ranks, a few hundred
 * points per curve, also for LLaMA-2's 835,584 neurons), the chance AP and the cut at k;
 * `highlight` draws one relation in black over the others.
 */
export function apByRankCurves(ranking: Ranking, opts: { pool: number; k: number; chance: number; title: string; highlight?: string }): PlotlySpec {
  const { pool, k, chance, highlight } = opts;
  const ranks = [...new Set(Array.from({ length: 300 }, (_, i) => Math.round(Math.exp((i / 299) * Math.log(pool)))))];
  const curve = (r: RelationRanking) => {
    const top = topNeurons(ranking, r.name, pool);
    const style = highlight === undefined ? {} : r.name === highlight ? { line: { width: 3, color: 'black' } } : { line: { width: 1 }, opacity: 0.5 };
    return { type: 'scatter', mode: 'lines', name: r.name === highlight ? `${r.name} (yours)` : r.name, x: ranks, y: ranks.map((x) => r.ap[top[x - 1]!]!), ...style };
  };
  const order = [...ranking.relations.filter((r) => r.name !== highlight), ...ranking.relations.filter((r) => r.name === highlight)];
  return {
    data: [
      ...order.map(curve),
      { type: 'scatter', mode: 'lines', name: `chance (${chance.toFixed(2)})`, x: [1, pool], y: [chance, chance], line: { dash: 'dash', color: highlight === undefined ? 'black' : 'gray' } },
      { type: 'scatter', mode: 'lines', name: `k = ${k}`, x: [k, k], y: [0, 1], line: { dash: 'dot', color: 'gray' } },
    ],
    layout: { title: { text: opts.title }, xaxis: { title: { text: 'rank' }, type: 'log' }, yaxis: { title: { text: 'average precision' }, range: [0, 1.02] }, height: 470 },
  };
}
