/**
 * scoreRows (lib/method/generation.ts) — the log-likelihood behind the perplexity experiment —
 * against the independent reference (test/fixtures/reference.json, llama2.c's model.py): the
 * test takes the reference's logits, computes log p(token_t | tokens_<t) = l_t[y] − logsumexp(l_t)
 * in float64 itself, and compares. Then perplexity() (lib/method/experiments.ts, Table 2) on
 * tokenized sentences against the same float64 log-softmax over plain forward passes.
 *
 * Tolerance: the fixture README bounds fp32 logits at 1e-3 absolute per logit. A log-softmax
 * term l[y] − logsumexp(l) moves by at most |Δl[y]| + max|Δl| ≤ 2e-3, so a sum over n scored
 * tokens is within 2e-3·n. (Measured differences are ~1e-5; a wrong position, token, pad offset
 * or missing normalisation moves a term by whole nats: the logits here span several units.)
 *
 * Run: node --import tsx --test test/scoring.test.ts
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convertCheckpoint } from '../weights-converter/convert.ts';
import { LlamaModel } from '../lib/model/llama.ts';
import { ablation, NeuronSpace } from '../lib/method/neurons.ts';
import { scoreRows } from '../lib/method/generation.ts';
import { makeContext, perplexity, runScoreJobs } from '../lib/method/experiments.ts';
import { loadDataset } from '../lib/method/dataset.ts';
import { KNOWN_SCHEMA, type KnownFacts } from '../lib/method/known.ts';
import { RANKING_SCHEMA, topNeurons, type Ranking } from '../lib/method/ranking.ts';
import { provenance } from '../lib/method/identity.ts';
import { tokenizerJson, tokenizerConfigJson, trainBpe } from '../lib/organism/bpe.ts';
import { projectRoot } from '../lib/notebook/paths.ts';
import { fixturesDir, loadReference } from './helpers/reference.ts';

const ref = loadReference();
const work = mkdtempSync(join(tmpdir(), 'rsn-scoring-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

const PER_TOKEN_TOL = 2e-3;

/** Σ_t log softmax(logits[t])[ids[t+1]] in float64, and the number of terms. */
function referenceLogProb(ids: readonly number[], logits: readonly (ArrayLike<number>)[]): { logProb: number; count: number } {
  let lp = 0;
  for (let t = 0; t + 1 < ids.length; t++) {
    const row = logits[t]!;
    let max = -Infinity;
    for (let v = 0; v < row.length; v++) max = Math.max(max, row[v]!);
    let s = 0;
    for (let v = 0; v < row.length; v++) s += Math.exp(row[v]! - max);
    lp += row[ids[t + 1]!]! - (max + Math.log(s));
  }
  return { logProb: lp, count: ids.length - 1 };
}

let model: LlamaModel;
let space: NeuronSpace;
/** The deactivation case's units as global indices of the FFN space. */
let deactivated: Int32Array;

before(async () => {
  const dir = join(work, 'tiny');
  await convertCheckpoint({ inputDir: join(fixturesDir, 'tiny-llama-bf16'), outputDir: dir, dtype: 'float32' });
  // A real tokenizer for the sentence-level test: BPE trained on a little English, 300 pieces,
  // so every id it produces is inside the fixture model's 300-token vocabulary.
  const corpus = ['the company is based in the city of', 'the father of the person is', 'the mother of the person is', 'every year thousands of tourists visit the site'];
  const bpe = trainBpe(corpus, { vocabSize: 300, minCharCount: 1 });
  assert.ok(bpe.vocab.length <= 300);
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson(bpe)));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfigJson(64)));
  model = await LlamaModel.load(dir, { log: null });
  space = NeuronSpace.forModel(model.config, 'ffn');
  const units: number[] = [];
  for (const [layer, sites] of Object.entries(ref.deactivation.zeroed_units)) {
    for (const site of ['gate', 'up', 'down'] as const) for (const u of sites[site]) units.push(space.indexOf(Number(layer), `mlp.${site}`, u));
  }
  deactivated = Int32Array.from(units);
});
after(() => model?.dispose());

describe('scoreRows against the reference logits', () => {
  test('no ablation: every case, one padded batch and batches of 2, equals the float64 log-softmax of the reference logits', async () => {
    const rows = ref.cases.map((c) => ({ ids: c.input_ids, ablation: null }));
    const expected = ref.cases.map((c) => referenceLogProb(c.input_ids, c.logits));
    // Sanity of the reference itself: a proper log-probability, and far from 0 (so a constant
    // or an off-by-one would be visible).
    for (const e of expected.slice(1)) assert.ok(e.logProb < -1, String(e.logProb));
    for (const batchSize of [32, 2]) {
      const got = await scoreRows(model, space, rows, { batchSize, quiet: true });
      got.forEach((g, i) => {
        assert.equal(g.count, expected[i]!.count, `case ${i} count`);
        const tol = PER_TOKEN_TOL * Math.max(1, g.count);
        assert.ok(Math.abs(g.logProb - expected[i]!.logProb) <= tol, `batch ${batchSize}, case ${i} (len ${rows[i]!.ids.length}): ${g.logProb} vs reference ${expected[i]!.logProb}`);
      });
    }
    // A single token has nothing to score.
    assert.deepEqual((await scoreRows(model, space, [{ ids: [1], ablation: null }], { quiet: true }))[0], { logProb: 0, count: 0 });
  });

  test('with the deactivation units zeroed, rows mixed with unablated ones, equals the reference deactivation logits', async () => {
    const plain = ref.cases.filter((c) => c.input_ids.length > 1);
    const rows = [
      ...ref.deactivation.cases.map((c) => ({ ids: c.input_ids, ablation: ablation(deactivated) })),
      ...plain.map((c) => ({ ids: c.input_ids, ablation: null })),
    ];
    const expected = [...ref.deactivation.cases.map((c) => referenceLogProb(c.input_ids, c.logits)), ...plain.map((c) => referenceLogProb(c.input_ids, c.logits))];
    const got = await scoreRows(model, space, rows, { batchSize: 5, quiet: true });
    got.forEach((g, i) => {
      assert.equal(g.count, expected[i]!.count);
      assert.ok(Math.abs(g.logProb - expected[i]!.logProb) <= PER_TOKEN_TOL * g.count, `row ${i}: ${g.logProb} vs reference ${expected[i]!.logProb}`);
    });
    // The ablation matters here (so the comparison above distinguishes masked from unmasked).
    const same = ref.deactivation.cases.map((d) => referenceLogProb(d.input_ids, ref.cases.find((c) => c.input_ids.join() === d.input_ids.join())!.logits));
    // (Reference differences: 0.40, 0.05, 2.9 and 1.5 nats; tolerances 0.008–0.032.)
    const distinguished = same.filter((s, i) => Math.abs(s.logProb - expected[i]!.logProb) > 2 * PER_TOKEN_TOL * s.count).length;
    assert.ok(distinguished >= 3, `${distinguished} of 4 deactivation cases change the score by more than twice the tolerance`);
  });
});

describe('perplexity (Table 2) on tokenized sentences', () => {
  test('mean per-sentence exp(−mean log p) before and after zeroing the relation top-k, as computed from forward logits', async () => {
    const dataset = loadDataset(join(projectRoot, 'data', 'organism', 'relations'), { relations: ['company_ceo', 'person_father'] });
    const known: KnownFacts = { schema: KNOWN_SCHEMA, provenance: provenance(model, dataset.hash, 0), maxNewTokens: 2, relations: [] };
    // A ranking whose company_ceo top-k is exactly the deactivation units; person_father's top-k
    // is the last k neurons of the space (it has no sentences, so it must not appear).
    const k = deactivated.length;
    const ceo = new Float32Array(space.size).fill(0.1);
    deactivated.forEach((idx, i) => (ceo[idx] = 0.9 - i / 1000));
    const father = Float32Array.from({ length: space.size }, (_, i) => i / space.size);
    const ranking: Ranking = {
      schema: RANKING_SCHEMA,
      provenance: provenance(model, dataset.hash, 0),
      space,
      includeBos: true,
      negativeRatio: 4,
      relations: [
        { name: 'company_ceo', numPositives: 1, numNegatives: 4, ap: ceo },
        { name: 'person_father', numPositives: 1, numNegatives: 4, ap: father },
      ],
    };
    assert.deepEqual([...topNeurons(ranking, 'company_ceo', k)], [...deactivated]);
    const ctx = makeContext(model, dataset, known, ranking, { quiet: true, batchSize: 2 });
    const sentences = ['the company is based in the city', 'the mother of the person', 'every year tourists visit the site of the city', 'the father is'];
    const plan = perplexity.plan(ctx, { sentences: { company_ceo: sentences, person_father: [] }, k });
    const res = perplexity.summarise(ctx, plan, await runScoreJobs(ctx, plan.jobs));
    assert.equal(res.k, k);
    assert.deepEqual(res.relations.map((r) => [r.name, r.sentences]), [['company_ceo', 4]]);

    // Independent expectation: one forward pass per sentence, float64 log-softmax in the test.
    const tok = model.tokenizer!;
    const ppl = async (ablate: boolean) => {
      const per: number[] = [];
      for (const s of sentences) {
        const ids = tok.encode(s);
        assert.ok(ids.length > 3 && ids.every((x) => x < 300));
        const interventions: { point: string; op: 'zero'; units: number[] }[] = [];
        if (ablate) {
          for (const [layer, sites] of Object.entries(ref.deactivation.zeroed_units)) {
            for (const site of ['gate', 'up', 'down'] as const) if (sites[site].length) interventions.push({ point: `blocks.${layer}.mlp.${site}`, op: 'zero', units: sites[site] });
          }
        }
        const r = await model.forward([ids], { logits: 'all', hooks: { interventions } });
        const rows = Array.from({ length: ids.length }, (_, t) => r.logits!.data.subarray(t * 300, (t + 1) * 300));
        const { logProb, count } = referenceLogProb(ids, rows);
        per.push(Math.exp(-logProb / count));
      }
      return per;
    };
    const before = await ppl(false);
    const afterAblation = await ppl(true);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const got = res.relations[0]!;
    // exp(−lp/n) moves by a relative ≤ 2e-3 per token-average; forward vs batched-forward
    // differences are far smaller (same code, float32 rounding only).
    assert.ok(Math.abs(got.before - mean(before)) <= 1e-3 * mean(before), `before ${got.before} vs ${mean(before)}`);
    assert.ok(Math.abs(got.after - mean(afterAblation)) <= 1e-3 * mean(afterAblation), `after ${got.after} vs ${mean(afterAblation)}`);
    // The two differ (so before/after swapped, or the mask ignored, would fail), and an arithmetic
    // mean of per-sentence perplexities is not the perplexity of the pooled tokens.
    assert.ok(Math.abs(mean(before) - mean(afterAblation)) > 0.01 * mean(before), `ablation changes perplexity: ${mean(before)} → ${mean(afterAblation)}`);
  });
});
