/**
 * The sharded stages as a cluster runs them (real `rsn` child processes on the bundled
 * organism, 3 relations): known facts, activations and the ranking in 3 shards each, merged,
 * give the single-process pipeline's bytes; merging refuses missing, damaged, repeated and
 * foreign shards naming them; a shard killed mid-way resumes to the same bytes; re-running a
 * finished shard, rank or merge changes nothing. The work folder (known/, activations/, ranking/,
 * as deploy/slurm and deploy/k8s lay it out) feeds the pipeline and a notebook run through
 * Jupyter in place of computing them; one made for other settings is refused.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convertCheckpoint } from '../weights-converter/convert.ts';
import { clusterRunStamp, Pipeline } from '../lib/runs/pipeline.ts';
import type { KnownFacts } from '../lib/method/known.ts';
import { loadRanking } from '../lib/method/ranking.ts';
import { ActivationStore } from '../lib/method/activation-store.ts';
import { rsn as runRsn } from './helpers/cli.ts';

const repo = new URL('..', import.meta.url).pathname;
const bin = join(repo, 'bin', 'rsn.js');
const organism = join(repo, 'data', 'organism');
const data = join(organism, 'relations');
const RELATIONS = 'company_ceo,person_father,star_constellation';
const work = mkdtempSync(join(tmpdir(), 'rsn-scale-out-test-'));
const model = join(work, 'model');
const w = (name: string) => join(work, name);
after(() => rmSync(work, { recursive: true, force: true }));

/** The CLI on the wasm backend, as the reference pipeline. */
const rsn = (args: string[], env: Record<string, string> = {}) => runRsn(args, { RSN_BACKEND: 'wasm', ...env });

async function ok(args: string[]): Promise<string> {
  const r = await rsn(args);
  assert.equal(r.code, 0, `rsn ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stderr;
}

/** Every file of a directory tree with its bytes' and mtime's fingerprint, to show nothing changed. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    const p = join(dir, name);
    if (statSync(p).isFile()) out[name] = `${readFileSync(p).toString('base64')}@${statSync(p).mtimeMs}`;
  }
  return out;
}

/** The ranking files that hold results (AP arrays and CSV lists); ranking.json and the JSON lists also carry creation times. */
function rankingResults(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.endsWith('.ap.f32') || f.endsWith('.csv')).sort();
}

let refRanking: string;
let refStore: string;
let refKnown: KnownFacts;

before(async () => {
  await convertCheckpoint({ inputDir: organism, outputDir: model, dtype: 'float32' });
  // The single-process pipeline, with the defaults the CLI stages use.
  const p = await Pipeline.open({ modelDir: model, dataDir: data, cacheDir: w('cache'), relations: RELATIONS.split(','), backend: 'wasm', run: { quiet: true } });
  try {
    refKnown = await p.known();
    await p.ranking();
    refRanking = p.rankingDir();
    refStore = p.activationsDir();
  } finally {
    p.dispose();
  }
});

const shards = [0, 1, 2];

describe('sharded stages give the single-process bytes', () => {
  test('known, collect and rank in 3 shards each, merged, equal the pipeline bit for bit', async () => {
    await Promise.all(shards.map((i) => ok(['known', '--model', model, '--data', data, '--relations', RELATIONS, '--shard', `${i}/3`, '--out', w(`known-${i}`), '--quiet'])));
    await ok(['merge', ...shards.map((i) => w(`known-${i}`)), '--out', w('known')]);
    const known = JSON.parse(readFileSync(w('known/known.json'), 'utf8')) as KnownFacts;
    assert.deepEqual(known.relations, refKnown.relations, 'merged known facts differ from the pipeline');
    assert.ok(known.relations.every((r) => r.known.length > 0 && r.known.length < r.total), 'the filter keeps some facts and drops others');

    await Promise.all(shards.map((i) => ok(['collect', '--model', model, '--data', data, '--known', w('known'), '--shard', `${i}/3`, '--out', w(`acts-${i}`), '--quiet'])));
    const ranges = shards.map((i) => JSON.parse(readFileSync(w(`acts-${i}/meta.json`), 'utf8')) as { promptStart: number; promptEnd: number });
    assert.ok(ranges.every((r, i) => r.promptEnd > r.promptStart && (i === 0 ? r.promptStart === 0 : r.promptStart === ranges[i - 1]!.promptEnd)), 'three consecutive prompt ranges');
    await ok(['merge', ...shards.map((i) => w(`acts-${i}`)), '--out', w('activations')]);
    const chunks = readdirSync(refStore).filter((f) => f.endsWith('.bin'));
    assert.ok(chunks.length > 0);
    for (const c of chunks) assert.ok(readFileSync(w(`activations/${c}`)).equals(readFileSync(join(refStore, c))), `${c}: merged store differs from the pipeline's`);

    await ok(['rank', '--store', w('activations'), '--out', w('ranking')]);
    await Promise.all(shards.map((i) => ok(['rank', '--store', w('activations'), '--shard', `${i}/3`, '--out', w(`rank-part-${i}`)])));
    await ok(['merge', ...shards.map((i) => w(`rank-part-${i}`)), '--out', w('ranking-from-parts')]);
    const files = rankingResults(refRanking);
    assert.equal(files.length, 6, 'an AP file and a CSV list per relation');
    for (const f of files) {
      const want = readFileSync(join(refRanking, f));
      assert.ok(readFileSync(w(`ranking/${f}`)).equals(want), `${f}: sharded ranking differs from the pipeline's`);
      assert.ok(readFileSync(w(`ranking-from-parts/${f}`)).equals(want), `${f}: ranking merged from neuron ranges differs from the pipeline's`);
    }
  });
});

describe('merging refuses what would give a wrong ranking, naming the shard', () => {
  test('a missing, damaged, repeated or foreign shard is refused; nothing is written or deleted', async () => {
    const missing = await rsn(['merge', w('acts-0'), w('acts-2'), '--out', w('bad-merge')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /shard 1\/3 missing/);

    const gone = await rsn(['merge', w('known-0'), w('known-1'), w('known-never-ran'), '--out', w('bad-merge')]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /known-never-ran: no such directory/);

    const twice = await rsn(['merge', w('known-0'), w('known-1'), w('known-1'), '--out', w('bad-merge')]);
    assert.equal(twice.code, 1);
    assert.match(twice.stderr, /known-1 \(shard 1\/3\) and .*known-1 \(shard 1\/3\) are both shard 1\/3/);

    // A damaged chunk in a copy of shard 1: the merge names that shard and says what is wrong.
    cpSync(w('acts-1'), w('acts-1-damaged'), { recursive: true });
    const chunk = readdirSync(w('acts-1-damaged')).find((f) => f.endsWith('.bin'))!;
    truncateSync(join(w('acts-1-damaged'), chunk), 100);
    const damaged = await rsn(['merge', w('acts-0'), w('acts-1-damaged'), w('acts-2'), '--out', w('bad-merge')]);
    assert.equal(damaged.code, 1);
    assert.match(damaged.stderr, /acts-1-damaged \(shard 1\/3\): .*damaged activation store: .*short file/);

    cpSync(w('known-2'), w('known-2-damaged'), { recursive: true });
    writeFileSync(w('known-2-damaged/known-shard.json'), '{"schema": "rsn-known-shard/1", "rows": [1, 2');
    const badJson = await rsn(['merge', w('known-0'), w('known-1'), w('known-2-damaged'), '--out', w('bad-merge')]);
    assert.equal(badJson.code, 1);
    assert.match(badJson.stderr, /known-2-damaged\/known-shard\.json: not readable JSON/);

    // An answer's "correct" flag edited by hand: the shard's checksum no longer matches.
    cpSync(w('known-1'), w('known-1-edited'), { recursive: true });
    const edited = JSON.parse(readFileSync(w('known-1/known-shard.json'), 'utf8')) as { correct: boolean[]; rows: number[] };
    edited.correct[0] = !edited.correct[0];
    writeFileSync(w('known-1-edited/known-shard.json'), JSON.stringify(edited));
    const flipped = await rsn(['merge', w('known-0'), w('known-1-edited'), w('known-2'), '--out', w('bad-merge')]);
    assert.equal(flipped.code, 1);
    assert.match(flipped.stderr, /known-1-edited\/known-shard\.json: its content does not match its checksum/);

    const mixed = await rsn(['merge', w('known-0'), w('acts-1'), '--out', w('bad-merge')]);
    assert.equal(mixed.code, 1);
    assert.match(mixed.stderr, /holds activations but .*known-0 holds known: merge one stage's shards at a time/);

    const ranks = await rsn(['merge', w('rank-part-0'), w('rank-part-2'), '--out', w('bad-merge')]);
    assert.equal(ranks.code, 1);
    assert.match(ranks.stderr, /neurons 810–1621 are missing: no part covers them/);

    assert.ok(!existsSync(w('bad-merge')), 'a refused merge leaves no output');
    assert.ok(!readdirSync(work).some((f) => f.includes('.tmp-') || f.includes('.staging-')), 'and no staging directory');
    assert.ok(existsSync(w('acts-1-damaged')) && existsSync(w('known-2-damaged/known-shard.json')), 'the inputs are kept');
  });

  test('a shard computed by another numeric engine is refused at merge unless allowed; then the merged provenance names both', async () => {
    // TF.js's own matMul instead of OpenBLAS: another summation order, as another CPU kernel would be.
    const other = await rsn(['known', '--model', model, '--data', data, '--relations', RELATIONS, '--shard', '1/3', '--out', w('known-1-other-engine')], { RSN_MATMUL: 'wasm' });
    assert.equal(other.code, 0, other.stderr);
    const refused = await rsn(['merge', w('known-0'), w('known-1-other-engine'), w('known-2'), '--out', w('known-mixed')]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /known-1-other-engine \(shard 1\/3\) was computed with the engine wasm\+wasm, .*known-0 \(shard 0\/3\) with wasm\+openblas-[^:]+: their results differ in the last bits; merge them anyway with --allow-mixed-engines/);
    assert.ok(!existsSync(w('known-mixed')));
    const allowed = await rsn(['merge', w('known-0'), w('known-1-other-engine'), w('known-2'), '--out', w('known-mixed'), '--allow-mixed-engines']);
    assert.equal(allowed.code, 0, allowed.stderr);
    const merged = JSON.parse(readFileSync(w('known-mixed/known.json'), 'utf8')) as KnownFacts;
    assert.match(String(merged.provenance.backend), /^mixed: wasm\+openblas-.*, wasm\+wasm$|^mixed: wasm\+wasm, wasm\+openblas-/);
  });

  test('bad shard arguments are refused before any work', async () => {
    const range = await rsn(['known', '--model', model, '--data', data, '--shard', '3/3', '--out', w('x')]);
    assert.equal(range.code, 2);
    assert.match(range.stderr, /--shard = "3\/3": expected i\/n with 0 ≤ i < n/);
    const tooMany = await rsn(['collect', '--model', model, '--data', data, '--known', w('known'), '--shard', '0/40', '--batch-size', '32', '--out', w('x')]);
    assert.equal(tooMany.code, 1);
    assert.match(tooMany.stderr, /shard 0\/40: the \d+ known prompts make only \d+ batch\(es\) of 32, so at most \d+ shard\(s\) can share them/);
    const notMerged = await rsn(['rank', '--store', w('acts-1'), '--out', w('x')]);
    assert.equal(notMerged.code, 1);
    assert.match(notMerged.stderr, /holds shard 1\/3 of the activations .*merge the shards first/);
    const unmergedKnown = await rsn(['collect', '--model', model, '--data', data, '--known', w('known-0'), '--out', w('x')]);
    assert.equal(unmergedKnown.code, 1);
    assert.match(unmergedKnown.stderr, /holds one shard of the known facts, not all of them; merge the shards first/);
    assert.ok(!existsSync(w('x')));
  });
});

describe('failures on the way', () => {
  test('a collect shard killed mid-way resumes from its own store to the uninterrupted bytes', async () => {
    const args = (out: string) => ['collect', '--model', model, '--data', data, '--known', w('known'), '--shard', '1/3', '--batch-size', '1', '--out', out, '--quiet'];
    await ok(args(w('resume-reference')));
    const out = w('resume-killed');
    const child = spawn(process.execPath, [bin, ...args(out)], { env: { ...process.env, RSN_BACKEND: 'wasm' }, stdio: 'ignore' });
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    // Kill it for real once some batches are checkpointed and before it finishes.
    let killedAt = -1;
    for (let i = 0; i < 3000 && killedAt < 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
      try {
        const m = JSON.parse(readFileSync(join(out, 'meta.json'), 'utf8')) as { completed: number };
        if (m.completed >= 5) {
          child.kill('SIGKILL');
          killedAt = m.completed;
        }
      } catch {
        // not written yet, or being renamed into place
      }
    }
    await exited;
    const meta = JSON.parse(readFileSync(join(out, 'meta.json'), 'utf8')) as { completed: number; promptEnd: number; promptStart: number };
    assert.ok(killedAt >= 5 && meta.completed < meta.promptEnd - meta.promptStart, `the kill came mid-way (${meta.completed} of ${meta.promptEnd - meta.promptStart})`);
    const resumed = await ok(args(out));
    assert.doesNotMatch(resumed, /already done/);
    const bin0 = readdirSync(out).find((f) => f.endsWith('.bin'))!;
    assert.ok(readFileSync(join(out, bin0)).equals(readFileSync(join(w('resume-reference'), bin0))), 'resumed store equals the uninterrupted one');
  });

  test('re-running a finished shard, rank or merge does nothing', async () => {
    const dirs = [w('known-0'), w('acts-0'), w('ranking'), w('activations'), w('known')];
    const before = dirs.map(snapshot);
    assert.match(await ok(['known', '--model', model, '--data', data, '--relations', RELATIONS, '--shard', '0/3', '--out', w('known-0')]), /shard 0\/3 is already done .*nothing to do/);
    assert.match(await ok(['collect', '--model', model, '--data', data, '--known', w('known'), '--shard', '0/3', '--out', w('acts-0')]), /shard 0\/3 is already done .*nothing to do/);
    assert.match(await ok(['rank', '--store', w('activations'), '--out', w('ranking')]), /already holds this ranking; nothing to do/);
    assert.match(await ok(['merge', ...shards.map((i) => w(`acts-${i}`)), '--out', w('activations')]), /already holds this store; nothing to do/);
    assert.match(await ok(['merge', ...shards.map((i) => w(`known-${i}`)), '--out', w('known')]), /already holds these known facts; nothing to do/);
    assert.deepEqual(dirs.map(snapshot), before, 'no file was rewritten');
    // A shard directory of another run is refused, not overwritten.
    const other = await rsn(['known', '--model', model, '--data', data, '--relations', 'company_ceo', '--shard', '0/3', '--out', w('known-0')]);
    assert.equal(other.code, 1);
    assert.match(other.stderr, /known-shard\.json: known facts for another model, data, settings or shard are already there; choose another --out/);
  });
});

describe('a sharded run feeds the pipeline and the notebooks', () => {
  test('Pipeline.open({ clusterRun }) reads its known facts, ranking and activations, computing neither; the ranking is the pipeline\'s own bit for bit', async () => {
    const logs: string[] = [];
    const p = await Pipeline.open({ modelDir: model, dataDir: data, cacheDir: w('cluster-cache'), relations: RELATIONS.split(','), backend: 'wasm', clusterRun: work, run: { quiet: true }, log: (l) => logs.push(l) });
    try {
      assert.deepEqual((await p.known()).relations, refKnown.relations);
      const ranking = await p.ranking();
      const ref = loadRanking(refRanking);
      assert.deepEqual(ranking.relations.map((r) => r.name), ref.relations.map((r) => r.name));
      ranking.relations.forEach((r, i) => assert.ok(Buffer.from(r.ap.buffer).equals(Buffer.from(ref.relations[i]!.ap.buffer)), `${r.name}: AP differs from the single-process ranking`));
      assert.equal(p.rankingDir(), w('ranking'));
      const store = p.activations();
      assert.equal(store?.dir, w('activations'));
      assert.equal(store!.numPrompts, ActivationStore.open(refStore).numPrompts);
      assert.equal(p.removeActivations(), false, 'the sharded run\'s store is not deleted');
      // A kept notebook pipeline reopens when the run is ranked again (its files' stamp changes).
      const stamp = clusterRunStamp(work);
      assert.equal(clusterRunStamp(work), stamp);
      utimesSync(w('ranking/ranking.json'), new Date(), new Date(Date.now() + 5000));
      assert.notEqual(clusterRunStamp(work), stamp);
      assert.ok(existsSync(w('activations/meta.json')));
      assert.ok(logs.some((l) => l.includes(`from the sharded run in ${work}`)), logs.join('\n'));
      assert.ok(!logs.some((l) => /filter P\^det|ranking: computed|collect/.test(l)), `nothing was computed:\n${logs.join('\n')}`);
    } finally {
      p.dispose();
    }
  });

  test('a sharded run made for other relations, seed or neuron pool is refused, naming the file and what differs', async () => {
    const open = (o: { relations?: string[]; seed?: number; recordAttention?: boolean }) =>
      Pipeline.open({ modelDir: model, dataDir: data, cacheDir: w('cluster-cache'), relations: o.relations ?? RELATIONS.split(','), seed: o.seed, recordAttention: o.recordAttention, backend: 'wasm', clusterRun: work, run: { quiet: true } });
    await assert.rejects(open({ relations: ['company_ceo', 'person_father'] }), /known\/known\.json: these known facts were made for another run \(.*relations company_ceo,person_father,star_constellation ≠ company_ceo,person_father\)/);
    await assert.rejects(open({ seed: 1 }), /these known facts were made for another run \(.*seed 0 ≠ 1/);
    await assert.rejects(open({ recordAttention: true }), /ranking\.json: this ranking was made for another run \(its neuron pool \(mlp\.gate, mlp\.up, mlp\.down\) is not the one asked for/);
    await assert.rejects(Pipeline.open({ modelDir: model, dataDir: data, cacheDir: w('cluster-cache'), relations: RELATIONS.split(','), backend: 'wasm', clusterRun: w('known-0') }), /clusterRun .*known-0: no known\/ folder; expected the work folder of a sharded run/);
  });

  test('notebook 01 run through Jupyter with --set clusterRun=<work folder> ranks nothing itself and files its results apart', async (t) => {
    const { setup } = await import('../scripts/jupyter-setup.ts');
    if (!(await setup({ log: () => {} }))) return t.skip('Jupyter is not installed and cannot be installed here');
    const results = w('nb-results');
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(repo, 'scripts', 'jupyter-run.ts'), '01', '--model', model, '--quick', '--relations', RELATIONS, '--set', `clusterRun=${work}`, '--set', `data=${data}`, '--results', results], {
      cwd: repo,
      encoding: 'utf8',
      env: { ...process.env, RSN_BACKEND: 'wasm', RSN_CACHE: w('nb-cache') },
    });
    assert.equal(r.status, 0, `notebook 01 failed:\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
    const logs = (readdirSync(results, { recursive: true }) as string[]).filter((f) => f.endsWith('01-identification.log'));
    assert.equal(logs.length, 1, 'one executed notebook log');
    const log = readFileSync(join(results, logs[0]!), 'utf8');
    assert.match(log, /known facts and ranking: from the sharded run in/);
    assert.doesNotMatch(log, /ranking: computed/);
    assert.ok(!existsSync(w('nb-cache')) || !(readdirSync(w('nb-cache'), { recursive: true }) as string[]).some((f) => f.endsWith('ranking.json')), 'no ranking was computed into the stage cache');
  });
});
