/**
 * `npx tsx scripts/organism-card.ts [DIR]` (default data/organism): recompute the card-sample
 * accuracy of the organism in DIR (converted with the project's converter, greedy 2 tokens),
 * store it in DIR/measurement.json and write DIR/MODEL_CARD.md from measurement.json,
 * train-log.json and world.json. organism-train runs this at the end; run it alone to refresh
 * the card.
 */
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isCorrectAnswer } from '../lib/data/answer-check.ts';
import { loadRelation } from '../lib/data/relation.ts';
import { loadSplit, type Split } from '../lib/data/split.ts';
import { LlamaModel } from '../lib/model/llama.ts';
import { LlamaTokenizer } from '../lib/tokenizer.ts';
import { cardSample, modelCard } from '../lib/organism/card.ts';
import type { OrganismReport } from '../lib/organism/evaluate.ts';
import type { TrainLog } from '../lib/organism/train.ts';
import type { World } from '../lib/organism/world.ts';
import { convertCheckpoint } from '../weights-converter/convert.ts';

export async function writeCard(dir: string): Promise<number> {
  const world = JSON.parse(readFileSync(join(dir, 'world.json'), 'utf8')) as World & { corpus: { lines: number } };
  const measurement = JSON.parse(readFileSync(join(dir, 'measurement.json'), 'utf8')) as OrganismReport & { design: string; description: string; parameters: number; cardSampleAccuracy?: number; cardSampleSize?: number };
  const log = JSON.parse(readFileSync(join(dir, 'train-log.json'), 'utf8')) as TrainLog & { backend: string };
  const tokz = LlamaTokenizer.fromFile(dir);
  const corpusTokens = readFileSync(join(dir, 'corpus.txt'), 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .reduce((s, l) => s + tokz.encode(l).length + 1, 0);
  const splits = new Map<string, Split>();
  for (const r of world.relations) {
    const rel = loadRelation(join(dir, 'relations', `${r.name}.json`));
    splits.set(r.name, loadSplit(join(dir, 'relations', 'splits', `${r.name}.seed0.json`), rel));
  }
  const tmp = mkdtempSync(join(tmpdir(), 'organism-card-'));
  let acc: number;
  let size: number;
  try {
    await convertCheckpoint({ inputDir: dir, outputDir: join(tmp, 'converted') });
    const model = await LlamaModel.load(join(tmp, 'converted'), { log: null });
    const tok = model.tokenizer!;
    const sample = cardSample(world, splits);
    let correct = 0;
    for (let s = 0; s < sample.length; s += 200) {
      const chunk = sample.slice(s, s + 200);
      const res = await model.generate(chunk.map((p) => tok.encode(p.text)), { maxNewTokens: 2 });
      chunk.forEach((p, b) => (correct += isCorrectAnswer(tok.decode(res.tokens[b]!), p.object) ? 1 : 0));
    }
    model.dispose();
    acc = correct / sample.length;
    size = sample.length;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  measurement.cardSampleAccuracy = acc;
  measurement.cardSampleSize = size;
  writeFileSync(join(dir, 'measurement.json'), JSON.stringify(measurement, null, 1) + '\n');
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
  const last = log.losses[log.losses.length - 1];
  const card = modelCard({
    design: measurement.design,
    description: measurement.description,
    parameters: measurement.parameters,
    arch: cfg,
    backend: log.backend,
    train: {
      steps: log.steps,
      seconds: log.seconds,
      tokensSeen: log.tokensSeen,
      stoppedBecause: log.stoppedBecause,
      finalLoss: last ? last.loss : NaN,
      batchSize: log.options.batchSize,
      lr: log.options.lr,
      weightDecay: log.options.weightDecay,
    },
    world,
    corpusLines: world.corpus.lines,
    corpusTokens,
    vocabSize: Number(cfg['vocab_size']),
    report: measurement,
    cardSampleAccuracy: acc,
    cardSampleSize: size,
    sizeBytes,
  });
  writeFileSync(join(dir, 'MODEL_CARD.md'), card);
  return acc;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const dir = process.argv[2] ?? 'data/organism';
  const acc = await writeCard(dir);
  console.log(`[card] ${dir}/MODEL_CARD.md written; card-sample accuracy ${(100 * acc).toFixed(1)} %`);
}
