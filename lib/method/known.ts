/**
 * P^det, the filter's result (paper §2.5; the filter itself is experiments/known-filter.ts): per
 * relation, which detection prompts the model answers correctly. It is model-specific and saved
 * with the model's identity.
 */
import type { Prompt } from '../data/prompts.ts';
import { ConfigError } from '../errors.ts';
import { modelLabel, type ModelRunner } from '../model/runner.ts';
import type { LlamaTokenizer } from '../tokenizer.ts';
import type { GradedAnswer } from './accuracy.ts';
import type { Dataset } from './dataset.ts';
import type { Provenance } from './identity.ts';

export const KNOWN_SCHEMA = 'rsn-known/1';

export interface KnownRelation {
  name: string;
  /** Detection prompts tried. */
  total: number;
  /** Indices (into the relation's `det` prompts) answered correctly. */
  known: number[];
  /** Decoded 2-token output of every detection prompt. */
  outputs: string[];
}

export interface KnownFacts {
  schema: typeof KNOWN_SCHEMA;
  provenance: Provenance;
  maxNewTokens: number;
  relations: KnownRelation[];
}

export function requireTokenizer(model: ModelRunner): LlamaTokenizer {
  if (!model.tokenizer) throw new ConfigError(`${modelLabel(model.info)} has no tokenizer.json; prompts cannot be tokenized`, model.info.dir ?? undefined);
  return model.tokenizer;
}

/**
 * P^det from the answers of every row (one shard's, or several shards' together), in the form
 * findKnownFacts returns. Every detection row must be answered exactly once.
 */
export function assembleKnownFacts(relationSizes: readonly { name: string; total: number }[], answers: ReadonlyMap<number, GradedAnswer>, prov: Provenance, maxNewTokens: number): KnownFacts {
  let at = 0;
  const relations = relationSizes.map((r) => {
    const known: number[] = [];
    const outputs: string[] = [];
    for (let i = 0; i < r.total; i++) {
      const a = answers.get(at + i);
      if (!a) throw new ConfigError(`no answer for detection prompt ${at + i} (${r.name} #${i}): the shards do not cover every prompt`, undefined, 'shards');
      if (a.correct) known.push(i);
      outputs.push(a.output);
    }
    at += r.total;
    return { name: r.name, total: r.total, known, outputs };
  });
  if (answers.size !== at) throw new ConfigError(`${answers.size} answers for ${at} detection prompts: the shards were made for other data`, undefined, 'shards');
  return { schema: KNOWN_SCHEMA, provenance: prov, maxNewTokens, relations };
}

/** Each relation's name and number of detection prompts, in the order rows are numbered. */
export function relationSizes(dataset: Dataset): { name: string; total: number }[] {
  return dataset.relations.map((r) => ({ name: r.relation.name, total: r.det.length }));
}

/** The known detection prompts P^det(r) of one relation. */
export function knownPrompts(dataset: Dataset, known: KnownFacts, relation: string): Prompt[] {
  const r = dataset.relations.find((x) => x.relation.name === relation);
  const k = known.relations.find((x) => x.name === relation);
  if (!r || !k) throw new ConfigError(`relation "${relation}" is not in both the dataset and the known-facts file`, undefined, 'relation');
  return k.known.map((i) => r.det[i]!);
}
