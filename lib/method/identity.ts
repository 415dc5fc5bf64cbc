/** What produced an artefact: recorded in every saved stage so results can be traced and reused safely. */
import { backendKey } from '../backend.ts';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { sha256Hex } from '../data/io.ts';
import type { ModelRunner } from '../model/runner.ts';

export const LIB_VERSION = 'rsn-lab 0.1.0';

export interface ModelIdentity {
  name: string;
  /** null for a model built in memory. */
  dir: string | null;
  /** sha256 of config.json + the weights manifest (names, shapes, storage); not of the weight bytes, which would take minutes for 7B. */
  sha256: string;
  storageDtype: string;
}

export function modelIdentity(model: ModelRunner): ModelIdentity {
  const dir = model.info.dir;
  // In-memory models: the config is all there is.
  if (dir === null) return { name: 'in-memory', dir, sha256: sha256Hex(JSON.stringify(model.config)), storageDtype: model.info.storageDtype };
  let sha: string;
  try {
    const manifest = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as { weightsManifest: unknown; source?: unknown };
    sha = sha256Hex(readFileSync(join(dir, 'config.json'), 'utf8') + JSON.stringify(manifest.weightsManifest) + JSON.stringify(manifest.source ?? null));
  } catch {
    sha = sha256Hex(JSON.stringify(model.config)); // a directory without a manifest
  }
  return { name: basename(dir), dir, sha256: sha, storageDtype: model.info.storageDtype };
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
