/**
 * App. C, Figs. 13–16: the layers, intra-relation and k-sweep experiments repeated on Gemma-7B.
 * The experiments are those of notebooks 02, 04 and 06 (layers, intraRelation, kSweep); this
 * Analysis reads their results against what the paper reports for Gemma-7B, and on any other
 * model says its claims are not applicable.
 */
import type { Analysis } from '../experiment.ts';
import type { LlamaConfig } from '../../model/config.ts';
import { paperNumbers } from '../paper-numbers.ts';
import { mean } from '../../stats/summary.ts';
import { holds, type VerdictInput } from '../verdicts.ts';
import { relationSpecific, type IntraResult } from './intra-relation.ts';
import { sweepCurves, type SweepResult } from './k-sweep.ts';
import type { LayersResult } from './layers.ts';

/** The results App. C repeats. */
export interface GemmaInput {
  layers: LayersResult;
  /** With the P^det set. */
  intra: IntraResult;
  sweep: SweepResult;
}

export interface GemmaParams {
  /** The model the results are of: only Gemma's are tested against App. C. */
  model: Pick<LlamaConfig, 'family' | 'numLayers' | 'hiddenSize'>;
}

export interface GemmaResult {
  model: GemmaParams['model'];
  isGemma: boolean;
  /** Fig. 13: the top-k's mean share in the middle layers, the uniform share and the relations peaking there. */
  layers: { k: number; middle: number[]; middleShare: number; uniform: number; peaks: number; relations: number };
  /** Fig. 16: relations whose P^det relation-k is below random by > 2 sd, and the mean accuracies %. */
  intra: { below: number; relations: number; relationMean: number; randomMean: number };
  /** Figs. 14–15: at the largest swept k within 1 % of the FFN pool, the mean drop (points) of the own and the other relations. */
  sweep: { k: number; poolSize: number; ownDrop: number; othersDrop: number };
}

function summarise(input: GemmaInput, params: GemmaParams): GemmaResult {
  const { layers, intra, sweep } = input;
  const middle = layers.middle;
  const det = (field: 'relation' | 'randomMean') => mean(intra.relations.map((r) => 100 * r.sets['det']![field]));
  const pool = sweep.poolSize;
  const { own, others } = sweepCurves(sweep);
  const kiSmall = sweep.ks.reduce((best, x, i) => (x <= 0.01 * pool ? i : best), 0);
  return {
    model: params.model,
    isGemma: params.model.family === paperNumbers().gemma.family,
    layers: {
      k: layers.k,
      middle,
      middleShare: mean(layers.shares.map((r) => r.middleShare)),
      uniform: middle.length / layers.numLayers,
      peaks: layers.shares.filter((r) => middle.includes(r.peakLayer)).length,
      relations: layers.shares.length,
    },
    intra: { below: relationSpecific(intra, 'det').length, relations: intra.relations.length, relationMean: det('relation'), randomMean: det('randomMean') },
    sweep: {
      k: sweep.ks[kiSmall]!,
      poolSize: pool,
      ownDrop: mean(sweep.relations.map((_, i) => own[i]![0]! - own[i]![kiSmall]!)),
      othersDrop: mean(sweep.relations.map((_, i) => others[i]![0]! - others[i]![kiSmall]!)),
    },
  };
}

/** App. C's claims; on a model that is not Gemma each is not applicable (with our numbers shown). */
function verdicts(result: GemmaResult): VerdictInput[] {
  const paper = paperNumbers().gemma;
  const { model: cfg, layers: l, intra: i, sweep: s } = result;
  const notGemma = {
    status: 'not applicable' as const,
    detail: `not Gemma (${cfg.family}, ${cfg.numLayers} layers, hidden ${cfg.hiddenSize}): App. C's claims are about Gemma-7B; give its weights (RSN_MODEL) to test them`,
  };
  const when = (criterion: boolean, detail: string) => (result.isGemma ? { status: holds(criterion), detail } : notGemma);
  const span = `${l.middle[0]}–${l.middle[l.middle.length - 1]}`;
  const allFall = `${paper.allRelationsFallBeyondK / 1000}k`;
  return [
    {
      claim: 'Gemma-7B: the top-k neurons peak in the middle layers, though more spread out than in LLaMA-2',
      paper: 'middle-layer peak (Fig. 13)',
      ours: `${(100 * l.middleShare).toFixed(1)} % of the top-${l.k} in layers ${span} (uniform ${(100 * l.uniform).toFixed(0)} %); peak in the middle for ${l.peaks}/${l.relations} relations`,
      ...when(l.middleShare > l.uniform && l.peaks > l.relations / 2, 'criterion: middle share above uniform and the peak layer in the middle for most relations'),
    },
    {
      claim: "Gemma-7B: zeroing a relation's top-k drops its accuracy clearly more than zeroing k random neurons",
      paper: 'clear intra-relation drops against random (Fig. 16)',
      ours: `P^det: ${i.below}/${i.relations} relations below random by > 2 sd; mean ${i.relationMean.toFixed(1)} % (relation-k) vs ${i.randomMean.toFixed(1)} % (random-k)`,
      ...when(i.below >= Math.ceil(0.75 * i.relations), 'criterion: ≥ 3/4 of the relations below random by > 2 sd on P^det'),
    },
    {
      claim: `Gemma-7B k-sweep: a relation's own accuracy falls first; all relations fall beyond about ${allFall} neurons`,
      paper: `own first; all fall beyond ≈ ${allFall} (Figs. 14–15)`,
      ours: `at k = ${s.k} (${((100 * s.k) / s.poolSize).toFixed(2)} % of the pool): own accuracy −${s.ownDrop.toFixed(1)} points, others −${s.othersDrop.toFixed(1)} points`,
      ...when(s.ownDrop > s.othersDrop + 5, "criterion: at the largest k within 1 % of the FFN pool, the own drop exceeds the others' by more than 5 points"),
    },
  ];
}

export const gemma: Analysis<GemmaInput, GemmaParams, GemmaResult> = {
  name: 'gemma',
  paper: 'App. C, Figs. 13–16',
  summarise,
  verdicts,
};

/** Fig. 13's table: top-k neurons per layer, each relation's middle share and peak layer. */
export function gemmaLayerTable(layers: LayersResult): Record<string, string | number>[] {
  return layers.relations.map((relation, i) => {
    const c = layers.counts[i]!;
    return { relation, ...Object.fromEntries(c.map((n, l) => [`L${l}`, n])), 'middle share': layers.shares[i]!.middleShare, 'peak layer': layers.shares[i]!.peakLayer };
  });
}

/** Fig. 16's table: accuracy % on P^eva and P^det, original / random-k mean (± sd on P^det) / relation-k. */
export function gemmaIntraTable(intra: IntraResult): Record<string, string | number>[] {
  return intra.relations.map((r) => {
    const e = r.sets['eva']!;
    const d = r.sets['det']!;
    return {
      relation: r.name,
      'P^eva original': 100 * e.original, 'P^eva random': 100 * e.randomMean, 'P^eva relation': 100 * e.relation,
      'P^det original': 100 * d.original, 'P^det random': 100 * d.randomMean, '± sd': 100 * d.randomSd, 'P^det relation': 100 * d.relation,
    };
  });
}
