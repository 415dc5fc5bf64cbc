/**
 * Full-size dry run that fits this machine: a random checkpoint with Llama-2-7B's exact
 * dimensions (hidden 4096, FFN 11008, 32 heads, vocab 32000) — or, with `--shape gemma-7b`,
 * Gemma-7B's (hidden 3072, FFN 24576, 16 heads of 256, vocab 256000: its tied embedding / LM head
 * of 786 M parameters is the largest tensor) — but 2 layers, written as bf16
 * sharded safetensors; converted with `rsn convert --dtype float16` in a child process (its
 * peak RSS measured); loaded in the streamed plan; pooled FFN recording and a masked 2-token
 * generation for a batch of prompts. Prints one JSON object (wall times, peak RSS, the
 * planner's prediction vs the measured tensor peak).
 *
 *   npx tsx scripts/dry-run-7b.ts [--shape llama-2-7b|gemma-7b] [--dir .cache/dry-run-<shape>] [--batch 16] [--prompt-length 12] [--keep] [--logits-out FILE]
 *
 * --logits-out writes the last-position logits of the first two prompts (JSON), to compare
 * backends on the same checkpoint (e.g. RSN_BACKEND=webgpu vs wasm with --keep).
 */
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseScriptCommandLine } from '../lib/cli-args.ts';
import { LlamaModel } from '../lib/model/llama.ts';
import { StreamedWeights } from '../lib/model/weight-source.ts';
import { expectedTensors, parseLlamaConfig } from '../lib/model/config.ts';
import { formatGB } from '../lib/model/memory-plan.ts';
import { ablation, NeuronSpace, randomNeurons } from '../lib/method/neurons.ts';
import { recordSpec } from '../lib/model/record-spec.ts';
import { parseDecimalInteger } from '../lib/numbers.ts';

const root = resolve(new URL('..', import.meta.url).pathname);
const { values } = parseScriptCommandLine(process.argv.slice(2), { shape: { type: 'string', default: 'llama-2-7b' }, dir: { type: 'string' }, batch: { type: 'string', default: '16' }, 'prompt-length': { type: 'string', default: '12' }, keep: { type: 'boolean', default: false }, 'logits-out': { type: 'string' } });
/** The two full-size shapes, as their Hugging Face config.json files say, with 2 layers. */
const SHAPES: Record<string, Record<string, unknown>> = {
  'llama-2-7b': {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 2,
    num_attention_heads: 32, num_key_value_heads: 32, rms_norm_eps: 1e-5, rope_theta: 10000, vocab_size: 32000,
    max_position_embeddings: 4096, tie_word_embeddings: false, hidden_act: 'silu', bos_token_id: 1, eos_token_id: 2, pad_token_id: 0, torch_dtype: 'bfloat16',
  },
  'gemma-7b': {
    architectures: ['GemmaForCausalLM'], model_type: 'gemma', hidden_size: 3072, intermediate_size: 24576, num_hidden_layers: 2,
    num_attention_heads: 16, num_key_value_heads: 16, head_dim: 256, rms_norm_eps: 1e-6, rope_theta: 10000, vocab_size: 256000,
    max_position_embeddings: 8192, hidden_act: 'gelu', hidden_activation: 'gelu_pytorch_tanh', bos_token_id: 2, eos_token_id: 1, pad_token_id: 0, torch_dtype: 'bfloat16',
  },
};
const shape = values.shape!;
const config = SHAPES[shape];
if (!config) throw new Error(`--shape ${shape}: expected one of ${Object.keys(SHAPES).join(', ')}`);
const work = resolve(values.dir ?? join(root, '.cache', `dry-run-${shape}`));
const hf = join(work, 'hf');
const converted = join(work, 'converted');
const B = parseDecimalInteger(values.batch!, '--batch', { min: 1 });
const T = parseDecimalInteger(values['prompt-length']!, '--prompt-length', { min: 2 });
const parsed = parseLlamaConfig(config);
// Gemma stores its norm weights as offsets around 0 (it multiplies by 1 + w): 0 there is a plain norm.
const NORM_VALUE = parsed.normOffset === 1 ? 0 : 1;

/** Writes the checkpoint tensor by tensor (never more than one tensor in memory), bf16, in two shards. */
function writeRandomCheckpoint(): number {
  mkdirSync(hf, { recursive: true });
  writeFileSync(join(hf, 'config.json'), JSON.stringify(config, null, 2));
  const specs = expectedTensors(parsed);
  const shards = [specs.filter((s) => !s.name.startsWith('model.layers.1.') && s.name !== 'lm_head.weight'), specs.filter((s) => s.name.startsWith('model.layers.1.') || s.name === 'lm_head.weight')];
  const weightMap: Record<string, string> = {};
  let total = 0;
  let state = 0x12345678;
  shards.forEach((list, si) => {
    const file = `model-0000${si + 1}-of-00002.safetensors`;
    const header: Record<string, unknown> = {};
    let offset = 0;
    for (const s of list) {
      const bytes = s.shape.reduce((a, b) => a * b, 1) * 2;
      header[s.name] = { dtype: 'BF16', shape: s.shape, data_offsets: [offset, offset + bytes] };
      offset += bytes;
      weightMap[s.name] = file;
    }
    let json = JSON.stringify(header);
    json += ' '.repeat((8 - (json.length % 8)) % 8);
    const fd = openSync(join(hf, file), 'w');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    writeSync(fd, len);
    writeSync(fd, json);
    for (const s of list) {
      const n = s.shape.reduce((a, b) => a * b, 1);
      const out = new Uint16Array(n);
      const f = new Float32Array(1);
      const u = new Uint32Array(f.buffer);
      const norm = s.name.endsWith('norm.weight');
      for (let i = 0; i < n; i++) {
        // xorshift32: fast, and any value distribution does for a dry run; scale ~ 1/sqrt(fan-in).
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        f[0] = norm ? NORM_VALUE : ((state >>> 0) / 4294967296 - 0.5) * 0.03;
        out[i] = u[0]! >>> 16;
      }
      writeSync(fd, new Uint8Array(out.buffer));
      total += out.byteLength;
    }
    closeSync(fd);
  });
  writeFileSync(join(hf, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
  return total;
}

const result: Record<string, unknown> = { model: `${shape}-shaped, 2 layers (hidden ${parsed.hiddenSize}, FFN ${parsed.intermediateSize}, ${parsed.numHeads} heads of ${parsed.headDim}, vocab ${parsed.vocabSize}), random bf16`, batch: B, promptLength: T };
let t0 = performance.now();
if (!existsSync(join(hf, 'model.safetensors.index.json'))) result['checkpointBytes'] = writeRandomCheckpoint();
result['writeCheckpointSeconds'] = (performance.now() - t0) / 1000;

t0 = performance.now();
// A child process, so its peak RSS is the converter's alone (GNU time's "Maximum resident set size").
const timeOut = execFileSync('/usr/bin/env', ['bash', '-c', `command -v /usr/bin/time >/dev/null && /usr/bin/time -v node ${join(root, 'bin/rsn.js')} convert ${hf} ${converted} --dtype float16 --force --quiet 2>&1 || node ${join(root, 'bin/rsn.js')} convert ${hf} ${converted} --dtype float16 --force 2>&1`], { encoding: 'utf8', maxBuffer: 1 << 24 });
result['convertSeconds'] = (performance.now() - t0) / 1000;
const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(timeOut);
const reported = /peak RSS ([\d.]+ [KMG]iB)/.exec(timeOut);
result['convertPeakRss'] = rss ? `${(Number(rss[1]) / 1024).toFixed(0)} MiB` : reported?.[1] ?? 'unknown';
result['largestTensorBytes'] = { bf16: parsed.vocabSize * parsed.hiddenSize * 2, float32: parsed.vocabSize * parsed.hiddenSize * 4 };

t0 = performance.now();
const model = await LlamaModel.load(converted, { plan: 'streamed', log: (l) => process.stderr.write(l + '\n') });
result['backend'] = model.info.backend?.name;
result['loadSeconds'] = (performance.now() - t0) / 1000;
const bos = Number(config['bos_token_id']);
const prompts = Array.from({ length: B }, (_, b) => [bos, ...Array.from({ length: T - 1 - (b % 3) }, (_, t) => ((b * 131 + t * 977) % 31990) + 3)]);
const space = NeuronSpace.forModel(model.config, 'ffn');
const record = recordSpec(model.config, space.hookPoints(), 'token-mean');
t0 = performance.now();
const pooled = await model.measurePeak(() => model.forward(prompts, { logits: 'none', hooks: { record } }));
const pooledS = (performance.now() - t0) / 1000;
const pooledPred = model.predict({ batchSize: B, promptLength: T, logits: 'none' });
const mask = randomNeurons(space.poolIndices('ffn'), 3000, 0);
t0 = performance.now();
const gen = await model.measurePeak(() => model.generate(prompts, { maxNewTokens: 2, hooks: { interventions: space.interventions(ablation(mask)) } }));
const genS = (performance.now() - t0) / 1000;
const genPred = model.predict({ batchSize: B, promptLength: T, newTokens: 2, hookedFfnSitesPerLayer: space.groupByPoint(mask).size / 2 });
if (values['logits-out']) {
  const r = await model.forward(prompts.slice(0, 2), { logits: 'last' });
  const logits = Array.from(r.logits!.data);
  writeFileSync(values['logits-out'], JSON.stringify({ backend: model.info.backend?.name, logits }));
  result['lastLogits'] = { file: values['logits-out'], maxAbs: logits.reduce((m, x) => Math.max(m, Math.abs(x)), 0), allZero: logits.every((x) => x === 0) };
}
const loadStats = model.weights instanceof StreamedWeights ? model.weights.stats : null;
model.dispose();
Object.assign(result, {
  streamedLayerLoads: loadStats,
  pooledRecording: { seconds: pooledS, promptsPerSecond: B / pooledS, measuredPeak: formatGB(pooled.peakBytes), predictedPeak: formatGB(pooledPred.peakBytes), ratio: pooledPred.peakBytes / pooled.peakBytes, neurons: space.size },
  maskedGeneration: { seconds: genS, newTokens: 2, maskedNeurons: 3000, measuredPeak: formatGB(gen.peakBytes), predictedPeak: formatGB(genPred.peakBytes), ratio: genPred.peakBytes / gen.peakBytes, tokens: gen.result.tokens.slice(0, 2) },
  processPeakRss: `${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`,
});
if (!values.keep) rmSync(work, { recursive: true, force: true });
process.stdout.write(JSON.stringify(result, null, 2) + '\n');
