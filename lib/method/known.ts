/**
 * Filtering (paper §2.5): greedy-decode 2 tokens for every detection prompt and keep the ones
 * whose output is a prefix of the object. The kept set P^det is model-specific and saved with
 * the model's identity.
 */
import type { Prompt } from '../data/prompts.ts';
import { ConfigError } from '../errors.ts';
import type { LlamaModel } from '../model/llama.ts';
import type { LlamaTokenizer } from '../tokenizer.ts';
import { gradeAnswers } from './accuracy.ts';
import type { Dataset } from './dataset.ts';
import type { RunOptions } from './generation.ts';
import { provenance, type Provenance } from './identity.ts';

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

export function requireTokenizer(model: LlamaModel): LlamaTokenizer {
  if (!model.tokenizer) throw new ConfigError(`${model.info.dir} has no tokenizer.json; prompts cannot be tokenized`, model.info.dir);
  return model.tokenizer;
}

export async function findKnownFacts(model: LlamaModel, dataset: Dataset, opts: RunOptions = {}): Promise<KnownFacts> {
  const tok = requireTokenizer(model);
  const maxNewTokens = opts.maxNewTokens ?? 2;
  const all: Prompt[] = dataset.relations.flatMap((r) => r.det);
  const graded = await gradeAnswers(model, tok, all.map((p) => ({ ids: tok.encode(p.text), object: p.object })), { label: 'filter P^det', ...opts, maxNewTokens });
  let at = 0;
  const relations = dataset.relations.map((r) => {
    const answers = graded.slice(at, at + r.det.length);
    at += r.det.length;
    const known: number[] = [];
    answers.forEach((a, i) => {
      if (a.correct) known.push(i);
    });
    return { name: r.relation.name, total: r.det.length, known, outputs: answers.map((a) => a.output) };
  });
  return { schema: KNOWN_SCHEMA, provenance: provenance(model, dataset.hash, dataset.seed), maxNewTokens, relations };
}

/** The known detection prompts P^det(r) of one relation. */
export function knownPrompts(dataset: Dataset, known: KnownFacts, relation: string): Prompt[] {
  const r = dataset.relations.find((x) => x.relation.name === relation);
  const k = known.relations.find((x) => x.name === relation);
  if (!r || !k) throw new ConfigError(`relation "${relation}" is not in both the dataset and the known-facts file`, undefined, 'relation');
  return k.known.map((i) => r.det[i]!);
}
