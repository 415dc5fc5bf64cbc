/** The README's two commands are exactly what CI runs; the README and docs/ point only to files that exist. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ENV_VARS } from '../lib/env.ts';
import { docsTables } from '../scripts/docs-tables.ts';

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

/** The README and every page of docs/, by path from the project root. */
const pages = ['README.md', ...readdirSync(root + 'docs').filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

test('the README stays short; the rest is in docs/', () => {
  const lines = readme.split('\n').length;
  assert.ok(lines <= 200, `README.md has ${lines} lines`);
});

test('paths named in the README and docs exist, and their links lead to files that exist', () => {
  let named = 0;
  for (const page of pages) {
    const text = readFileSync(root + page, 'utf8');
    const paths = [...text.matchAll(/`((?:lib|scripts|test|bench|cli|weights-converter|data|notebooks|docs|deploy)\/[A-Za-z0-9_./-]*[A-Za-z0-9_])`/g)].map((m) => m[1]!);
    named += paths.length;
    for (const p of new Set(paths)) assert.ok(existsSync(root + p), `${page} names ${p}, which does not exist`);
    // Markdown links and images to files of the repository, relative to the page.
    for (const m of text.matchAll(/\]\(([^)\s#]+)(#[^)\s]*)?\)/g)) {
      const target = m[1]!;
      if (/^[a-z]+:/.test(target)) continue;
      assert.ok(existsSync(join(root, dirname(page), target)), `${page} links to ${target}, which does not exist`);
    }
  }
  assert.ok(named > 10, `only ${named} paths found`);
});

test('every generated table of the README and docs/ equals what its result files give', () => {
  let n = 0;
  for (const { tables } of docsTables(root)) {
    for (const t of tables) {
      n++;
      assert.equal(t.current, t.rendered, `${t.page}: table ${t.table} differs from ${t.files.join(', ')}; render it with npx tsx scripts/docs-tables.ts`);
    }
  }
  assert.ok(n >= 3, `only ${n} generated tables`);
});

test('the reference lists every environment variable the lab reads', () => {
  const reference = readFileSync(root + 'docs/reference.md', 'utf8');
  for (const v of Object.values(ENV_VARS)) assert.ok(reference.includes(`| \`${v.name}\` |`), `${v.name} is missing from docs/reference.md's table`);
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

/**
 * Every command the README and docs/ show in a bash or sh block, and the test that runs it: the
 * test file must name what it runs. A block whose commands need what this machine lacks says so
 * in its first line (`# needs: …`).
 */
const COMMANDS_RUN_BY: [RegExp, string, RegExp][] = [
  [/^npm ci\b/, '.ci/run', /npm ci/],
  [/^npm test\b/, '.ci/run', /npm test/],
  [/^npm run reproduce\b/, 'test/reproduce.test.ts', /scripts', 'reproduce\.ts'/],
  [/^npm run reproduce\b.*--executor slurm/, 'test/slurm.test.ts', /'--executor', 'slurm'/],
  [/^npm run notebooks\b/, 'test/notebooks.test.ts', /scripts', 'jupyter-run\.ts'/],
  [/^npm run lab\b/, 'test/lab-browser.test.ts', /jupyter-lab|npm run lab/],
  [/^npx rsn (convert|generate|logits|verify)\b/, 'test/cli.test.ts', /rsn\(\['(convert|generate|logits|verify)'/],
  [/^npx rsn (known|collect|merge|rank)\b/, 'test/scale-out.test.ts', /ok\(\['(known|collect|merge|rank)'/],
  [/^deploy\/slurm\/(local-cluster|submit)\.sh\b/, 'test/slurm.test.ts', /deploy', 'slurm', '(local-cluster|submit)\.sh'/],
  [/^export SLURM_CONF=/, 'test/slurm.test.ts', /SLURM_CONF/],
];

test('every command shown in the README and docs/ runs in a test, or its block says what it needs', () => {
  const unchecked: string[] = [];
  let checked = 0;
  for (const page of pages) {
    const text = readFileSync(root + page, 'utf8');
    for (const block of text.matchAll(/^[ \t]*```(?:bash|sh)\n([\s\S]*?)^[ \t]*```/gm)) {
      const lines = block[1]!.split('\n').map((l) => l.trim()).filter(Boolean);
      if (/^# needs: \S/.test(lines[0] ?? '')) continue;
      let continued = false;
      for (const line of lines) {
        const command = continued ? null : line;
        continued = line.endsWith('\\');
        if (!command || command.startsWith('#')) continue;
        for (const part of command.replace(/\s+#.*$/, '').split(/\s*&&\s*/)) {
          const runners = COMMANDS_RUN_BY.filter(([pattern]) => pattern.test(part));
          if (!runners.length) unchecked.push(`${page}: ${part}`);
          for (const [, file, evidence] of runners) assert.match(readFileSync(root + file, 'utf8'), evidence, `${page}: "${part}" is said to run in ${file}`);
          checked++;
        }
      }
    }
  }
  assert.deepEqual(unchecked, [], 'commands that no test runs, in blocks that do not say what they need');
  assert.ok(checked >= 15, `only ${checked} commands checked`);
});
