/**
 * `npx tsx scripts/organism-card.ts [DIR]` (default data/organism): measure the organism in DIR
 * through the method's Pipeline — the calls notebooks 04 and 05 make, with their default
 * parameters — and write DIR/measurement.json and DIR/MODEL_CARD.md (with train-log.json and
 * world.json). organism-train runs this at the end; run it alone to refresh the card.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseScriptCommandLine } from '../lib/cli-args.ts';
import { Pipeline } from '../lib/runs/pipeline.ts';
import { resolveK } from '../lib/notebook/k.ts';
import { params } from '../lib/notebook/params.ts';
import { modelCard } from '../lib/organism/card.ts';
import { measureOrganism, type KChoice, type OrganismMeasurement } from '../lib/organism/evaluate.ts';
import type { TrainLog } from '../lib/organism/train.ts';
import type { World } from '../lib/organism/world.ts';
import { readSafetensorsF32 } from '../lib/safetensors.ts';
import { LlamaTokenizer } from '../lib/tokenizer.ts';
import { convertCheckpoint } from '../weights-converter/convert.ts';

/**
 * The notebooks' default parameters (the registry in lib/notebook/params.ts, not the
 * environment): the card's numbers are what notebook 04 computes for this model by default.
 */
const NOTEBOOK_DEFAULTS = params({}, { env: {}, quiet: true });

/** Ablation columns besides the notebook's default k: its kPercent parameter at the paper's 0.36 %, and 1 % and 10 %. */
const EXTRA_K_PERCENTS = [0.36, 1, 10];

export interface CardOptions {
  /** Random-neuron baselines per k (default: notebook 04's). */
  randomSeeds?: number;
  log?: (line: string) => void;
}

export async function writeCard(dir: string, opts: CardOptions = {}): Promise<OrganismMeasurement> {
  const log = opts.log ?? (() => {});
  const world = JSON.parse(readFileSync(join(dir, 'world.json'), 'utf8')) as World & { corpus: { lines: number } };
  const trainLog = JSON.parse(readFileSync(join(dir, 'train-log.json'), 'utf8')) as TrainLog & { design: string; description: string; backend: string };
  const tokz = LlamaTokenizer.fromFile(dir);
  const corpusTokens = readFileSync(join(dir, 'corpus.txt'), 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .reduce((s, l) => s + tokz.encode(l).length + 1, 0);
  let parameters = 0;
  for (const t of readSafetensorsF32(readFileSync(join(dir, 'model.safetensors'))).values()) parameters += t.data.length;

  const tmp = mkdtempSync(join(tmpdir(), 'organism-card-'));
  let measurement: OrganismMeasurement;
  try {
    // As the notebooks load a Hugging Face directory: converted to float32 by the project's converter.
    await convertCheckpoint({ inputDir: dir, outputDir: join(tmp, 'converted'), dtype: 'float32' });
    // A fresh stage cache: the card is always measured, never read back from an earlier run.
    const pipeline = await Pipeline.open({
      modelDir: join(tmp, 'converted'),
      dataDir: join(dir, 'relations'),
      cacheDir: join(tmp, 'pipeline'),
      seed: NOTEBOOK_DEFAULTS.seed,
      run: { batchSize: NOTEBOOK_DEFAULTS.batchSize, quiet: true },
      log,
    });
    try {
      // k as notebook 04 resolves it: against the ranking's FFN pool.
      const pool = (await pipeline.ranking()).space.poolIndices('ffn').length;
      const base = resolveK(NOTEBOOK_DEFAULTS, pool, { quiet: true, poolName: 'the FFN pool' });
      const extra = EXTRA_K_PERCENTS.map((kPercent) => resolveK({ ...NOTEBOOK_DEFAULTS, kPercent }, pool, { quiet: true, poolName: 'the FFN pool' }));
      const ks: KChoice[] = [...extra, base].map((r) => ({ k: r.k, how: r.how })).sort((a, b) => a.k - b.k);
      measurement = await measureOrganism(pipeline, world, { ks, primaryK: base.k, randomSeeds: opts.randomSeeds ?? NOTEBOOK_DEFAULTS.randomSeeds, detLimit: NOTEBOOK_DEFAULTS.detLimit, log });
    } finally {
      pipeline.dispose();
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  writeFileSync(join(dir, 'measurement.json'), JSON.stringify({ design: trainLog.design, description: trainLog.description, parameters, ...measurement }, null, 1) + '\n');

  let sizeBytes = 0;
  const walk = (d: string) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else if (f !== 'MODEL_CARD.md') sizeBytes += st.size;
    }
  };
  walk(dir);
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const last = trainLog.losses[trainLog.losses.length - 1];
  const card = modelCard({
    design: trainLog.design,
    description: trainLog.description,
    parameters,
    arch: cfg,
    backend: trainLog.backend,
    train: {
      steps: trainLog.steps,
      seconds: trainLog.seconds,
      tokensSeen: trainLog.tokensSeen,
      stoppedBecause: trainLog.stoppedBecause,
      finalLoss: last ? last.loss : NaN,
      batchSize: trainLog.options.batchSize,
      lr: trainLog.options.lr,
      weightDecay: trainLog.options.weightDecay,
    },
    world,
    corpusLines: world.corpus.lines,
    corpusTokens,
    vocabSize: Number(cfg['vocab_size']),
    report: measurement,
    sizeBytes,
  });
  writeFileSync(join(dir, 'MODEL_CARD.md'), card);
  return measurement;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const dir = parseScriptCommandLine(process.argv.slice(2), {}, true).positionals[0] ?? 'data/organism';
  const m = await writeCard(dir, { log: (l) => console.log(`[card] ${l}`) });
  console.log(`[card] ${dir}/MODEL_CARD.md and measurement.json written in ${m.seconds.toFixed(0)} s; at k = ${m.primaryK}: ${m.passingEva} / ${m.relations.length} relations pass on P^eva`);
}
