/** A plotly.js figure: traces, layout, config (https://plotly.com/javascript/reference/). */
export interface PlotlySpec {
  data: Record<string, unknown>[];
  layout?: Record<string, unknown>;
  config?: Record<string, unknown>;
}
