/**
 * Notebook 15's data folder from its parameters: the base relations (`data`, `relations`) and
 * the user's `relationFile`, built under .cache/own-relations/ and reused while their content is
 * unchanged (lib/data/own-relation.ts). Called in the parameter cell, before `rsn.setup`, so a
 * changed parameter and a re-run of that cell give the matching data, pipeline and run folder.
 */
import { buildOwnData, type OwnData } from '../data/own-relation.ts';
import { dataDirFor } from './model.ts';
import { fromRoot } from './paths.ts';

export interface OwnDataParams {
  model: string;
  data: string;
  relations: readonly string[];
  seed: number;
  relationFile: string;
  dropOverlapping: boolean;
  evalTriples: number;
}

export function ownDataFor(P: OwnDataParams): OwnData {
  return buildOwnData({
    baseDir: dataDirFor(P.data, P.model),
    relationFile: fromRoot(P.relationFile),
    cacheRoot: fromRoot('.cache/own-relations'),
    relations: P.relations,
    dropOverlapping: P.dropOverlapping,
    seed: P.seed,
    evalTriples: P.evalTriples,
  });
}
