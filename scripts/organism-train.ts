/**
 * `npm run organism:train [-- options]`: build the fact world, train the model organism, save it
 * in Hugging Face layout, convert it with the project's converter and measure it.
 *
 *   --design NAME       architecture/world preset (see DESIGNS below; default: the shipped one)
 *   --out DIR           where the HF model goes (default data/organism)
 *   --run-dir DIR       checkpoint, logs (default /tmp/organism-runs/<design>); a checkpoint there is resumed
 *   --max-minutes N     training time budget (default 40)
 *   --max-steps N       step budget
 *   --no-measure        skip the measurement after training
 *   --measure-only      only measure the model already in --out
 *   --random-seeds N    random-baseline seeds in the measurement (default 10)
 *   --batch-size N      sequences per step (default 128)
 *   --cool-down-steps N with --max-steps: the learning rate falls linearly to 0 over the last N
 *                       steps (the run then always reaches the step budget: no plateau stop)
 *
 * Deterministic for a given design and seed on one backend (wasm by default; RSN_BACKEND
 * overrides). The measurement (scripts/organism-card.ts, through the method's Pipeline) is
 * written to <out>/measurement.json and <out>/MODEL_CARD.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initBackend } from '../lib/backend.ts';
import { parseScriptCommandLine } from '../lib/cli-args.ts';
import { parseDecimalInteger } from '../lib/numbers.ts';
import { loadRelations } from '../lib/data/relation.ts';
import { LlamaTokenizer } from '../lib/tokenizer.ts';
import { buildCorpus, buildTokenizer, encodeCorpus, organismConfig, probePrompts, writeHfModel, writeRelations, type ArchChoice } from '../lib/organism/build.ts';
import { parameterCount } from '../lib/model/config.ts';
import { DEFAULT_TRAIN_OPTIONS, train, type TrainOptions } from '../lib/organism/train.ts';
import { buildWorld, type WorldOptions } from '../lib/organism/world.ts';
import { writeCard } from './organism-card.ts';

interface Design {
  description: string;
  arch: ArchChoice;
  world: Partial<WorldOptions>;
  train: Partial<TrainOptions>;
  vocabSize: number;
}

const DESIGNS: Record<string, Design> = {
  'h64-untied': {
    description: 'hidden 64, FFN 192, 4 layers, untied embeddings',
    arch: { hiddenSize: 64, intermediateSize: 192, numLayers: 4, numHeads: 4, tieWordEmbeddings: false },
    world: {},
    train: {},
    vocabSize: 1024,
  },
  'h64-tied': {
    description: 'hidden 64, FFN 192, 4 layers, tied embeddings',
    arch: { hiddenSize: 64, intermediateSize: 192, numLayers: 4, numHeads: 4, tieWordEmbeddings: true },
    world: {},
    train: {},
    vocabSize: 1024,
  },
  'h96-tied': {
    description: 'hidden 96, FFN 256, 4 layers, tied embeddings',
    arch: { hiddenSize: 96, intermediateSize: 256, numLayers: 4, numHeads: 4, tieWordEmbeddings: true },
    world: {},
    train: {},
    vocabSize: 1024,
  },
};
const SHIPPED_DESIGN = 'h96-tied';

const { values: args } = parseScriptCommandLine(process.argv.slice(2), {
    design: { type: 'string', default: SHIPPED_DESIGN },
    out: { type: 'string' },
    'run-dir': { type: 'string' },
    'max-minutes': { type: 'string' },
    'max-steps': { type: 'string' },
    'no-measure': { type: 'boolean', default: false },
    'measure-only': { type: 'boolean', default: false },
    'random-seeds': { type: 'string', default: '10' },
    'batch-size': { type: 'string' },
    'cool-down-steps': { type: 'string' },
});

const designName = args.design!;
const design = DESIGNS[designName];
if (!design) {
  console.error(`unknown design ${designName}; known: ${Object.keys(DESIGNS).join(', ')}`);
  process.exit(2);
}
const out = args.out ?? 'data/organism';
const runDir = args['run-dir'] ?? `/tmp/organism-runs/${designName}`;
mkdirSync(runDir, { recursive: true });
const print = (l: string) => console.log(l);

const backend = await initBackend({ log: print });
const trainOpts: TrainOptions = {
  ...DEFAULT_TRAIN_OPTIONS,
  ...design.train,
  ...(args['max-minutes'] ? { maxMinutes: Number(args['max-minutes']) } : {}),
  ...(args['max-steps'] ? { maxSteps: Number(args['max-steps']) } : {}),
  ...(args['batch-size'] ? { batchSize: Number(args['batch-size']) } : {}),
};
if (args['cool-down-steps'] !== undefined) {
  // A cool-down ends at the step budget, so the run must have one and must reach it: the plateau rule is off.
  if (!args['max-steps']) {
    console.error('--cool-down-steps needs --max-steps: the learning rate falls to 0 at the step budget');
    process.exit(2);
  }
  try {
    trainOpts.coolDownSteps = parseDecimalInteger(args['cool-down-steps'], '--cool-down-steps', { min: 1, max: trainOpts.maxSteps });
  } catch (e) {
    console.error((e as Error).message);
    process.exit(2);
  }
  trainOpts.minSteps = trainOpts.maxSteps;
  print(`[train] learning rate falls linearly to 0 over the last ${trainOpts.coolDownSteps} of ${trainOpts.maxSteps} steps; no plateau stop`);
}

const t0 = Date.now();
const world = buildWorld(loadRelations('data/relations'), design.world);
const corpus = buildCorpus(world);
print(`[world] ${world.facts.length} facts, ${corpus.length} corpus lines (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
const relDir = join(out, 'relations');
const { splits } = writeRelations(world, relDir);
let tok: LlamaTokenizer;
if (args['measure-only']) tok = LlamaTokenizer.fromFile(out);
else tok = buildTokenizer(corpus, design.vocabSize, out);
const config = organismConfig(design.arch, tok);
print(`[model] ${design.description}: ${parameterCount(config)} parameters, vocab ${config.vocabSize}`);

if (!args['measure-only']) {
  const sequences = encodeCorpus(corpus, tok);
  const tokens = sequences.reduce((s, x) => s + x.length, 0);
  print(`[data] ${sequences.length} sequences, ${tokens} tokens per epoch; backend ${backend.name}`);
  const probe = probePrompts(world, splits, tok, 40, trainOpts.seed);
  const logPath = join(runDir, 'train-log.json');
  const result = await train(config, sequences, tok, probe, trainOpts, {
    checkpointPath: join(runDir, 'checkpoint.bin'),
    print,
    onLog: (log) => writeFileSync(logPath, JSON.stringify(log, null, 1)),
  });
  writeFileSync(logPath, JSON.stringify(result.log, null, 1));
  writeHfModel(out, config, result.weights, world, corpus, { design: designName, backend: backend.name, steps: String(result.log.steps) });
  writeFileSync(join(out, 'train-log.json'), JSON.stringify({ design: designName, description: design.description, backend: backend.name, ...result.log }, null, 1) + '\n');
  print(`[save] ${out}: config.json, model.safetensors, tokenizer.json, tokenizer_config.json, world.json, corpus.txt, relations/`);
}

if (!args['no-measure']) {
  const m = await writeCard(out, { randomSeeds: Number(args['random-seeds']), log: (l) => print(`[measure] ${l}`) });
  print(`[card] ${out}/MODEL_CARD.md and measurement.json; at k = ${m.primaryK}: ${m.passingEva} / ${m.relations.length} relations pass on P^eva`);
}
print(`[done] ${((Date.now() - t0) / 60000).toFixed(1)} min`);
