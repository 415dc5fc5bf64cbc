/**
 * Host memory this process may still use: the smaller of the kernel's free memory and what the
 * container's cgroup leaves (its limit minus its usage). In a container os.freemem() reports the
 * whole machine's free memory, far more than the cgroup lets the process allocate.
 */
import { readFileSync } from 'node:fs';
import { freemem } from 'node:os';

/** cgroup v2, then v1: [limit file, usage file]. */
const CGROUP_FILES: readonly (readonly [string, string])[] = [
  ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory.current'],
  ['/sys/fs/cgroup/memory/memory.limit_in_bytes', '/sys/fs/cgroup/memory/memory.usage_in_bytes'],
];

/** cgroup v1 writes a huge number (about 2^63, page-rounded) for "no limit". */
const NO_LIMIT = 2 ** 60;

/** A file's integer content, or null when absent, unreadable, "max" or "no limit". */
function readBytes(file: string, read: (file: string) => string): number | null {
  let text: string;
  try {
    text = read(file).trim();
  } catch {
    return null;
  }
  if (!/^\d+$/.test(text)) return null;
  const n = Number(text);
  return n >= NO_LIMIT ? null : n;
}

/** Bytes left under the first cgroup limit found (limit − usage, at least 0), or null without one. */
export function cgroupAvailableBytes(read: (file: string) => string = (f) => readFileSync(f, 'utf8')): number | null {
  for (const [limitFile, usageFile] of CGROUP_FILES) {
    const limit = readBytes(limitFile, read);
    if (limit === null) continue;
    const usage = readBytes(usageFile, read) ?? 0;
    return Math.max(0, limit - usage);
  }
  return null;
}

/** Free host memory in bytes, bounded by the cgroup's limit when there is one. */
export function availableHostMemory(read?: (file: string) => string): number {
  const cgroup = cgroupAvailableBytes(read);
  return cgroup === null ? freemem() : Math.min(freemem(), cgroup);
}
