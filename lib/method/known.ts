/**
 * Filtering (paper §2.5): greedy-decode 2 tokens for every detection prompt and keep the ones
 * whose output is a prefix of the object. The kept set P^det is model-specific and saved with
 * the model's identity.
 */
import type { Prompt } from '../data/prompts.ts';
import { ConfigError } from '../errors.ts';
import { modelLabel, type ModelRunner } from '../model/runner.ts';
import type { LlamaTokenizer } from '../tokenizer.ts';
import { gradeAnswers, type GradedAnswer } from './accuracy.ts';
import type { Dataset } from './dataset.ts';
import type { RunOptions } from './generation.ts';
import { provenance, type Provenance } from './identity.ts';
import { shardBatchRange, WHOLE, type ShardSpec } from '../shard-spec.ts';

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

/** Rows per greedy batch when the caller gives none (greedyRows' default). */
export const KNOWN_BATCH_SIZE = 64;

/** The graded answers of one shard of the filter: global rows (into every relation's `det`, concatenated) and their answers. */
export interface KnownShardRows {
  shard: ShardSpec;
  /** The detection prompts of all relations, concatenated in relation order. */
  totalRows: number;
  /** The rows this shard graded, in ascending order. */
  rows: number[];
  answers: GradedAnswer[];
}

/**
 * Filter one shard of the detection prompts. The rows are ordered as greedyRows orders them
 * (by token length, then row) and cut into its batches; shard i takes whole batches of that
 * order, so each batch is the one the single-process filter runs and the answers are the same
 * bits. findKnownFacts is this with one shard, so both paths share the code.
 */
export async function findKnownFactsShard(model: ModelRunner, dataset: Dataset, shard: ShardSpec, opts: RunOptions = {}): Promise<KnownShardRows> {
  const tok = requireTokenizer(model);
  const batchSize = opts.batchSize ?? KNOWN_BATCH_SIZE;
  const all: Prompt[] = dataset.relations.flatMap((r) => r.det);
  const ids = all.map((p) => tok.encode(p.text));
  // The order greedyRows batches in; a sub-list taken in this order keeps it, batch for batch.
  const order = ids.map((_, i) => i).sort((a, b) => ids[a]!.length - ids[b]!.length || a - b);
  const [from, to] = shardBatchRange(order.length, batchSize, shard, 'detection prompts');
  const mine = order.slice(from, to);
  const label = shard.count > 1 ? `filter P^det (shard ${shard.index}/${shard.count})` : 'filter P^det';
  const answers = await gradeAnswers(model, tok, mine.map((i) => ({ ids: ids[i]!, object: all[i]!.object })), { label, ...opts, batchSize, maxNewTokens: opts.maxNewTokens ?? 2 });
  const byRow = mine.map((row, k) => ({ row, answer: answers[k]! })).sort((a, b) => a.row - b.row);
  return { shard, totalRows: all.length, rows: byRow.map((x) => x.row), answers: byRow.map((x) => x.answer) };
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

export async function findKnownFacts(model: ModelRunner, dataset: Dataset, opts: RunOptions = {}): Promise<KnownFacts> {
  const part = await findKnownFactsShard(model, dataset, WHOLE, opts);
  const answers = new Map(part.rows.map((row, k) => [row, part.answers[k]!]));
  return assembleKnownFacts(relationSizes(dataset), answers, provenance(model, dataset.hash, dataset.seed), opts.maxNewTokens ?? 2);
}

/** The known detection prompts P^det(r) of one relation. */
export function knownPrompts(dataset: Dataset, known: KnownFacts, relation: string): Prompt[] {
  const r = dataset.relations.find((x) => x.relation.name === relation);
  const k = known.relations.find((x) => x.name === relation);
  if (!r || !k) throw new ConfigError(`relation "${relation}" is not in both the dataset and the known-facts file`, undefined, 'relation');
  return k.known.map((i) => r.det[i]!);
}
