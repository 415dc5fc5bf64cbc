/**
 * Hook points (TransformerLens-style names) and the per-call hook specification.
 *
 *   embed                       token embeddings (the residual stream entering layer 0)
 *   blocks.{l}.resid_pre        residual stream entering layer l
 *   blocks.{l}.attn.q|k|v|o     outputs of q_proj/k_proj/v_proj/o_proj (q/k before RoPE)
 *   blocks.{l}.resid_mid        residual stream after attention
 *   blocks.{l}.mlp.gate         gate_proj output, before SiLU
 *   blocks.{l}.mlp.up           up_proj output
 *   blocks.{l}.mlp.act          SiLU(gate)·up, the input of down_proj (TransformerLens's hook_post)
 *   blocks.{l}.mlp.down         down_proj output (the MLP's contribution to the residual)
 *   blocks.{l}.resid_post       residual stream after the MLP
 *   logits                      final logits
 *
 * Hooks are plain data passed to one call (forward/generate); nothing is registered on the
 * model, so nothing can outlive the call, whether it returns or throws.
 */
import * as tf from '@tensorflow/tfjs-core';
import { HookError } from '../errors.ts';
import type { LlamaConfig } from './config.ts';

export type Site = 'resid_pre' | 'attn.q' | 'attn.k' | 'attn.v' | 'attn.o' | 'resid_mid' | 'mlp.gate' | 'mlp.up' | 'mlp.act' | 'mlp.down' | 'resid_post';
/** In the order the decoder computes them. */
export const SITES: readonly Site[] = ['resid_pre', 'attn.q', 'attn.k', 'attn.v', 'attn.o', 'resid_mid', 'mlp.gate', 'mlp.up', 'mlp.act', 'mlp.down', 'resid_post'];

export interface ParsedHookPoint {
  name: string;
  layer: number | null;
  site: Site | 'embed' | 'logits';
  width: number;
}

export function hookPointName(layer: number, site: Site): string {
  return `blocks.${layer}.${site}`;
}

/** Every hook point of the model, in the order a forward pass reaches them. */
export function hookPoints(c: LlamaConfig): string[] {
  const out = ['embed'];
  for (let l = 0; l < c.numLayers; l++) for (const site of SITES) out.push(hookPointName(l, site));
  out.push('logits');
  return out;
}

/** Number of units (output coordinates) at a site. */
export function siteWidth(c: LlamaConfig, site: Site | 'embed' | 'logits'): number {
  switch (site) {
    case 'attn.q':
      return c.numHeads * c.headDim;
    case 'attn.k':
    case 'attn.v':
      return c.numKvHeads * c.headDim;
    case 'mlp.gate':
    case 'mlp.up':
    case 'mlp.act':
      return c.intermediateSize;
    case 'logits':
      return c.vocabSize;
    default:
      return c.hiddenSize;
  }
}

export function parseHookPoint(name: string, c: LlamaConfig): ParsedHookPoint {
  if (name === 'logits' || name === 'embed') return { name, layer: null, site: name, width: siteWidth(c, name) };
  const m = /^blocks\.(\d+)\.(.+)$/.exec(name);
  const site = m?.[2] as Site | undefined;
  if (!m || !site || !SITES.includes(site)) {
    throw new HookError(`unknown hook point "${name}"; expected "embed", "logits" or "blocks.<layer>.<site>" with site one of ${SITES.join(', ')}`);
  }
  const layer = Number(m[1]);
  if (layer >= c.numLayers) {
    throw new HookError(`hook point "${name}": layer ${layer} does not exist; the model has layers 0–${c.numLayers - 1}`);
  }
  return { name, layer, site, width: siteWidth(c, site) };
}

export interface RecordSpec {
  point: string;
  /** 'full': every position [B, T, N] (left-padded, see ForwardResult.lengths); 'mean': mean over each row's real tokens [B, N]. */
  mode: 'full' | 'mean';
  /** With mode 'mean': leave out each row's first real token (the BOS) from the mean. */
  skipFirstToken?: boolean;
}

export type InterventionOp = 'zero' | 'scale' | 'set';

export interface Intervention {
  point: string;
  op: InterventionOp;
  /** Units for every row, or `perRow[i]` = units for batch row i (a different set per row). */
  units?: readonly number[];
  perRow?: readonly (readonly number[])[];
  /** Factor for 'scale', value for 'set' (every unit). */
  value?: number;
  /** Per-unit factors ('scale') or values ('set', e.g. the unit means of a mean ablation), aligned with `units`. */
  values?: readonly number[];
  /** As `values`, aligned with `perRow`. */
  perRowValues?: readonly (readonly number[])[];
}

/** A free-form hook for experiments the declarative ops do not cover. Must return a tensor of the same shape. */
export interface CustomHook {
  point: string;
  fn: (activation: tf.Tensor, ctx: { point: string; step: number }) => tf.Tensor;
}

export interface Hooks {
  record?: readonly RecordSpec[];
  interventions?: readonly Intervention[];
  custom?: readonly CustomHook[];
}

/**
 * Compiled interventions for one call: per hook point an elementwise `x * mul + add`, with
 * mul/add of shape [B or 1, 1, N]. Composing ops on host arrays keeps the device work at one
 * multiply-add per hooked site regardless of how many units or rows are involved.
 */
export class CompiledHooks {
  private readonly affine = new Map<string, { mul: tf.Tensor; add: tf.Tensor | null }>();
  private readonly customs = new Map<string, CustomHook[]>();
  readonly records: (RecordSpec & { parsed: ParsedHookPoint })[] = [];
  readonly recordPoints = new Set<string>();
  step = 0;

  constructor(hooks: Hooks | undefined, config: LlamaConfig, batchSize: number) {
    if (!hooks) return;
    for (const r of hooks.record ?? []) {
      const parsed = parseHookPoint(r.point, config);
      if (r.mode !== 'full' && r.mode !== 'mean') throw new HookError(`record ${r.point}: mode must be "full" or "mean", got ${JSON.stringify(r.mode)}`);
      this.records.push({ ...r, parsed });
      this.recordPoints.add(r.point);
    }
    for (const c of hooks.custom ?? []) {
      parseHookPoint(c.point, config);
      const list = this.customs.get(c.point) ?? [];
      list.push(c);
      this.customs.set(c.point, list);
    }
    const byPoint = new Map<string, Intervention[]>();
    for (const iv of hooks.interventions ?? []) {
      parseHookPoint(iv.point, config);
      const list = byPoint.get(iv.point) ?? [];
      list.push(iv);
      byPoint.set(iv.point, list);
    }
    try {
      for (const [point, ivs] of byPoint) this.compile(point, ivs, config, batchSize);
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  private compile(point: string, ivs: Intervention[], config: LlamaConfig, batchSize: number): void {
    const { width } = parseHookPoint(point, config);
    const perRow = ivs.some((iv) => iv.perRow !== undefined);
    const rows = perRow ? batchSize : 1;
    const mul = new Float32Array(rows * width).fill(1);
    const add = new Float32Array(rows * width);
    let hasAdd = false;
    for (const iv of ivs) {
      if (iv.op !== 'zero' && iv.op !== 'scale' && iv.op !== 'set') {
        throw new HookError(`intervention on ${point}: op must be zero, scale or set, got ${JSON.stringify(iv.op)}`);
      }
      if ((iv.units === undefined) === (iv.perRow === undefined)) {
        throw new HookError(`intervention on ${point}: give exactly one of "units" (all rows) or "perRow" (one list per batch row)`);
      }
      const perUnit = iv.perRow ? iv.perRowValues : iv.values;
      if (perUnit !== undefined) {
        if (iv.op === 'zero') throw new HookError(`intervention on ${point}: op "zero" takes no values`);
        if (iv.value !== undefined) throw new HookError(`intervention on ${point}: give "value" (every unit) or per-unit values, not both`);
      } else if (iv.op !== 'zero' && (typeof iv.value !== 'number' || !Number.isFinite(iv.value))) {
        throw new HookError(`intervention on ${point}: op "${iv.op}" needs a finite "value" or per-unit values`);
      }
      if (iv.perRow && iv.perRow.length !== batchSize) {
        throw new HookError(`intervention on ${point}: perRow has ${iv.perRow.length} lists but the batch has ${batchSize} rows`);
      }
      if (iv.perRow && perUnit && perUnit.length !== batchSize) {
        throw new HookError(`intervention on ${point}: perRowValues has ${perUnit.length} lists but the batch has ${batchSize} rows`);
      }
      for (let r = 0; r < rows; r++) {
        const units = iv.perRow ? iv.perRow[r]! : iv.units!;
        const vals = iv.perRow ? (perUnit as readonly (readonly number[])[] | undefined)?.[r] : (perUnit as readonly number[] | undefined);
        if (vals && vals.length !== units.length) {
          throw new HookError(`intervention on ${point}: ${vals.length} values for ${units.length} units${iv.perRow ? ` in row ${r}` : ''}`);
        }
        units.forEach((u, j) => {
          if (!Number.isInteger(u) || u < 0 || u >= width) {
            throw new HookError(`intervention on ${point}: unit ${u} out of range; the site has units 0–${width - 1}`);
          }
          const value = vals ? vals[j]! : iv.value!;
          if (vals && !Number.isFinite(value)) throw new HookError(`intervention on ${point}: value for unit ${u} is ${value}, expected a finite number`);
          const i = r * width + u;
          if (iv.op === 'zero') {
            mul[i] = 0;
            add[i] = 0;
          } else if (iv.op === 'scale') {
            mul[i]! *= value;
            add[i]! *= value;
          } else {
            mul[i] = 0;
            add[i] = value;
            hasAdd = true;
          }
        });
      }
    }
    this.affine.set(point, {
      mul: tf.tensor3d(mul, [rows, 1, width]),
      add: hasAdd ? tf.tensor3d(add, [rows, 1, width]) : null,
    });
  }

  /** True when anything (intervention, custom hook or recording) touches this point. */
  touches(point: string): boolean {
    return this.affine.has(point) || this.customs.has(point) || this.recordPoints.has(point);
  }

  /** Apply interventions and custom hooks at `point` to a [B, T, N] activation. */
  apply(point: string, x: tf.Tensor): tf.Tensor {
    let out = x;
    const a = this.affine.get(point);
    if (a) {
      out = tf.mul(out, a.mul);
      if (a.add) out = tf.add(out, a.add);
    }
    for (const c of this.customs.get(point) ?? []) {
      const y = c.fn(out, { point, step: this.step });
      if (!(y instanceof tf.Tensor) || y.shape.join() !== out.shape.join()) {
        throw new HookError(`custom hook on ${point} must return a tensor of shape [${out.shape}], got ${y instanceof tf.Tensor ? `[${y.shape}]` : typeof y}`);
      }
      out = y;
    }
    return out;
  }

  dispose(): void {
    for (const { mul, add } of this.affine.values()) {
      mul.dispose();
      add?.dispose();
    }
    this.affine.clear();
  }
}

/** The hooks that concern rows [start, end): per-row unit lists are sliced, the rest is shared. */
export function sliceHooks(hooks: Hooks | undefined, start: number, end: number, batchSize: number): Hooks | undefined {
  if (!hooks || (start === 0 && end === batchSize)) return hooks;
  return {
    ...hooks,
    interventions: hooks.interventions?.map((iv) => {
      if (!iv.perRow) return iv;
      if (iv.perRow.length !== batchSize) throw new HookError(`intervention on ${iv.point}: perRow has ${iv.perRow.length} lists but the batch has ${batchSize} rows`);
      return { ...iv, perRow: iv.perRow.slice(start, end), perRowValues: iv.perRowValues?.slice(start, end) };
    }),
  };
}
