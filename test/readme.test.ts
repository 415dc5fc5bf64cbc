/** The README's two commands are exactly what CI runs, and the files the README points to exist. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';

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
  for (const p of ['weights-converter/README.md', 'data/relations/LICENSE-LRE.md', 'lib/backend.ts', 'lib/model/hooks.ts', 'bench/ap.bench.ts']) {
    assert.ok(existsSync(root + p), p);
  }
});
