/**
 * App. E, Fig. 23: are the facts that survive the deactivation of a relation's top-k (resilient)
 * more frequent in the pretraining data than those that are lost (sensitive)?
 */
import type { Analysis } from '../experiment.ts';
import type { Dataset } from '../dataset.ts';
import { knownPrompts, type KnownFacts } from '../known.ts';
import type { IntraResult } from './intra-relation.ts';
import { paperNumbers } from '../paper-numbers.ts';
import { mean } from '../../stats/summary.ts';
import { wilcoxonSignedRank, type WilcoxonResult } from '../../stats/wilcoxon.ts';
import type { VerdictInput } from '../verdicts.ts';

/** How often a fact occurs in the pretraining corpus: lines with subject and object, or lines stating it. */
export type FrequencyMeasure = 'cooccurrence' | 'mentions';

export function frequencyMeasure(value: unknown): FrequencyMeasure {
  if (value !== 'cooccurrence' && value !== 'mentions') throw new Error(`frequency = ${JSON.stringify(value)}: use "cooccurrence" or "mentions"`);
  return value;
}

/** A fact of the pretraining corpus with its frequencies (the organism's world.json). */
export interface FactFrequencies {
  relation: string;
  subject: string;
  object: string;
  mentions: number;
  cooccurrence: number;
}

export interface FactFrequencyInput {
  intra: IntraResult;
  dataset: Dataset;
  known: KnownFacts;
  /** The intra stage's P^det limit per relation (its plan's detLimit): the facts are the prompts it ran. */
  detLimit: number | undefined;
  /** The corpus's facts, or null when the model's pretraining frequencies are not available. */
  facts: readonly FactFrequencies[] | null;
  /** Why there are no frequencies (said in the verdicts when `facts` is null). */
  noFacts?: string;
}

export interface FactFrequencyRow {
  relation: string;
  /** Known P^det facts kept / lost with the relation's top-k zeroed (those with a frequency). */
  resilient: number;
  sensitive: number;
  meanResilient: number;
  meanSensitive: number;
  /** (mean resilient − mean sensitive) / mean sensitive: > 0 when resilient facts are more frequent; NaN when a group is empty. */
  dif: number;
}

export interface FactFrequencyResult {
  k: number;
  frequency: FrequencyMeasure;
  /** null: no frequencies, for the reason in `noFacts`. */
  rows: FactFrequencyRow[] | null;
  noFacts: string;
  /** The relations with both groups, and the Wilcoxon signed-rank test of their dif (null when none). */
  tested: FactFrequencyRow[];
  test: WilcoxonResult | null;
  /** The relations without both groups, each with the group it lacks. */
  excluded: string[];
}

function summarise(input: FactFrequencyInput, params: { frequency: FrequencyMeasure }): FactFrequencyResult {
  const { intra, facts } = input;
  const frequency = params.frequency;
  const noFacts = input.noFacts ?? 'no fact frequencies';
  if (!facts) return { k: intra.k, frequency, rows: null, noFacts, tested: [], test: null, excluded: [] };
  const freq = new Map(facts.map((f) => [`${f.relation}\u0000${f.subject}\u0000${f.object}`, f[frequency]]));
  const m = (xs: number[]) => (xs.length ? mean(xs) : NaN);
  const rows = intra.relations.map((r) => {
    const prompts = knownPrompts(input.dataset, input.known, r.name).slice(0, input.detLimit);
    const lost = new Set(r.sets['det']!.flips.map((f) => f.prompt));
    const f = (ps: typeof prompts) => ps.map((p) => freq.get(`${r.name}\u0000${p.subject}\u0000${p.object}`)).filter((x): x is number => x !== undefined);
    const res = f(prompts.filter((p) => !lost.has(p.text)));
    const sen = f(prompts.filter((p) => lost.has(p.text)));
    return { relation: r.name, resilient: res.length, sensitive: sen.length, meanResilient: m(res), meanSensitive: m(sen), dif: (m(res) - m(sen)) / m(sen) };
  });
  const tested = rows.filter((r) => Number.isFinite(r.dif));
  const test = tested.length ? wilcoxonSignedRank(tested.map((r) => r.dif)) : null;
  const excluded = rows.filter((r) => !Number.isFinite(r.dif)).map((r) => `${r.relation} (${r.sensitive === 0 ? 'no sensitive facts' : 'no resilient facts'})`);
  return { k: intra.k, frequency, rows, noFacts, tested, test, excluded };
}

/** The groups per relation as the notebook's table shows (and saves) them. */
export function factFrequencyTable(result: FactFrequencyResult): Record<string, string | number>[] {
  return (result.rows ?? []).map((r) => ({
    relation: r.relation,
    resilient: r.resilient,
    sensitive: r.sensitive,
    'mean freq resilient': r.meanResilient,
    'mean freq sensitive': r.meanSensitive,
    dif: r.dif,
  }));
}

/** The test in one line, with the relations it leaves out. */
export function wilcoxonLine(result: FactFrequencyResult): string {
  const { test, excluded } = result;
  if (!test) return '';
  const ex = excluded.length ? `; excluded: ${excluded.join(', ')}` : '';
  return `Wilcoxon signed-rank (two-sided) over ${test.n} relations: W+ = ${test.wPlus}, W− = ${test.wMinus}, p = ${test.p.toPrecision(2)} (${test.method})${ex}`;
}

const MORE_FREQUENT = 'Resilient facts are more frequent than sensitive ones (most relations)';
const WILCOXON = 'Wilcoxon signed-rank test over relations (resilient vs sensitive frequency)';

function verdicts(result: FactFrequencyResult): VerdictInput[] {
  const paper = paperNumbers().factFrequency;
  const [pos7, n7] = paper.resilientMoreFrequent7B;
  const [pos13, n13] = paper.resilientMoreFrequent13B;
  const paperP = `p = ${paper.wilcoxonP7B} (7B), ${paper.wilcoxonP13B} (13B)`;
  if (!result.rows) {
    const paperText = `${paperP}; ${paper.exceptions7B} / ${paper.exceptions13B} exceptions`;
    const detail = `no pretraining frequencies (${result.noFacts}; for LLaMA-2, Dolma/WIMBD counts are not available offline)`;
    return [MORE_FREQUENT, WILCOXON].map((claim) => ({ claim, paper: paperText, ours: null, status: 'not applicable' as const, detail }));
  }
  const { tested, test, excluded } = result;
  const positive = tested.filter((r) => r.dif > 0).length;
  const none = 'no relation has both resilient and sensitive facts';
  return [
    {
      claim: MORE_FREQUENT,
      paper: `${pos7}/${n7} relations (7B), ${pos13}/${n13} (13B)`,
      ours: `${positive}/${tested.length} relations (${result.frequency})`,
      status: tested.length === 0 ? 'not applicable' : positive >= Math.ceil(0.75 * tested.length) ? 'reproduced' : 'differs',
      detail:
        `${tested.length === 0 ? `${none}; ` : ''}criterion: ≥ 3/4 of the relations with both groups ` +
        `(paper 7B: ${pos7}/${n7} = ${((100 * pos7) / n7).toFixed(0)} %)${excluded.length ? `; excluded: ${excluded.join(', ')}` : ''}`,
    },
    {
      claim: WILCOXON,
      paper: paperP,
      ours: test ? `p = ${test.p.toPrecision(2)} over ${test.n} relations (W+ ${test.wPlus}, W− ${test.wMinus}; ${test.method})` : null,
      ...(test
        ? {
            status: test.wPlus > test.wMinus && test.p <= paper.wilcoxonP7B ? ('reproduced' as const) : ('differs' as const),
            detail: `criterion: same direction and p ≤ ${paper.wilcoxonP7B} (at least the 7B evidence)`,
          }
        : { status: 'not applicable' as const, detail: none }),
    },
  ];
}

export const factFrequency: Analysis<FactFrequencyInput, { frequency: FrequencyMeasure }, FactFrequencyResult> = {
  name: 'fact-frequency',
  paper: 'App. E, Fig. 23',
  summarise,
  verdicts,
};
