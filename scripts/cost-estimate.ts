/**
 * What the paper's reproduction costs on a model that is not at hand (Llama-2-7B/13B), stage by
 * stage, before anything runs: the notebooks' plans with their default parameters, built by the
 * experiments' own `plan` functions on the real data and tokenizer, and counted by the pipeline's
 * own cost functions (lib/method/stage-costs.ts). Two things only a run can give are assumed,
 * and the result file says so: which detection prompts the model knows (a fraction, spread evenly
 * over every relation's prompts) and which neurons rank first (any: a cost does not depend on
 * which neurons are zeroed).
 *
 *   npx tsx scripts/cost-estimate.ts [--data data/relations] [--tokenizer DIR] [--known-fraction 0.6] [--out FILE]
 *
 * The models are Table 1's configs (data/paper/numbers.json). Prints one JSON object; --out
 * writes it too (docs/data/cost-llama-2.json, which docs/gpu.md's table is rendered from).
 */
import { parseScriptCommandLine } from '../lib/cli-args.ts';
import { writeFileAtomic } from '../lib/data/io.ts';
import { MEASUREMENT_SCHEMA, startMeasurement } from '../lib/measurement.ts';
import type { LlamaConfig } from '../lib/model/config.ts';
import type { ModelRunner } from '../lib/model/runner.ts';
import { addCosts, NO_COST, type Cost } from '../lib/method/cost.ts';
import { loadDataset, type Dataset } from '../lib/method/dataset.ts';
import { interRelation } from '../lib/method/experiments/inter-relation.ts';
import { intraRelation } from '../lib/method/experiments/intra-relation.ts';
import { kSweep } from '../lib/method/experiments/k-sweep.ts';
import { neutralSentences, perplexity } from '../lib/method/experiments/perplexity.ts';
import { makeContext, tokenIds, type Context } from '../lib/method/jobs.ts';
import { KNOWN_SCHEMA, type KnownFacts } from '../lib/method/known.ts';
import { NeuronSpace, ZERO, type PoolName } from '../lib/method/neurons.ts';
import { paperNumbers } from '../lib/method/paper-numbers.ts';
import { RANKING_SCHEMA, type Ranking } from '../lib/method/ranking.ts';
import { collectionCost, filterCost, generateJobsCost, scoreJobsCost } from '../lib/method/stage-costs.ts';
import { params } from '../lib/notebook/params.ts';
import { fromRoot } from '../lib/notebook/paths.ts';
import { mulberry32 } from '../lib/rng.ts';
import { LlamaTokenizer } from '../lib/tokenizer.ts';

const { values } = parseScriptCommandLine(process.argv.slice(2), {
  data: { type: 'string', default: 'data/relations' },
  tokenizer: { type: 'string', default: 'test/fixtures/llama2-tokenizer' },
  'known-fraction': { type: 'string', default: '0.6' },
  out: { type: 'string' },
});
const knownFraction = Number(values['known-fraction']);
if (!(knownFraction > 0 && knownFraction <= 1)) throw new Error(`--known-fraction ${values['known-fraction']}: expected a number in (0, 1]`);

/** Known facts as a run of a model that knows `fraction` of every relation's detection prompts would give. */
function assumedKnown(dataset: Dataset, fraction: number): KnownFacts {
  const relations = dataset.relations.map((r) => {
    const known = r.det.flatMap((_, i) => (Math.floor((i + 1) * fraction) > Math.floor(i * fraction) ? [i] : []));
    return { name: r.relation.name, total: r.det.length, known, outputs: r.det.map(() => '') };
  });
  const provenance = { model: { name: 'assumed', dir: null, sha256: 'assumed', storageDtype: 'float32' as const }, dataHash: dataset.hash, seed: dataset.seed, backend: 'none', version: 'estimate', createdAt: new Date(0).toISOString() };
  return { schema: KNOWN_SCHEMA, provenance, maxNewTokens: 2, relations };
}

/** A ranking of a pool's neurons in a random order: which neurons come first changes no cost. */
function anyRanking(c: LlamaConfig, known: KnownFacts, pool: 'ffn' | 'all' = 'ffn'): Ranking {
  const space = NeuronSpace.forModel(c, pool);
  const rng = mulberry32(0);
  const relations = known.relations.map((r) => ({ name: r.name, numPositives: r.known.length, numNegatives: 4 * r.known.length, ap: Float32Array.from({ length: space.size }, () => rng.next()) }));
  return { schema: RANKING_SCHEMA, provenance: known.provenance, space, includeBos: false, negativeRatio: 4, relations };
}

interface Stage {
  notebooks: string;
  stage: string;
  cost: Cost | null;
  /** Why a stage is not counted. */
  note?: string;
}

function estimate(name: string, config: LlamaConfig, tok: LlamaTokenizer, dataset: Dataset): { model: string; stages: Stage[]; total: Cost } {
  const known = assumedKnown(dataset, knownFraction);
  const ranking = anyRanking(config, known);
  // The plans read the model's config and tokenizer only; no weights exist here.
  const model = { config, tokenizer: tok, info: { dir: null, storageDtype: 'float32', backend: null, contentSha256: null } } as unknown as ModelRunner;
  const ctx: Context = makeContext(model, dataset, known, ranking);
  const count = (t: string) => tokenIds(ctx, t).length;
  // The notebooks' defaults, as the registry gives them (not the environment).
  const P = params({}, { env: {}, quiet: true });
  const k = P.k;
  const stages: Stage[] = [];
  const generate = (notebooks: string, stage: string, jobs: Parameters<typeof generateJobsCost>[2]) => stages.push({ notebooks, stage, cost: generateJobsCost(config, count, jobs) });
  stages.push({ notebooks: '00', stage: 'known-facts filter', cost: filterCost(config, count, dataset) });
  stages.push({ notebooks: '01–03', stage: 'activations of the identification set (the ranking)', cost: collectionCost(config, count, dataset, known, dataset.seed) });
  generate('04, 08, 11, 13', 'intra-relation (P^eva, P^det, eva-2; 10 random draws)', intraRelation.plan(ctx, { k, randomSeeds: P.randomSeeds, detLimit: P.detLimit, sets: ['eva', 'det', 'eva2'], ablate: ZERO }).jobs);
  generate('05', 'inter-relation', interRelation.plan(ctx, { k, set: 'eva', ablate: ZERO }).jobs);
  generate('06, 07', 'k-sweep', kSweep.plan(ctx, { ks: P.ks, ablate: ZERO }).jobs);
  stages.push({ notebooks: '07', stage: 'cumulativity', cost: null, note: 'only the P^eva prompts that flip between two ks of the sweep: known after the sweep' });
  stages.push({ notebooks: '09', stage: 'multilingual', cost: null, note: 'needs translated relations, which data/relations does not have' });
  const sentences = neutralSentences(dataset, known, null);
  stages.push({ notebooks: '10', stage: 'perplexity (Table 8 sentences)', cost: scoreJobsCost(config, count, perplexity.plan(ctx, { sentences, maxSentences: P.maxSentences, k, ablate: ZERO }).jobs) });
  // Notebook 12 ranks the all-linear space (a second collection, attention recorded) and runs the inter-relation plan per pool.
  const all = makeContext(model, dataset, known, anyRanking(config, known, 'all'));
  stages.push({ notebooks: '12', stage: 'activations with attention (the all-linear ranking)', cost: collectionCost(config, count, dataset, known, dataset.seed) });
  const pools = P.pools as PoolName[];
  const poolJobs = pools.flatMap((pool) => interRelation.plan(all, { k: Math.min(k, all.space.poolIndices(pool).length), pool, set: 'eva', ablate: ZERO }).jobs);
  generate('12', `inter-relation per pool (${pools.join(', ')})`, poolJobs);
  const total = stages.reduce((a, s) => (s.cost ? addCosts(a, s.cost) : a), NO_COST);
  return { model: name, stages, total };
}

const measurement = startMeasurement();
const dataset = loadDataset(fromRoot(values.data), { seed: 0 });
const tok = LlamaTokenizer.fromFile(fromRoot(values.tokenizer));
const models = Object.entries(paperNumbers().table1).map(([name, m]) => estimate(name, m.config, tok, dataset));
const report = `${JSON.stringify({
  schema: MEASUREMENT_SCHEMA,
  measured: 'scripts/cost-estimate.ts',
  context: measurement.finish(),
  data: values.data,
  tokenizer: values.tokenizer,
  assumed: { knownFraction, ranking: 'any order (a cost does not depend on which neurons are zeroed)' },
  models,
}, null, 1)}\n`;
process.stdout.write(report);
if (values.out) writeFileAtomic(values.out, report);
