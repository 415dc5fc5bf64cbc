/**
 * A relation dataset ready for the method: relations, their detection/evaluation split, and
 * the prompt sets P^det (all detection triples × original templates), P^eva and P^eva-2.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { sha256Hex } from '../data/io.ts';
import { buildPrompts, type Prompt } from '../data/prompts.ts';
import { DataError, loadRelations, type Relation } from '../data/relation.ts';
import { loadSplit, splitFileName, splitRelation, type Split } from '../data/split.ts';

export interface RelationSet {
  relation: Relation;
  split: Split;
  /** Detection prompts, before filtering by what the model knows. */
  det: Prompt[];
  eva: Prompt[];
  eva2: Prompt[];
}

export interface Dataset {
  dir: string;
  seed: number;
  relations: RelationSet[];
  /** sha256 over the relation files' hashes and the seed: names the data in provenance records. */
  hash: string;
}

export interface DatasetOptions {
  seed?: number;
  /** Only these relations (default all); unknown names are an error. */
  relations?: readonly string[];
  evalTriples?: number;
}

export function loadDataset(dir: string, opts: DatasetOptions = {}): Dataset {
  const seed = opts.seed ?? 0;
  let rels = loadRelations(dir);
  if (opts.relations?.length) {
    const known = new Set(rels.map((r) => r.name));
    const unknown = opts.relations.filter((r) => !known.has(r));
    if (unknown.length) {
      throw new DataError(`${dir}: unknown relation(s) ${unknown.join(', ')}; this dataset has ${[...known].join(', ')}`, dir, 'relations');
    }
    rels = rels.filter((r) => opts.relations!.includes(r.name));
  }
  const relations = rels.map((relation) => {
    const splitPath = join(dir, 'splits', splitFileName(relation.name, seed));
    // The committed split is used when it exists (and matches the relation file byte for
    // byte), so every model sees the same split; otherwise it is computed, deterministically.
    const split = existsSync(splitPath) && opts.evalTriples === undefined ? loadSplit(splitPath, relation) : splitRelation(relation, { seed, evalTriples: opts.evalTriples });
    return {
      relation,
      split,
      det: buildPrompts(split.detection, relation.templates),
      eva: buildPrompts(split.evaluation, relation.templates),
      eva2: buildPrompts(split.evaluation, relation.eva2Templates),
    };
  });
  const hash = sha256Hex(JSON.stringify({ seed, evalTriples: opts.evalTriples ?? null, files: relations.map((r) => [r.relation.name, r.relation.sha256]) }));
  return { dir, seed, relations, hash };
}

export function relationNames(d: Dataset): string[] {
  return d.relations.map((r) => r.relation.name);
}
