/**
 * The bytes of a converted model's files, by digest: `rsn convert` records the size and sha256 of
 * every file it writes (weight shards, config and tokenizer files) in model.json, and a load
 * checks them, so a changed or damaged file is refused and a re-converted checkpoint gets a new
 * identity. Hashing 13 GB takes about half a minute, so a check is remembered per file by size,
 * modification time and inode, in the user's cache (XDG_CACHE_HOME, else ~/.cache: rsn/verified/,
 * one file per model folder; the model folder itself is never written): a file whose stat is
 * unchanged is not read again. `full` re-reads every file.
 */
import { closeSync, mkdirSync, openSync, readFileSync, readSync, realpathSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { sha256Hex, writeFileAtomic } from '../data/io.ts';
import { CheckpointError } from '../errors.ts';

export interface FileDigest {
  size: number;
  sha256: string;
}

const VERIFIED_SCHEMA = 'rsn-verified/1';

/** Where the checks of a model folder's files are remembered. */
export function verifiedFile(dir: string): string {
  const root = process.env['XDG_CACHE_HOME'] || join(homedir(), '.cache');
  return join(root, 'rsn', 'verified', `${sha256Hex(realpathSync(dir)).slice(0, 32)}.json`);
}

interface Stamp extends FileDigest {
  mtimeMs: number;
  ino: number;
}

/** sha256 of a file, read in 8 MiB pieces. */
export function sha256OfFile(path: string): string {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(8 << 20);
  const fd = openSync(path, 'r');
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

function readStamps(file: string): Record<string, Stamp> {
  try {
    const s = JSON.parse(readFileSync(file, 'utf8')) as { schema?: string; files?: Record<string, Stamp> };
    return s.schema === VERIFIED_SCHEMA && s.files && typeof s.files === 'object' ? s.files : {};
  } catch {
    return {};
  }
}

/**
 * The digest of each named file of `dir`, checked against `expected` where it names the file:
 * a file whose size or sha256 differs is refused, naming it. A file is read only when its stat
 * differs from the last check (or `full`).
 */
export function verifiedDigests(dir: string, names: readonly string[], expected: Readonly<Record<string, FileDigest>> | null, opts: { full?: boolean } = {}): Record<string, FileDigest> {
  const stampFile = verifiedFile(dir);
  const stamps = readStamps(stampFile);
  let changed = false;
  const out: Record<string, FileDigest> = {};
  for (const name of names) {
    const path = join(dir, name);
    const st = statSync(path);
    const want = expected?.[name];
    if (want && want.size !== st.size) throw new CheckpointError(`${path}: ${st.size} bytes, but model.json records ${want.size}: the file was changed or cut short since it was converted; convert the checkpoint again`, path);
    const stamp = stamps[name];
    let sha256: string;
    if (!opts.full && stamp && stamp.size === st.size && stamp.mtimeMs === st.mtimeMs && stamp.ino === st.ino) sha256 = stamp.sha256;
    else {
      sha256 = sha256OfFile(path);
      stamps[name] = { size: st.size, sha256, mtimeMs: st.mtimeMs, ino: st.ino };
      changed = true;
    }
    if (want && want.sha256 !== sha256) {
      throw new CheckpointError(`${path}: its bytes are not those the converter wrote (sha256 ${sha256.slice(0, 12)}…, model.json records ${want.sha256.slice(0, 12)}…): the file was changed or damaged; convert the checkpoint again`, path);
    }
    out[name] = { size: st.size, sha256 };
  }
  if (changed) {
    try {
      mkdirSync(dirname(stampFile), { recursive: true });
      writeFileAtomic(stampFile, `${JSON.stringify({ schema: VERIFIED_SCHEMA, files: stamps })}\n`);
    } catch {
      // No writable cache: every load reads the files again.
    }
  }
  return out;
}
