/** The README's two commands are exactly what CI runs, and the files the README points to exist. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ENV_VARS } from '../lib/env.ts';

const root = new URL('../', import.meta.url).pathname;
const readme = readFileSync(root + 'README.md', 'utf8');
const ci = readFileSync(root + '.ci/run', 'utf8');

test('.ci/run runs the README install+main-job command and then its test command', () => {
  const blocks = [...readme.matchAll(/```bash\n([^`]+?)\n```/g)].map((m) => m[1]!.trim());
  const install = blocks[0];
  const tests = blocks[1];
  assert.equal(install, 'npm ci && npm run reproduce');
  assert.equal(tests, 'npm test');
  const ciLines = ci.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#') && !l.startsWith('set ') && !l.startsWith('cd ') && !l.startsWith('echo '));
  assert.deepEqual(ciLines, [install, tests]);
});

test('paths named in the README exist', () => {
  const named = [...readme.matchAll(/`((?:lib|scripts|test|bench|cli|weights-converter|data|notebooks|docs)\/[A-Za-z0-9_./-]*[A-Za-z0-9_])`/g)].map((m) => m[1]!);
  assert.ok(named.length > 10, `only ${named.length} paths found`);
  for (const p of new Set(named)) assert.ok(existsSync(root + p), `README names ${p}, which does not exist`);
});

test('the README lists every environment variable the lab reads', () => {
  for (const v of Object.values(ENV_VARS)) assert.ok(readme.includes(`| \`${v.name}\` |`), `${v.name} is missing from the README's table`);
});

test('lib reads the environment only through lib/env.ts (and notebook parameters)', () => {
  const offenders: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(root + dir, { withFileTypes: true })) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(p);
      else if (p.endsWith('.ts') && p !== 'lib/env.ts') {
        const text = readFileSync(root + p, 'utf8');
        for (const m of text.matchAll(/process\.env\[['"](RSN_[A-Z_]+)['"]\]|env\[['"](RSN_[A-Z_]+)['"]\]/g)) offenders.push(`${p}: ${m[0]}`);
      }
    }
  };
  walk('lib');
  assert.deepEqual(offenders, []);
});

test('the README\'s Library snippet runs as written on the organism and prints what its comments say', () => {
  const snippet = /## Library\n[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(snippet, 'the Library section has a ts block');
  // In the project root, as the README says to run it (its imports are relative to the root).
  const file = join(root, `.readme-snippet-${process.pid}.mts`);
  writeFileSync(file, snippet);
  try {
    const r = spawnSync(process.execPath, ['--import', 'tsx', file], { cwd: root, encoding: 'utf8', timeout: 300_000, env: { ...process.env, RSN_BACKEND: '' } });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    const lines = r.stdout.trim().split('\n');
    // The organism knows this fact (data/organism/relations/company_ceo.json): its CEO is Marc Houalla.
    assert.equal(lines.at(-3), 'Marc');
    assert.ok(Number.isFinite(Number(lines.at(-2))), `an activation value: ${lines.at(-2)}`);
    assert.equal(lines.at(-1), '4', 'the organism has 4 layers');
  } finally {
    rmSync(file, { force: true });
  }
});
