/**
 * Folders written through staging (lib/data/staging.ts), with real processes and real signals:
 * a writer stopped by SIGINT, SIGTERM or SIGHUP leaves no staging; one killed outright leaves
 * it, and the next writer of the same target removes it and says so, while staging of another
 * host (a shared work folder) is only named.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeThroughStaging, writeThroughStagingSync } from '../lib/data/staging.ts';

const work = mkdtempSync(join(tmpdir(), 'rsn-staging-'));
after(() => rmSync(work, { recursive: true, force: true }));
const repo = new URL('..', import.meta.url).pathname;
const host = hostname().replace(/[^A-Za-z0-9_.-]/g, '_');

/** A child that starts filling `target` through staging, says "filling", and waits to be stopped. */
function writer(target: string): ReturnType<typeof spawn> {
  const code = `const s = await import('./lib/data/staging.ts');
await s.writeThroughStaging(${JSON.stringify(target)}, async (dir) => {
  (await import('node:fs')).mkdirSync(dir); (await import('node:fs')).writeFileSync(dir + '/part', 'x');
  console.log('filling'); await new Promise((r) => setTimeout(r, 60000));
});`;
  return spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
}

async function untilFilling(child: ReturnType<typeof spawn>): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('filling')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`the writer ended (${code}) before filling`)));
  });
}

describe('staging', () => {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    test(`${signal} while filling: the process ends by that signal and leaves neither staging nor target`, async () => {
      const target = join(work, `out-${signal}`);
      const child = writer(target);
      await untilFilling(child);
      const staging = readdirSync(work).filter((n) => n.startsWith(`out-${signal}.staging-`));
      assert.equal(staging.length, 1, 'the staging is there while filling');
      const ended = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_c, s) => r(s)));
      child.kill(signal);
      assert.equal(await ended, signal);
      assert.deepEqual(readdirSync(work).filter((n) => n.startsWith(`out-${signal}`)), [], 'nothing of it is left');
    });
  }

  test('SIGKILL leaves the staging; the next writer removes it, says so, and names (keeps) staging of another host', async () => {
    const target = join(work, 'out-killed');
    const child = writer(target);
    await untilFilling(child);
    const ended = new Promise((r) => child.on('exit', r));
    child.kill('SIGKILL');
    await ended;
    const left = readdirSync(work).filter((n) => n.startsWith('out-killed.staging-'));
    assert.deepEqual(left, [`out-killed.staging-${host}-${child.pid}`]);
    const foreign = join(work, 'out-killed.staging-othernode-4242');
    mkdirSync(foreign);
    const log: string[] = [];
    const got = await writeThroughStaging(target, (dir) => {
      mkdirSync(dir);
      writeFileSync(join(dir, 'data'), 'whole');
      return 'done';
    }, (l) => log.push(l));
    assert.equal(got, 'done');
    assert.equal(readFileSync(join(target, 'data'), 'utf8'), 'whole');
    assert.ok(!existsSync(join(work, left[0]!)), 'the stale staging is removed');
    assert.ok(log.some((l) => l.includes(left[0]!) && l.includes(`process ${child.pid}, which no longer runs`)), log.join(' | '));
    assert.ok(existsSync(foreign) && log.some((l) => l.includes(foreign) && /another host \(othernode\)/.test(l)), log.join(' | '));
  });

  test('a fill that fails leaves no staging and no target; a staging of a live process is left alone', () => {
    const target = join(work, 'out-failing');
    assert.throws(() => writeThroughStagingSync(target, (dir) => {
      mkdirSync(dir);
      throw new Error('disk full');
    }), /disk full/);
    assert.deepEqual(readdirSync(work).filter((n) => n.startsWith('out-failing')), []);
    // A process that runs (init, pid 1, stands in): its staging is not stale.
    const theirs = join(work, `out-failing.staging-${host}-1`);
    mkdirSync(theirs);
    writeThroughStagingSync(target, (dir) => mkdirSync(dir));
    assert.ok(existsSync(theirs) && existsSync(target));
  });
});
