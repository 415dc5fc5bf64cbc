/**
 * deploy/slurm/ on a real Slurm: the test starts a single-node cluster of its own with
 * deploy/slurm/local-cluster.sh (munged, slurmctld and slurmd from Debian's munge and slurm-wlm,
 * installed with apt-get when missing, configured in a temp directory on free ports, so /etc is
 * not touched), submits the sharded ranking as 3-task job arrays chained with
 * --dependency=afterok (deploy/slurm/submit.sh over the bundled organism, 3 relations) and an
 * experiment's jobs as a 2-task array, and checks the merged ranking is byte-identical to the
 * single-process pipeline's and the merged results equal pipeline.evaluate's. The cluster is
 * stopped in `after` (local-cluster.sh down), whatever happened.
 * Needs root (daemons, apt-get); skipped otherwise, saying so.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convertCheckpoint } from '../weights-converter/convert.ts';
import { jobsDigest, Pipeline } from '../lib/runs/pipeline.ts';
import { readJobResults } from '../lib/runs/job-shards.ts';
import { intraRelation, perplexity, type Job, type ScoreJob } from '../lib/method/experiments.ts';

const isRoot = process.getuid?.() === 0;
const why = 'not root: the Slurm test installs slurm-wlm and munge and starts munged, slurmctld and slurmd, which needs root';
if (!isRoot) process.stdout.write(`# slurm test skipped: ${why}\n`);

const repo = new URL('..', import.meta.url).pathname;
const organism = join(repo, 'data', 'organism');
const data = join(organism, 'relations');
const RELATIONS = 'company_ceo,person_father,star_constellation';

let work = '';
let env: NodeJS.ProcessEnv = {};

function sh(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): string {
  return execFileSync(cmd, args, { env: opts.env ?? env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}


async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

const cluster = join(repo, 'deploy', 'slurm', 'local-cluster.sh');

before(async () => {
  if (!isRoot) return;
  work = mkdtempSync(join(tmpdir(), 'rsn-slurm-test-'));
  // The README's test cluster, started as a user would: deploy/slurm/local-cluster.sh up.
  const up = sh(cluster, ['up', '--dir', join(work, 'cluster'), '--partition', 'rsn'], { env: process.env });
  const conf = /^export SLURM_CONF=(.+)$/m.exec(up)?.[1];
  assert.ok(conf && existsSync(conf), `local-cluster.sh up printed no SLURM_CONF:\n${up}`);
  env = { ...process.env, SLURM_CONF: conf, RSN_BACKEND: 'wasm', RSN_JOB_NODE: process.execPath };
});

after(() => {
  if (!isRoot || !work) return;
  try {
    sh(cluster, ['down', '--dir', join(work, 'cluster')], { env: process.env });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test('a 3-shard Slurm job array gives the single-process ranking bit for bit', { skip: isRoot ? false : why, timeout: 15 * 60_000 }, async () => {
  const t0 = performance.now();
  const model = join(work, 'model');
  await convertCheckpoint({ inputDir: organism, outputDir: model, dtype: 'float32' });
  const out = join(work, 'run');
  const submitted = sh(join(repo, 'deploy', 'slurm', 'submit.sh'), ['--model', model, '--data', data, '--shards', '3', '--work', out, '--relations', RELATIONS, '--partition', 'rsn']);
  const jobs = Object.fromEntries(submitted.trim().split('\n').map((l) => l.split(' ') as [string, string]));
  assert.deepEqual(Object.keys(jobs), ['known', 'merge-known', 'collect', 'rank'], submitted);

  // The single-process reference while the cluster works (same backend, default settings).
  const p = await Pipeline.open({ modelDir: model, dataDir: data, cacheDir: join(work, 'cache'), relations: RELATIONS.split(','), backend: 'wasm', run: { quiet: true } });
  let refDir: string;
  try {
    await p.ranking();
    refDir = p.rankingDir();
  } finally {
    p.dispose();
  }

  const ids = Object.values(jobs).join(',');
  for (let i = 0; ; i++) {
    const queued = sh('/usr/bin/squeue', ['-h', '-j', ids, '-o', '%i %T %r']).trim();
    if (queued === '') break;
    if (i > 600) assert.fail(`the jobs did not finish in 10 minutes:\n${queued}`);
    await sleep(1000);
  }
  const logs = () => (existsSync(join(out, 'logs')) ? readdirSync(join(out, 'logs')).map((f) => `--- ${f}\n${readFileSync(join(out, 'logs', f), 'utf8')}`).join('\n') : '(no logs)');
  for (const [stage, id] of Object.entries(jobs)) {
    const state = sh('/usr/bin/scontrol', ['show', 'job', id]);
    assert.match(state, /JobState=COMPLETED/, `${stage} job ${id} did not complete:\n${state}\n${logs()}`);
  }
  // Three shards really ran, each on its own prompt range.
  for (let i = 0; i < 3; i++) assert.ok(existsSync(join(out, `known-shard-${i}`, 'known-shard.json')) && existsSync(join(out, `activations-shard-${i}`, 'meta.json')), `shard ${i} left no output\n${logs()}`);

  const files = readdirSync(refDir!).filter((f) => f.endsWith('.ap.f32') || f.endsWith('.csv')).sort();
  assert.equal(files.length, 6);
  for (const f of files) assert.ok(readFileSync(join(out, 'ranking', f)).equals(readFileSync(join(refDir!, f))), `${f}: the Slurm run's ranking differs from the single-process one`);
  process.stdout.write(`# slurm: 4 jobs (2 arrays of 3) and the single-process reference in ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
});

test("an experiment's jobs as a 2-task Slurm array and a merge give pipeline.evaluate's results bit for bit", { skip: isRoot ? false : why, timeout: 15 * 60_000 }, async () => {
  const model = join(work, 'model');
  if (!existsSync(join(model, 'model.json'))) await convertCheckpoint({ inputDir: organism, outputDir: model, dtype: 'float32' });
  const p = await Pipeline.open({ modelDir: model, dataDir: data, cacheDir: join(work, 'cache'), relations: RELATIONS.split(','), backend: 'wasm', run: { quiet: true } });
  const file = join(work, 'intra.jobs.json');
  let reference: unknown;
  let jobsOfPlan: Job[];
  try {
    jobsOfPlan = intraRelation.plan(await p.context(), { k: 20, randomSeeds: 2, sets: ['eva'] }).jobs;
    await p.writeJobs(file, jobsOfPlan);
    reference = await p.evaluate(jobsOfPlan);
  } finally {
    p.dispose();
  }
  const out = join(work, 'jobs-run');
  const submitted = sh(join(repo, 'deploy', 'slurm', 'submit.sh'), ['--model', model, '--jobs', file, '--shards', '2', '--work', out, '--partition', 'rsn']);
  const jobs = Object.fromEntries(submitted.trim().split('\n').map((l) => l.split(' ') as [string, string]));
  assert.deepEqual(Object.keys(jobs), ['evaluate', 'merge-jobs'], submitted);
  const ids = Object.values(jobs).join(',');
  for (let i = 0; ; i++) {
    if (sh('/usr/bin/squeue', ['-h', '-j', ids, '-o', '%i %T']).trim() === '') break;
    if (i > 600) assert.fail('the jobs did not finish in 10 minutes');
    await sleep(1000);
  }
  const logs = () => (existsSync(join(out, 'logs')) ? readdirSync(join(out, 'logs')).map((f) => `--- ${f}\n${readFileSync(join(out, 'logs', f), 'utf8')}`).join('\n') : '(no logs)');
  for (const [stage, id] of Object.entries(jobs)) assert.match(sh('/usr/bin/scontrol', ['show', 'job', id]), /JobState=COMPLETED/, `${stage} job ${id} did not complete\n${logs()}`);
  for (let i = 0; i < 2; i++) assert.ok(existsSync(join(out, `jobs-shard-${i}`, 'jobs-shard.json')), `shard ${i} left no output\n${logs()}`);
  assert.deepEqual(readJobResults(join(out, 'job-results'), { digest: jobsDigest(jobsOfPlan!) }).results, reference);
});

/** A pipeline whose jobs run on the test cluster (executor slurm), with a cache of its own. */
async function slurmPipeline(model: string, name: string, opts: { sbatchArgs?: string; failureGraceSeconds?: number; log?: (line: string) => void } = {}): Promise<Pipeline> {
  return Pipeline.open({
    modelDir: model,
    dataDir: data,
    cacheDir: join(work, `cache-${name}`),
    relations: RELATIONS.split(','),
    backend: 'wasm',
    run: { quiet: true },
    executor: { name: 'slurm', work: join(work, `executor-${name}`), shards: 2, partition: 'rsn', pollSeconds: 0.5, env, sbatchArgs: opts.sbatchArgs, failureGraceSeconds: opts.failureGraceSeconds },
    log: opts.log,
  });
}

test('executor slurm: the ranking, an experiment and perplexities from the cluster equal the local pipeline; a requeued task resumes', { skip: isRoot ? false : why, timeout: 15 * 60_000 }, async () => {
  const model = join(work, 'model');
  if (!existsSync(join(model, 'model.json'))) await convertCheckpoint({ inputDir: organism, outputDir: model, dtype: 'float32' });
  const local = await Pipeline.open({ modelDir: model, dataDir: data, cacheDir: join(work, 'cache'), relations: RELATIONS.split(','), backend: 'wasm', run: { quiet: true } });
  let intra: Job[];
  let ppl: ScoreJob[];
  let reference: { ranking: string; intra: unknown; ppl: unknown; known: unknown };
  try {
    const ctx = await local.context();
    intra = intraRelation.plan(ctx, { k: 20, randomSeeds: 2, sets: ['eva'] }).jobs;
    const sentences = Object.fromEntries(local.dataset.relations.map((r) => [r.relation.name, r.eva.slice(0, 40).map((x) => `${x.text} ${x.object}`)]));
    ppl = perplexity.plan(ctx, { sentences, k: 20 }).jobs;
    reference = { ranking: local.rankingDir(), known: ctx.known, intra: await local.evaluate(intra), ppl: await local.score(ppl) };
  } finally {
    local.dispose();
  }

  const lines: string[] = [];
  const p = await slurmPipeline(model, 'requeue', { log: (l) => lines.push(l) });
  try {
    // The sharded filter's file says more (its schema, shards, settings); the facts are the same.
    assert.deepEqual((await p.known()).relations, (reference.known as { relations: unknown }).relations);
    const files = readdirSync(reference.ranking).filter((f) => f.endsWith('.ap.f32')).sort();
    for (const f of files) assert.ok(readFileSync(join(p.rankingDir(), f)).equals(readFileSync(join(reference.ranking, f))), `${f}: the executor's ranking differs from the local one`);
    assert.match(p.rankingDir(), /executor-requeue/);

    // Requeue the first evaluate task seen running, once: Slurm kills it and runs it again.
    let requeued = '';
    const watcher = (async () => {
      for (let i = 0; i < 1200 && !requeued; i++) {
        const running = sh('/usr/bin/squeue', ['-h', '-r', '-n', 'rsn-evaluate', '-t', 'RUNNING', '-o', '%i']).trim().split('\n')[0];
        if (running) {
          sh('/usr/bin/scontrol', ['requeue', running]);
          requeued = running;
          // Slurm holds a requeued task for two minutes (BeginTime); what an admin would do lets it start now.
          // Under load the killed task can be recorded as ended (FAILED) before the requeue takes; an
          // admin then requeues it again (Slurm requeues a finished batch job too).
          for (let k = 0; k < 600; k++) {
            const st = sh('/usr/bin/squeue', ['-h', '-j', running, '-t', 'all', '-o', '%T %r']).trim();
            if (/^PENDING BeginTime/.test(st)) break;
            if (/^(FAILED|CANCELLED|COMPLETED)/.test(st) && k % 50 === 49) spawnSync('/usr/bin/scontrol', ['requeue', running], { env, encoding: 'utf8' });
            await sleep(100);
          }
          sh('/usr/bin/scontrol', ['update', `JobId=${running}`, 'StartTime=now']);
        } else await sleep(100);
      }
    })();
    const got = await p.evaluate(intra!, 'intra');
    await watcher;
    assert.ok(requeued, 'no evaluate task was seen running');
    assert.match(sh('/usr/bin/scontrol', ['show', 'job', requeued]), /Restarts=[1-9]/, `task ${requeued} was not restarted`);
    assert.deepEqual(got, reference.intra);
    assert.deepEqual(await p.score(ppl!, 'perplexity'), reference.ppl);
    assert.ok(lines.some((l) => /slurm intra: \d+ pending · \d+ running · \d+\/3 done/.test(l)), `no progress lines:\n${lines.join('\n')}`);

    // A re-run submits nothing: the results are in the cache.
    lines.length = 0;
    assert.deepEqual(await p.evaluate(intra!, 'intra'), reference.intra);
    assert.ok(!lines.some((l) => /submitted/.test(l)), lines.join('\n'));
  } finally {
    p.dispose();
  }
});

test('executor slurm: a task that fails stops the wait, naming its shard, Slurm state and log', { skip: isRoot ? false : why, timeout: 10 * 60_000 }, async () => {
  const model = join(work, 'model');
  if (!existsSync(join(model, 'model.json'))) await convertCheckpoint({ inputDir: organism, outputDir: model, dtype: 'float32' });
  // Every task is told to use a backend that does not exist. Nothing is requeued here, so the
  // failure need not wait out the default grace a requeued task gets (the requeue test above uses it).
  const p = await slurmPipeline(model, 'failing', { sbatchArgs: '--export=ALL,RSN_BACKEND=no-such-backend', failureGraceSeconds: 5 });
  try {
    await assert.rejects(p.known(), (e: Error) => {
      assert.match(e.message, /slurm known facts and ranking: known task [01] \(job \d+_[01]\) ended FAILED without its result; its log .*\/logs\/rsn-known-\d+_[01]\.out ends:\n[\s\S]*no-such-backend/);
      return true;
    });
    // The chain's later jobs were cancelled, not left waiting.
    for (let i = 0; ; i++) {
      if (sh('/usr/bin/squeue', ['-h', '-t', 'PENDING,RUNNING', '-n', 'rsn-merge-known,rsn-collect,rsn-rank', '-o', '%i']).trim() === '') break;
      if (i > 100) assert.fail('the later jobs of the failed chain are still queued');
      await sleep(200);
    }
  } finally {
    p.dispose();
  }
});

test('npm run reproduce -- --executor slurm: the same tables, figures and verdicts as a run here, with a cost plan', { skip: isRoot ? false : why, timeout: 20 * 60_000 }, async () => {
  // The filter, the ranking, an experiment's generate jobs and its score jobs: every kind of stage.
  const notebooks = ['00', '01', '04', '10'];
  const common = [...notebooks, '--quick', '--relations', 'company_ceo,person_father'];
  const reproduce = (args: string[], extra: NodeJS.ProcessEnv) => {
    const base = Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('RSN_') || k === 'RSN_JOB_NODE'));
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(repo, 'scripts', 'reproduce.ts'), ...common, ...args], { cwd: repo, encoding: 'utf8', env: { ...base, ...extra }, timeout: 15 * 60_000 });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    return r.stdout;
  };
  const here = join(work, 'results-here');
  const there = join(work, 'results-slurm');
  reproduce(['--results', here], {});
  const t0 = performance.now();
  // A cache of its own: every stage really runs on the cluster.
  const out = reproduce(['--results', there, '--executor', 'slurm', '--work', join(work, 'repro-work'), '--shards', '2', '--partition', 'rsn'], { RSN_CACHE: join(work, 'repro-cache') });
  const seconds = (performance.now() - t0) / 1000;
  assert.match(out, /slurm known facts and ranking: submitted known \d+, merge-known \d+, collect \d+, rank \d+ \(2 shards/);
  assert.match(out, /slurm [^\n]*: \d+ pending · 2 running · /, 'two tasks of an array ran at once');
  assert.match(out, /computed now: \d+ stage\(s\), [\d.]+ [GMT]FLOP in [\d:]+ of stage time on slurm ×2/);
  const [runHere] = readdirSync(join(here, 'organism', 'runs'));
  const [runThere] = readdirSync(join(there, 'organism', 'runs'));
  assert.equal(runThere, runHere, 'both runs file under one setting');
  const a = join(here, 'organism', 'runs', runHere!);
  const b = join(there, 'organism', 'runs', runThere!);
  let compared = 0;
  for (const sub of ['tables', 'figures', 'verdicts']) {
    const files = readdirSync(join(a, sub)).sort();
    assert.deepEqual(readdirSync(join(b, sub)).sort(), files, sub);
    for (const f of files) {
      // A verdict file says when it was written; nothing else in it may differ.
      const read = (d: string) => readFileSync(join(d, sub, f), 'utf8').replace(/^ "updated": ".*",$/m, '');
      assert.equal(read(b), read(a), `${sub}/${f} differs between the run here and the run on Slurm`);
      compared++;
    }
  }
  assert.ok(compared > 20, `${compared} files compared`);
  // The cost ledger names where each stage ran, and the report shows what the run cost.
  const ledger = JSON.parse(readFileSync(join(b, 'cost.json'), 'utf8')) as { stages: { stage: string; id: string; last: { executor: string } | null }[] };
  // The cluster's filter-and-ranking chain is kept as the two stages a run here keeps, each once.
  for (const stage of ['known', 'ranking', 'evaluate', 'score']) assert.ok(ledger.stages.some((s) => s.stage === stage && s.last?.executor === 'slurm ×2 (partition rsn)'), `${stage}: ${JSON.stringify(ledger.stages.map((s) => [s.stage, s.last]))}`);
  assert.equal(new Set(ledger.stages.map((s) => `${s.stage} ${s.id}`)).size, ledger.stages.length);
  assert.match(readFileSync(join(there, 'organism', 'REPORT-incomplete.md'), 'utf8'), /### What the run costs[\s\S]*\| 04-intra-relation \| \d+ \| [\d,]+ \| [\d,]+ \| [\d.]+ [GMT]FLOP \|/);
  // Run again: the plan is printed before anything runs, from the first run's ledger.
  assert.match(reproduce(['--results', there, '--executor', 'slurm', '--work', join(work, 'repro-work'), '--shards', '2', '--partition', 'rsn'], { RSN_CACHE: join(work, 'repro-cache') }), /cost plan \(this setting's last run, \d+ stages\): [\d,]+ prompt runs[\s\S]*on slurm ×2: ≈ [\d:]+ \(from \d+ timed stages\)/);
  process.stdout.write(`# slurm: notebooks ${notebooks.join(', ')} reproduced on 2-task arrays in ${seconds.toFixed(0)} s\n`);
});

test('submit.sh --gpus-per-shard on a cluster without GPUs stops before submitting, saying so', { skip: isRoot ? false : why }, async () => {
  const model = join(work, 'model');
  if (!existsSync(join(model, 'model.json'))) await convertCheckpoint({ inputDir: organism, outputDir: model, dtype: 'float32' });
  const r = spawnSync('bash', [join(repo, 'deploy', 'slurm', 'submit.sh'), '--model', model, '--data', data, '--shards', '2', '--work', join(work, 'gpu-run'), '--partition', 'rsn', '--gpus-per-shard', '1'], { env, encoding: 'utf8' });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /--gpus-per-shard 1, but no node of partition rsn offers GPUs \(sinfo's generic resources: \(null\) \); leave --gpus-per-shard out on CPU nodes/);
  assert.ok(!existsSync(join(work, 'gpu-run')), 'nothing was written');
});
