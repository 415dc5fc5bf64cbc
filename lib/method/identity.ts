/** What produced an artefact: recorded in every saved stage so results can be traced and reused safely. */
import { backendKey } from '../backend.ts';
import { basename } from 'node:path';
import { sha256Hex } from '../data/io.ts';
import type { ModelRunner } from '../model/runner.ts';

export const LIB_VERSION = 'rsn-lab 0.1.0';

export interface ModelIdentity {
  name: string;
  /** null for a model built in memory. */
  dir: string | null;
  /** sha256 over the weights manifest and the bytes of every file of the model (weights, config, tokenizer), as checked at load. */
  sha256: string;
  storageDtype: string;
}

export function modelIdentity(model: ModelRunner): ModelIdentity {
  const dir = model.info.dir;
  // In-memory models: the config is all there is.
  if (dir === null) return { name: 'in-memory', dir, sha256: sha256Hex(JSON.stringify(model.config)), storageDtype: model.info.storageDtype };
  if (model.info.contentSha256 === null) throw new Error(`${dir}: a model loaded from a directory has the digest of its files`);
  return { name: basename(dir), dir, sha256: model.info.contentSha256, storageDtype: model.info.storageDtype };
}

export interface Provenance {
  model: ModelIdentity;
  dataHash: string;
  seed: number;
  backend: string;
  version: string;
  createdAt: string;
  [extra: string]: unknown;
}

export function provenance(model: ModelRunner, dataHash: string, seed: number, extra: Record<string, unknown> = {}): Provenance {
  return {
    model: modelIdentity(model),
    dataHash,
    seed,
    backend: backendKey(model.info.backend),
    version: LIB_VERSION,
    createdAt: new Date().toISOString(),
    ...extra,
  };
}
