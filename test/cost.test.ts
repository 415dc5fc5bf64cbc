/**
 * The cost plan: FLOPs per token against Llama-2-7B's published parameter count, and the cost
 * the pipeline reports for an experiment's jobs on the organism against a count by hand (its
 * dimensions written out, the prompts' token lengths from the tokenizer). The cost ledger keeps
 * a stage once, with its measured time, and estimates a run from the timed stages.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseLlamaConfig } from '../lib/model/config.ts';
import { expectedSeconds, rowsCost, weightFlopsPerToken } from '../lib/method/cost.ts';
import { convertCheckpoint } from '../weights-converter/convert.ts';
import { Pipeline, type CostRecord } from '../lib/runs/pipeline.ts';
import { intraRelation } from '../lib/method/experiments.ts';
import { costByNotebook, expectedRunSeconds, readCostLedger, recordCost } from '../lib/notebook/cost-ledger.ts';

const work = mkdtempSync(join(tmpdir(), 'rsn-cost-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

test("FLOPs per token of Llama-2-7B: twice its published 6,738,415,616 parameters less the embedding and the norms", () => {
  const c = parseLlamaConfig({ architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 32, vocab_size: 32000, max_position_embeddings: 4096, rms_norm_eps: 1e-5 });
  const embedding = 32000 * 4096;
  const norms = 32 * 2 * 4096 + 4096;
  assert.equal(weightFlopsPerToken(c), 2 * (6_738_415_616 - embedding - norms));
  // One 20-token row: 20 tokens of weights plus attention over 1 + 2 + … + 20 positions, 2·2·4096 FLOPs each per layer.
  assert.equal(rowsCost(c, [19], 2).flops, 20 * weightFlopsPerToken(c) + 32 * 4 * 4096 * ((20 * 21) / 2));
});

test('the cost of an intra-relation plan on the organism, as the pipeline reports it, equals a count by hand', async () => {
  const model = join(work, 'model');
  await convertCheckpoint({ inputDir: new URL('../data/organism', import.meta.url).pathname, outputDir: model, dtype: 'float32' });
  const records: CostRecord[] = [];
  const p = await Pipeline.open({ modelDir: model, dataDir: new URL('../data/organism/relations', import.meta.url).pathname, cacheDir: join(work, 'cache'), relations: ['company_ceo'], backend: 'wasm', run: { quiet: true }, onCost: (r) => records.push(r) });
  try {
    const ctx = await p.context();
    const jobs = intraRelation.plan(ctx, { k: 20, randomSeeds: 1, sets: ['eva'] }).jobs;
    await p.evaluate(jobs, 'intra');
    // The organism (data/organism/config.json): hidden 96, FFN 256, 4 layers of 4 heads × 24, vocabulary 1024, 2-token answers.
    const perToken = 2 * (4 * (4 * 96 * 96 + 3 * 96 * 256) + 96 * 1024);
    assert.equal(perToken, 1_081_344);
    let flops = 0;
    let tokens = 0;
    let rows = 0;
    for (const j of jobs) {
      for (const prompt of j.prompts) {
        const t = p.model.tokenizer!.encode(prompt.text).length + 1;
        flops += t * perToken + 4 * 2 * 2 * 96 * ((t * (t + 1)) / 2);
        tokens += t;
        rows++;
      }
    }
    const rec = records.find((r) => r.stage === 'evaluate');
    assert.ok(rec, `no evaluate record among ${records.map((r) => r.stage).join(', ')}`);
    assert.deepEqual(rec.cost, { promptRuns: rows, tokenForwards: tokens, flops });
    assert.ok(rec.seconds !== null && rec.seconds > 0, 'the computed stage was timed');
    assert.match(rec.executor, /^local /);
    assert.deepEqual(records.map((r) => r.stage), ['known', 'ranking', 'evaluate']);

    // Again: from the cache, the same cost and no time.
    records.length = 0;
    await p.evaluate(jobs, 'intra');
    assert.deepEqual(records, [{ ...rec, seconds: null }]);
  } finally {
    p.dispose();
  }
});

test('the ledger counts a stage once, keeps its measured time when it is read from a cache, and estimates a run from its timings', () => {
  const dir = join(work, 'run');
  const cost = (flops: number) => ({ promptRuns: 1, tokenForwards: 1, flops });
  recordCost({ stage: 'evaluate', label: 'a', id: 'x', cost: cost(100), seconds: 2, executor: 'local wasm' }, dir);
  recordCost({ stage: 'evaluate', label: 'b', id: 'y', cost: cost(300), seconds: 4, executor: 'local wasm' }, dir);
  recordCost({ stage: 'evaluate', label: 'a', id: 'x', cost: cost(100), seconds: null, executor: 'slurm ×2' }, dir);
  const ledger = readCostLedger(dir);
  assert.equal(ledger.length, 2);
  assert.equal(ledger[0]!.last?.seconds, 2);
  assert.equal(ledger[0]!.last?.executor, 'local wasm');
  // Computed again elsewhere: the last computation moves, the first executor's timing stays.
  recordCost({ stage: 'evaluate', label: 'a', id: 'x', cost: cost(100), seconds: 9, executor: 'slurm ×2' }, dir);
  assert.deepEqual(readCostLedger(dir)[0]!.timings, { 'local wasm': 2, 'slurm ×2': 9 });
  assert.equal(readCostLedger(dir)[0]!.last?.executor, 'slurm ×2');
  recordCost({ stage: 'evaluate', label: 'a', id: 'x', cost: cost(100), seconds: 2, executor: 'local wasm' }, dir);
  assert.deepEqual(costByNotebook(ledger).map((r) => [r.stages, r.flops, r.seconds]), [[2, 400, 6]]);
  // seconds = 0.01 · FLOPs + 1 through both timings: 100 → 2 s, 300 → 4 s.
  assert.equal(expectedSeconds([{ flops: 100, seconds: 2 }, { flops: 300, seconds: 4 }], 500), 6);
  assert.deepEqual(expectedRunSeconds(ledger, 'local'), { seconds: 6, timings: 2 });
  // One timing on slurm ×2 (100 FLOPs in 9 s): its throughput alone, over both stages (100 + 300 FLOPs).
  assert.deepEqual(expectedRunSeconds(readCostLedger(dir), 'slurm'), { seconds: 36, timings: 1 });
  assert.equal(expectedRunSeconds(readCostLedger(dir), 'k8s'), null);
  // One timing: its throughput alone.
  assert.equal(expectedSeconds([{ flops: 100, seconds: 2 }], 300), 6);
});
