/** §2.4–2.5 and Table 1: the relations, their splits and prompt sets, the neuron counts, and P^det. */
import { subjectKey } from '../../data/split.ts';
import type { LlamaConfig } from '../../model/config.ts';
import type { Dataset } from '../dataset.ts';
import type { Analysis } from '../experiment.ts';
import type { KnownFacts } from '../known.ts';
import { knownFilter } from './known-filter.ts';
import { NeuronSpace } from '../neurons.ts';
import { paperNumbers } from '../paper-numbers.ts';
import { compare, type VerdictInput } from '../verdicts.ts';

export interface DataInput {
  dataset: Dataset;
  /** The relations the user selected (empty: all of them). */
  selected: readonly string[];
  /** Models whose neurons are counted: the paper's, then this run's when its config can be read. */
  models: readonly { name: string; config: LlamaConfig }[];
  /** The filter's result, or null with `skipped` saying why it did not run. */
  known: KnownFacts | null;
  skipped: string;
  /** This run's model, as figure titles name it. */
  modelTag: string;
}

export interface RelationSizes {
  relation: string;
  facts: number;
  subjects: number;
  templates: number;
  eva2Templates: number;
  detTriples: number;
  evaTriples: number;
  det: number;
  eva: number;
  eva2: number;
}

export interface NeuronCount {
  model: string;
  layers: number;
  dModel: number;
  dFf: number;
  ffn: number;
  paperFfn: number | null;
  allLinear: number;
  paperAllLinear: number | null;
}

export interface DataResult {
  relations: RelationSizes[];
  /** D^eva triples whose subject is also in D^det (case-insensitive, as the split groups them). */
  sharedSubjects: number;
  selected: string[];
  neuronCounts: NeuronCount[];
  /** Per relation: detection prompts tried and answered correctly; null when the filter did not run. */
  known: { relation: string; total: number; known: number }[] | null;
  skipped: string;
  modelTag: string;
}

/** The paper's models (Table 1) as configs, to count their neurons the way this run's are counted. */
export function paperModels(): { name: string; config: LlamaConfig }[] {
  return Object.entries(paperNumbers().table1).map(([name, m]) => ({ name, config: m.config }));
}

function summarise(input: DataInput): DataResult {
  const { dataset } = input;
  const table1 = paperNumbers().table1;
  const relations = dataset.relations.map((r) => ({
    relation: r.relation.name,
    facts: r.relation.samples.length,
    subjects: new Set(r.relation.samples.map((s) => subjectKey(s.subject))).size,
    templates: r.relation.templates.length,
    eva2Templates: r.relation.eva2Templates.length,
    detTriples: r.split.detection.length,
    evaTriples: r.split.evaluation.length,
    det: r.det.length,
    eva: r.eva.length,
    eva2: r.eva2.length,
  }));
  const shared = dataset.relations.map((r) => {
    const det = new Set(r.split.detection.map((t) => subjectKey(t.subject)));
    return r.split.evaluation.filter((t) => det.has(subjectKey(t.subject))).length;
  });
  const neuronCounts = input.models.map(({ name, config: c }) => ({
    model: name,
    layers: c.numLayers,
    dModel: c.hiddenSize,
    dFf: c.intermediateSize,
    ffn: NeuronSpace.forModel(c, 'ffn').size,
    paperFfn: table1[name]?.ffnNeurons ?? null,
    allLinear: NeuronSpace.forModel(c, 'all').size,
    paperAllLinear: table1[name]?.allLinearNeurons ?? null,
  }));
  const known = input.known ? input.known.relations.map((r) => ({ relation: r.name, total: r.total, known: r.known.length })) : null;
  return { relations, sharedSubjects: shared.reduce((a, b) => a + b, 0), selected: [...input.selected], neuronCounts, known, skipped: input.skipped, modelTag: input.modelTag };
}

/** The sizes as the notebook's table shows them. */
export function relationSizeTable(result: DataResult): Record<string, string | number>[] {
  return result.relations.map((r) => ({
    relation: r.relation,
    facts: r.facts,
    subjects: r.subjects,
    templates: r.templates,
    'eva-2 templates': r.eva2Templates,
    'D^det triples': r.detTriples,
    'D^eva triples': r.evaTriples,
    'P^det': r.det,
    'P^eva': r.eva,
    'P^eva-2': r.eva2,
  }));
}

/** Table 1's columns, ours next to the paper's. */
export function neuronCountTable(result: DataResult): Record<string, string | number | null>[] {
  return result.neuronCounts.map((r) => ({
    model: r.model,
    layers: r.layers,
    d_model: r.dModel,
    d_ff: r.dFf,
    'FFN neurons': r.ffn,
    'paper: FFN': r.paperFfn,
    'all-linear neurons': r.allLinear,
    'paper: all-linear': r.paperAllLinear,
  }));
}

/** P^det per relation: detection prompts, known, % known. */
export function knownTable(result: DataResult): Record<string, string | number>[] {
  return (result.known ?? []).map((r) => ({ relation: r.relation, 'detection prompts': r.total, known: r.known, '% known': (100 * r.known) / Math.max(1, r.total) }));
}

function verdicts(result: DataResult): VerdictInput[] {
  const paper = paperNumbers().data;
  const sizes = result.relations;
  const nRel = sizes.length;
  const smallest = [...sizes].sort((a, b) => a.facts - b.facts)[0]!;
  const enough = smallest.facts > paper.minFacts;
  const evaSizes = [...new Set(sizes.map((s) => s.evaTriples))];
  const totalShared = result.sharedSubjects;
  const out: VerdictInput[] = [
    {
      claim: `The study uses the ${paper.relations} LRE relations with more than ${paper.minFacts} facts`,
      paper: paper.relations,
      ours: nRel,
      ...(result.selected.length > 0 ? { status: 'not applicable' as const, detail: `a subset was selected: ${result.selected.join(', ')}` } : compare(paper.relations, nRel)),
    },
    {
      claim: `Every relation has more than ${paper.minFacts} facts`,
      paper: `> ${paper.minFacts}`,
      ours: `min ${smallest.facts} (${smallest.relation})`,
      status: enough ? 'reproduced' : 'differs',
      detail: enough ? '' : `${smallest.relation} has ${smallest.facts} facts in this data (${paper.minFacts + 1 - smallest.facts} short of the paper's threshold)`,
    },
    {
      claim: `${paper.evaTriples} triples per relation are held out as D^eva, sharing no subject with D^det`,
      paper: paper.evaTriples,
      ours: evaSizes.length === 1 ? evaSizes[0]! : evaSizes.join('/'),
      status: evaSizes.length === 1 && evaSizes[0] === paper.evaTriples && totalShared === 0 ? 'reproduced' : 'differs',
      detail: `${totalShared} D^eva triples share a subject with D^det`,
    },
  ];
  for (const row of result.neuronCounts.filter((r) => r.paperFfn !== null)) {
    const c = compare(row.paperFfn!, row.ffn);
    out.push({
      claim: `Table 1: ${row.model} has ${row.paperFfn!.toLocaleString('en-US')} FFN neurons`,
      paper: row.paperFfn,
      ours: row.ffn,
      status: c.status,
      detail: `${c.detail}; all-linear: paper ${row.paperAllLinear}, ours ${row.allLinear}`,
    });
  }
  out.push(...knownFilter.verdicts(result.known, result.modelTag, result.skipped));
  return out;
}

export const dataAndFiltering: Analysis<DataInput, Record<string, never>, DataResult> = {
  name: 'data and filtering',
  paper: '§2.4–2.5, Table 1',
  summarise,
  verdicts,
};
