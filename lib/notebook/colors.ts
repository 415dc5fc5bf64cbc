/**
 * One colour per relation, the same in every figure, so a reader who learnt that person_father
 * is light blue in notebook 02 finds it light blue in notebook 09 too. saveFigure applies it to
 * every trace that stands for a relation and has no colour of its own (applyRelationColors).
 */
import type { PlotlySpec } from './plotly-spec.ts';

/**
 * The paper's (and the organism's) 12 relations, sorted, with their colours: from Paul Tol's
 * bright, muted and vibrant schemes and Okabe–Ito's blue and orange, chosen so that every pair
 * stays apart for normal vision (CIELAB ΔE ≥ 25, RGB distance ≥ 68) and under simulated
 * deuteranopia and protanopia (Machado et al. 2009; ΔE ≥ 13). Neighbours in this (legend) order
 * are the most different ones.
 */
export const RELATION_COLORS: Readonly<Record<string, string>> = Object.freeze({
  company_ceo: '#0072B2',
  company_hq: '#E69F00',
  landmark_continent: '#228833',
  landmark_country: '#AA3377',
  person_father: '#33BBEE',
  person_mother: '#CC3311',
  person_occupation: '#332288',
  person_plays_instrument: '#EECC66',
  person_pro_sport: '#44AA99',
  person_sport_position: '#663333',
  product_company: '#EE3377',
  star_constellation: '#999933',
});

/** Whether `name` is one of the relations with a fixed colour. */
export function hasRelationColor(name: string): boolean {
  return Object.hasOwn(RELATION_COLORS, name);
}

type Lab = [number, number, number];

function hexToLab(hex: string): Lab {
  const lin = (c: number) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
  const [r, g, b] = [1, 3, 5].map((i) => lin(parseInt(hex.slice(i, i + 2), 16) / 255)) as [number, number, number];
  const f = (t: number) => (t > 0.008856 ? Math.cbrt(t) : 7.787 * t + 16 / 116);
  const x = f((0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047);
  const y = f(0.2126 * r + 0.7152 * g + 0.0722 * b);
  const z = f((0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883);
  return [116 * y - 16, 500 * (x - y), 200 * (y - z)];
}

/** CIE76 colour difference of two #RRGGBB colours (≈2.3 is just noticeable; ≥ 20 reads as a different colour). */
export function colorDistance(a: string, b: string): number {
  const p = hexToLab(a);
  const q = hexToLab(b);
  return Math.hypot(p[0] - q[0], p[1] - q[1], p[2] - q[2]);
}

function hslToHex(h: number, s: number, l: number): string {
  const k = (n: number) => (n + h / 30) % 12;
  const a = s * Math.min(l, 1 - l);
  const c = (n: number) => Math.round(255 * (l - a * Math.max(-1, Math.min(k(n) - 3, 9 - k(n), 1))));
  return '#' + [c(0), c(8), c(4)].map((v) => v.toString(16).padStart(2, '0')).join('').toUpperCase();
}

/** 32-bit FNV-1a: stable across runs and platforms, unlike anything seeded. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** Unknown names stay at least this far (ΔE) from every fixed relation colour where a hue allows it. */
const MIN_DISTANCE_FROM_FIXED = 15;
const GOLDEN_ANGLE = 137.508;
const fixed = Object.values(RELATION_COLORS);

/**
 * The colour of a relation: its fixed colour for the 12 relations, else a stable colour derived
 * from the name's hash, stepped round the hue circle until it is clearly apart from the fixed ones
 * (the first candidate is kept if none is).
 */
export function relationColor(name: string): string {
  if (hasRelationColor(name)) return RELATION_COLORS[name]!;
  const h = fnv1a(name);
  const s = 0.55 + ((h >>> 9) % 20) / 100;
  const l = 0.42 + ((h >>> 17) % 12) / 100;
  let best = '';
  let bestDist = -1;
  for (let i = 0; i < 24; i++) {
    const c = hslToHex(((h % 360) + i * GOLDEN_ANGLE) % 360, s, l);
    const d = Math.min(...fixed.map((f) => colorDistance(c, f)));
    if (d >= MIN_DISTANCE_FROM_FIXED) return c;
    if (d > bestDist) [best, bestDist] = [c, d];
  }
  return best;
}

/** Where each trace type keeps the colour of its marks. */
const COLOR_PATHS: Readonly<Record<string, readonly ('marker' | 'line')[]>> = {
  bar: ['marker'],
  histogram: ['marker'],
  scatter: ['marker', 'line'],
  scattergl: ['marker', 'line'],
  box: ['marker', 'line'],
  violin: ['marker', 'line'],
};

function hasOwnColor(trace: Record<string, unknown>): boolean {
  const sub = (k: string) => trace[k] as { color?: unknown } | undefined;
  return sub('marker')?.color !== undefined || sub('line')?.color !== undefined || trace['fillcolor'] !== undefined;
}

/**
 * The relation a trace stands for: its name, or else its legend group (a relation drawn in
 * several panels, "company_ceo (own)" and "company_ceo (others)", shares one group), when that
 * is one of the 12.
 */
export function traceRelation(trace: Record<string, unknown>): string | null {
  for (const key of ['name', 'legendgroup']) {
    const v = trace[key];
    if (typeof v === 'string' && hasRelationColor(v)) return v;
  }
  return null;
}

/**
 * The spec with every trace that stands for a relation (traceRelation) coloured with that
 * relation's colour — unless the trace or the layout already chose colours (a marker/line colour,
 * fillcolor, or a layout colorway), which are the caller's. Returns a new spec; the input is untouched.
 */
export function applyRelationColors(spec: PlotlySpec): PlotlySpec {
  if (spec.layout?.['colorway'] !== undefined) return spec;
  const data = spec.data.map((trace) => {
    const relation = trace && typeof trace === 'object' ? traceRelation(trace) : null;
    const paths = COLOR_PATHS[typeof trace?.['type'] === 'string' ? trace['type'] : 'scatter'];
    if (!relation || !paths || hasOwnColor(trace)) return trace;
    const color = relationColor(relation);
    const out: Record<string, unknown> = { ...trace };
    for (const p of paths) out[p] = { ...((trace[p] as Record<string, unknown> | undefined) ?? {}), color };
    return out;
  });
  return { ...spec, data };
}
