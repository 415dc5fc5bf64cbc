/**
 * JSON files the lab writes and later trusts carry a checksum of their own content: a field
 * `checksum` = sha256 of the canonical JSON of every other field. A file edited by hand, damaged
 * on disk or cut short no longer matches and is refused (or recomputed by its reader), never used.
 */
import { existsSync, readFileSync } from 'node:fs';
import { CheckpointError } from '../errors.ts';
import { canonicalJson, sha256Hex } from './io.ts';

export const CHECKSUM_FIELD = 'checksum';

function contentChecksum(body: Record<string, unknown>): string {
  const { [CHECKSUM_FIELD]: _ignored, ...rest } = body;
  return sha256Hex(canonicalJson(rest));
}

/** `body` with its checksum added (as the last field). */
export function seal<T extends object>(body: T): T & { checksum: string } {
  return { ...body, [CHECKSUM_FIELD]: contentChecksum(body as Record<string, unknown>) };
}

/**
 * The checked content of a parsed sealed object: refused, naming `file`, when the checksum is
 * missing or does not match.
 */
export function unseal(value: unknown, file: string): Record<string, unknown> {
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new CheckpointError(`${file}: expected a JSON object`, file);
  const body = value as Record<string, unknown>;
  const found = body[CHECKSUM_FIELD];
  if (typeof found !== 'string') throw new CheckpointError(`${file}: no "${CHECKSUM_FIELD}" field (written by an older version, or not written by the lab)`, file);
  const want = contentChecksum(body);
  if (found !== want) throw new CheckpointError(`${file}: its content does not match its checksum (edited or damaged after it was written)`, file);
  const { [CHECKSUM_FIELD]: _ignored, ...rest } = body;
  return rest;
}

/** Read and check a sealed JSON file; `missing` says what to do when there is none. */
export function readSealedJson(file: string, missing?: string): Record<string, unknown> {
  if (missing !== undefined && !existsSync(file)) throw new CheckpointError(`${file}: missing (${missing})`, file);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new CheckpointError(`${file}: not readable JSON (${(e as Error).message})`, file);
  }
  return unseal(raw, file);
}
