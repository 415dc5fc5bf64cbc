/**
 * Folders written whole or not at all: a writer fills a staging folder beside its target
 * (`<target>.staging-<host>-<pid>`) and renames it into place. A writer stopped by SIGINT,
 * SIGTERM or SIGHUP removes its staging before the process ends; one killed outright (SIGKILL,
 * power loss) leaves it, and the next writer of the same target removes staging of processes
 * of this host that no longer run, saying so, and names (never removes) staging of other hosts,
 * which may still be writing on a shared folder.
 */
import { existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
const active = new Set<string>();
let handlersInstalled = false;

function onSignal(signal: (typeof SIGNALS)[number]): void {
  for (const dir of active) rmSync(dir, { recursive: true, force: true });
  active.clear();
  // Alone, end the process as the signal would have; beside other listeners (a notebook kernel's interrupt), leave it to them.
  if (process.listenerCount(signal) === 1) {
    for (const s of SIGNALS) process.removeListener(s, handlers[s]);
    handlersInstalled = false;
    process.kill(process.pid, signal);
  }
}

const handlers = Object.fromEntries(SIGNALS.map((s) => [s, () => onSignal(s)])) as Record<(typeof SIGNALS)[number], () => void>;

function hostTag(): string {
  return hostname().replace(/[^A-Za-z0-9_.-]/g, '_');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Remove staging of `target` left by processes of this host that no longer run (said through
 * `log`); name staging of other hosts.
 */
export function clearStaleStaging(target: string, log: (line: string) => void = () => {}): void {
  const parent = dirname(target);
  if (!existsSync(parent)) return;
  const prefix = `${basename(target)}.staging-`;
  const here = `${hostTag()}-`;
  for (const name of readdirSync(parent)) {
    if (!name.startsWith(prefix)) continue;
    const rest = name.slice(prefix.length);
    const path = join(parent, name);
    if (!rest.startsWith(here)) {
      log(`[rsn] ${path}: staging of another host (${rest.replace(/-\d+$/, '')}); left in place: remove it once no run there writes ${target}`);
      continue;
    }
    const pid = Number(rest.slice(here.length));
    if (!Number.isInteger(pid) || pid === process.pid || alive(pid)) continue;
    rmSync(path, { recursive: true, force: true });
    log(`[rsn] removed ${path}: the staging of an interrupted run (process ${pid}, which no longer runs)`);
  }
}

/** A fresh staging path for `target` (stale staging cleared first), removed on SIGINT/SIGTERM/SIGHUP until released. */
export function beginStaging(target: string, log?: (line: string) => void): string {
  clearStaleStaging(target, log);
  const dir = `${target}.staging-${hostTag()}-${process.pid}`;
  rmSync(dir, { recursive: true, force: true });
  active.add(dir);
  if (!handlersInstalled) {
    for (const s of SIGNALS) process.on(s, handlers[s]);
    handlersInstalled = true;
  }
  return dir;
}

/** The staging is no longer ours to clean up (renamed into place, or removed). */
export function endStaging(dir: string): void {
  active.delete(dir);
  if (active.size === 0 && handlersInstalled) {
    for (const s of SIGNALS) process.removeListener(s, handlers[s]);
    handlersInstalled = false;
  }
}

/**
 * Fill `target` through a staging folder: `fill(staging)` creates and writes it (sync or async),
 * then it is renamed to `target`; on any error the staging is removed and the error rethrown.
 */
export async function writeThroughStaging<T>(target: string, fill: (staging: string) => T | Promise<T>, log?: (line: string) => void): Promise<T> {
  const staging = beginStaging(target, log);
  try {
    const result = await fill(staging);
    renameSync(staging, target);
    return result;
  } catch (e) {
    rmSync(staging, { recursive: true, force: true });
    throw e;
  } finally {
    endStaging(staging);
  }
}

/** writeThroughStaging for a synchronous `fill` (small folders: a ranking, a data folder). */
export function writeThroughStagingSync<T>(target: string, fill: (staging: string) => T, log?: (line: string) => void): T {
  const staging = beginStaging(target, log);
  try {
    const result = fill(staging);
    renameSync(staging, target);
    return result;
  } catch (e) {
    rmSync(staging, { recursive: true, force: true });
    throw e;
  } finally {
    endStaging(staging);
  }
}
