/**
 * An experiment's jobs run in shards by the real CLI (`rsn evaluate --shard i/n`, `rsn merge`) on
 * the bundled organism: the merged results equal `pipeline.evaluate` / `pipeline.score` of the
 * same jobs bit for bit (answers, correctness, accuracies, perplexities), come back into another
 * pipeline's cache, and whatever would give wrong results is refused, naming the shard or file.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convertCheckpoint } from '../weights-converter/convert.ts';
import { jobsDigest, Pipeline } from '../lib/runs/pipeline.ts';
import { readJobResults } from '../lib/runs/job-shards.ts';
import { rsn as runRsn } from './helpers/cli.ts';
import { intraRelation, perplexity, type Job, type JobResult, type ScoreJob, type ScoreResult } from '../lib/method/experiments.ts';

const organism = new URL('../data/organism', import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), 'rsn-job-shards-'));
after(() => rmSync(work, { recursive: true, force: true }));
const w = (p: string) => join(work, p);
const model = w('model');
const RELATIONS = ['company_ceo', 'person_father'];

/** The CLI on the wasm backend, as the pipeline above. */
const rsn = (args: string[]) => runRsn(args, { RSN_BACKEND: 'wasm' });

async function ok(args: string[]): Promise<string> {
  const r = await rsn(args);
  assert.equal(r.code, 0, `rsn ${args.join(' ')}\n${r.stderr}`);
  return r.stderr;
}

let p: Pipeline;
let intraJobs: Job[];
let intraReference: JobResult[];
let scoreJobs: ScoreJob[];
let scoreReference: ScoreResult[];

before(async () => {
  await convertCheckpoint({ inputDir: organism, outputDir: model, dtype: 'float32' });
  p = await Pipeline.open({ modelDir: model, dataDir: join(organism, 'relations'), cacheDir: w('cache'), relations: RELATIONS, backend: 'wasm', run: { quiet: true } });
  const ctx = await p.context();
  intraJobs = intraRelation.plan(ctx, { k: 20, randomSeeds: 2, sets: ['eva'] }).jobs;
  intraReference = await p.evaluate(intraJobs);
  // Sentences of the relations' own prompts stand in for neutral ones: scoring needs text, not meaning.
  const sentences = Object.fromEntries(p.dataset.relations.map((r) => [r.relation.name, r.eva.slice(0, 40).map((x) => `${x.text} ${x.object}`)]));
  scoreJobs = perplexity.plan(ctx, { sentences, k: 20 }).jobs;
  scoreReference = await p.score(scoreJobs);
});
after(() => p?.dispose());

describe('jobs in shards through the CLI', () => {
  test('3 shards of intra-relation jobs, merged, equal pipeline.evaluate bit for bit; another pipeline imports them into its cache', async () => {
    const file = w('intra.jobs.json');
    assert.equal(await p.writeJobs(file, intraJobs), jobsDigest(intraJobs));
    const rows = intraJobs.reduce((a, j) => a + j.prompts.length, 0);
    assert.ok(rows > 3 * 64, `${rows} rows make more than 3 batches of 64`);
    await Promise.all([0, 1, 2].map((i) => ok(['evaluate', '--model', model, '--jobs', file, '--shard', `${i}/3`, '--out', w(`intra-${i}`), '--quiet'])));
    assert.match(await ok(['merge', w('intra-0'), w('intra-1'), w('intra-2'), '--out', w('intra-results')]), /3 jobs shards \(\d+ jobs\)/);
    const merged = readJobResults(w('intra-results'), { digest: jobsDigest(intraJobs) });
    assert.equal(merged.kind, 'generate');
    assert.deepEqual(merged.results, intraReference);
    // Re-running a finished shard does nothing.
    assert.match(await ok(['evaluate', '--model', model, '--jobs', file, '--shard', '1/3', '--out', w('intra-1')]), /shard 1\/3 is already done/);
    // Another pipeline (its own cache) takes them in; evaluate then reads them from its cache.
    const log: string[] = [];
    const q = await Pipeline.open({ modelDir: model, dataDir: join(organism, 'relations'), cacheDir: w('cache-imported'), relations: RELATIONS, backend: 'wasm', run: { quiet: true }, log: (l) => log.push(l) });
    try {
      assert.deepEqual(await q.importResults(intraJobs, w('intra-results')), intraReference);
      log.length = 0;
      assert.deepEqual(await q.evaluate(intraJobs), intraReference);
      assert.ok(log.some((l) => /evaluate: cached/.test(l)) && !log.some((l) => /evaluate: computed/.test(l)), log.join(' | '));
      await assert.rejects(q.importResults(intraJobs.slice(1), w('intra-results')), /job-results\.json: results of other jobs/);
    } finally {
      q.dispose();
    }
  });

  test('2 shards of perplexity jobs, merged, equal pipeline.score bit for bit', async () => {
    const file = w('ppl.jobs.json');
    await p.writeJobs(file, scoreJobs);
    await Promise.all([0, 1].map((i) => ok(['evaluate', '--model', model, '--jobs', file, '--shard', `${i}/2`, '--out', w(`ppl-${i}`), '--quiet'])));
    await ok(['merge', w('ppl-0'), w('ppl-1'), '--out', w('ppl-results')]);
    const merged = readJobResults(w('ppl-results'), { digest: jobsDigest(scoreJobs) });
    assert.equal(merged.kind, 'score');
    assert.deepEqual(merged.results, scoreReference);
  });

  test('a missing, repeated, edited or foreign shard, and an edited jobs file, are refused, naming them; nothing is written', async () => {
    const missing = await rsn(['merge', w('intra-0'), w('intra-2'), '--out', w('bad')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /shard 1\/3 missing/);
    const foreign = await rsn(['merge', w('intra-0'), w('ppl-1'), w('intra-2'), '--out', w('bad')]);
    assert.equal(foreign.code, 1);
    assert.match(foreign.stderr, /ppl-1 \(shard 1\/2\) ran other jobs or another model than .*intra-0/);
    cpSync(w('intra-1'), w('intra-1-edited'), { recursive: true });
    const shardFile = w('intra-1-edited/jobs-shard.json');
    const text = readFileSync(shardFile, 'utf8');
    const flipped = text.replace(/"correct":\[\[(true|false)/, (m) => (m.endsWith('true') ? '"correct":[[false' : '"correct":[[true'));
    assert.notEqual(flipped, text);
    writeFileSync(shardFile, flipped);
    const edited = await rsn(['merge', w('intra-0'), w('intra-1-edited'), w('intra-2'), '--out', w('bad')]);
    assert.equal(edited.code, 1);
    assert.match(edited.stderr, /intra-1-edited\/jobs-shard\.json: its content does not match its checksum/);
    const jobsFile = w('intra-edited.jobs.json');
    writeFileSync(jobsFile, readFileSync(w('intra.jobs.json'), 'utf8').replace('"batchSize":64', '"batchSize":32'));
    const badJobs = await rsn(['evaluate', '--model', model, '--jobs', jobsFile, '--out', w('bad')]);
    assert.equal(badJobs.code, 1);
    assert.match(badJobs.stderr, /intra-edited\.jobs\.json: its content does not match its checksum/);
    assert.ok(!existsSync(w('bad')), 'a refused merge or run leaves no output');
  });
});
