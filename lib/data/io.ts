import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Hex sha256 of a file's bytes (or of a string's UTF-8 bytes, which is what a written file holds). */
export function sha256Hex(content: string | Uint8Array): string {
  return createHash('sha256').update(content).digest('hex');
}

/**
 * Write via a temp file in the same directory and rename, so a reader (or a crashed build)
 * never sees a half-written data file; rename within one directory is atomic on POSIX.
 */
export function writeFileAtomic(path: string, content: string | Uint8Array): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const fd = openSync(tmp, 'wx');
    try {
      writeFileSync(fd, content);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // the temp file may never have been created; the original error is the one that matters
    }
    throw err;
  }
}

/**
 * Deterministic pretty JSON in which objects holding only primitives (a sample, a split row)
 * sit on one line, so a 1,000-row relation stays a 1,000-line file that diffs row by row.
 * Keys keep insertion order; `undefined` values are dropped as JSON.stringify does.
 */
export function formatJson(value: unknown): string {
  return fmt(value, '') + '\n';
}

function isPrimitive(v: unknown): boolean {
  return v === null || typeof v !== 'object';
}

function fmt(v: unknown, indent: string): string {
  if (isPrimitive(v)) return JSON.stringify(v);
  const inner = indent + '  ';
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    return '[\n' + v.map((x) => inner + fmt(x, inner)).join(',\n') + '\n' + indent + ']';
  }
  const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
  if (entries.length === 0) return '{}';
  if (entries.every(([, x]) => isPrimitive(x))) {
    return '{' + entries.map(([k, x]) => `${JSON.stringify(k)}: ${JSON.stringify(x)}`).join(', ') + '}';
  }
  return '{\n' + entries.map(([k, x]) => `${inner}${JSON.stringify(k)}: ${fmt(x, inner)}`).join(',\n') + '\n' + indent + '}';
}

/** A JSON value in canonical form (object keys sorted): equal values give equal text, the form cache keys are hashed in. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(Object.keys(v).sort().map((k) => [k, (v as Record<string, unknown>)[k]]));
    }
    return v;
  });
}
