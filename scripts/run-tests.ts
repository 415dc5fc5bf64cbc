/**
 * The test suites, in two lanes side by side: the machine's cores sit half idle while one test
 * file waits on a Jupyter kernel or a child process, so a second lane takes the suites that
 * share nothing with the first (the model tests on the other numeric engines, whose cache keys
 * name the engine). The Slurm tests run last in the first lane, on a quieter machine. Each suite is one `node --test` process running its files one at a time, as before.
 * The first lane prints as it goes; the second's output is kept in .cache/test-logs/ and printed
 * when it ends. What every suite shares is built once, before either lane starts: the bundled
 * organism's conversion.
 *
 *   npx tsx scripts/run-tests.ts [--only SUITE,…] [--lanes 1|2]
 *
 * Exit status: 0 when every suite passed, else 1 (naming the suites that failed).
 */
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseScriptCommandLine } from '../lib/cli-args.ts';
import { prepareModel } from '../lib/notebook/model.ts';
import { DEFAULT_MODEL_DIR, projectRoot } from '../lib/notebook/paths.ts';

interface Suite {
  name: string;
  env: Record<string, string>;
  files: string[];
}

const all = readdirSync(join(projectRoot, 'test')).filter((f) => f.endsWith('.test.ts')).sort().map((f) => `test/${f}`);
const ENGINE_FILES = ['test/model.test.ts', 'test/parallel-model.test.ts'];
const WEBGPU_FILES = ['test/model.test.ts', 'test/hook-points.test.ts', 'test/plans.test.ts', 'test/method.test.ts', 'test/experiments.test.ts', 'test/families.test.ts'];

/** Every suite, by lane. */
const LANES: Suite[][] = [
  [
    { name: 'main', env: {}, files: all.filter((f) => f !== 'test/slurm.test.ts') },
    // After the main suite, when the second lane is done: a requeued Slurm task under heavy load
    // was seen recorded as FAILED for over 90 s before Slurm queued it again.
    { name: 'slurm', env: {}, files: ['test/slurm.test.ts'] },
  ],
  [
    { name: 'wasm-matmul', env: { RSN_MATMUL: 'wasm' }, files: ENGINE_FILES },
    { name: 'webgpu', env: { RSN_BACKEND: 'webgpu' }, files: WEBGPU_FILES },
    { name: 'webgpu-small-bindings', env: { RSN_BACKEND: 'webgpu', RSN_MAX_BINDING_BYTES: '65536' }, files: ['test/model.test.ts'] },
  ],
];

interface Outcome {
  suite: string;
  code: number | null;
  seconds: number;
  summary: string;
}

/** One suite as its own node --test process; its output goes to `sink`. */
function runSuite(s: Suite, sink: (chunk: string) => void): Promise<Outcome> {
  const t0 = performance.now();
  let tail = '';
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', ...s.files], {
      cwd: projectRoot,
      env: { ...process.env, ...s.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const take = (d: Buffer) => {
      const text = d.toString('utf8');
      tail = (tail + text).slice(-4000);
      sink(text);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('close', (code) => {
      const counts = ['tests', 'pass', 'fail', 'skipped'].map((k) => new RegExp(`^# ${k} (\\d+)`, 'm').exec(tail)?.[1]).map((v, i) => `${v ?? '?'} ${['tests', 'pass', 'fail', 'skipped'][i]}`);
      resolve({ suite: s.name, code, seconds: (performance.now() - t0) / 1000, summary: counts.join(', ') });
    });
  });
}

async function main(): Promise<number> {
  const { values } = parseScriptCommandLine(process.argv.slice(2), { only: { type: 'string' }, lanes: { type: 'string', default: '2' } });
  const known = LANES.flat().map((s) => s.name);
  const only = values.only ? values.only.split(',').filter(Boolean) : null;
  const unknown = (only ?? []).filter((n) => !known.includes(n));
  if (unknown.length) throw new Error(`--only ${unknown.join(',')}: no such suite; the suites are ${known.join(', ')}`);
  if (values.lanes !== '1' && values.lanes !== '2') throw new Error(`--lanes ${values.lanes}: expected 1 or 2`);
  const picked = LANES.map((lane) => lane.filter((s) => !only || only.includes(s.name))).filter((lane) => lane.length);
  const lanes = values.lanes === '1' ? [picked.flat()] : picked;

  // Built once here rather than by two suites at the same moment.
  await prepareModel(DEFAULT_MODEL_DIR, { log: (l) => console.log(`[tests] ${l}`) });

  const logDir = join(projectRoot, '.cache', 'test-logs');
  mkdirSync(logDir, { recursive: true });
  const t0 = performance.now();
  const outcomes = await Promise.all(lanes.map(async (lane, i) => {
    const done: Outcome[] = [];
    for (const s of lane) {
      if (i === 0) {
        console.log(`[tests] suite ${s.name}: ${s.files.length} file(s)${Object.keys(s.env).length ? ` with ${Object.entries(s.env).map(([k, v]) => `${k}=${v}`).join(' ')}` : ''}`);
        done.push(await runSuite(s, (t) => process.stdout.write(t)));
      } else {
        const log = join(logDir, `${s.name}.log`);
        const out = createWriteStream(log);
        console.log(`[tests] suite ${s.name} runs beside the others; its output: ${log}`);
        const o = await runSuite(s, (t) => out.write(t));
        await new Promise<void>((r) => out.end(r));
        console.log(`[tests] suite ${s.name} ended (${o.summary}; ${o.seconds.toFixed(0)} s)`);
        done.push(o);
      }
    }
    return done;
  }));
  // The second lane's output, whole, after the first's.
  for (const lane of lanes.slice(1)) {
    for (const s of lane) {
      console.log(`\n[tests] ===== suite ${s.name} =====`);
      process.stdout.write(readFileSync(join(logDir, `${s.name}.log`), 'utf8'));
    }
  }
  const flat = outcomes.flat();
  console.log(`\n[tests] ${((performance.now() - t0) / 60000).toFixed(1)} min in ${lanes.length} lane(s)`);
  for (const o of flat) console.log(`[tests]   ${o.suite.padEnd(22)} ${o.code === 0 ? 'ok    ' : 'FAILED'} ${o.summary} · ${o.seconds.toFixed(0)} s`);
  const failed = flat.filter((o) => o.code !== 0);
  if (failed.length) console.log(`[tests] failed: ${failed.map((o) => o.suite).join(', ')}`);
  return failed.length ? 1 : 0;
}

try {
  process.exit(await main());
} catch (e) {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(2);
}
