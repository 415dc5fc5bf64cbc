/**
 * Hostile and careless input to the lab's caches and parameters: every cache entry is keyed by
 * everything that changes its result, round-trips exactly, and is recomputed (with its file
 * named) when damaged; the activation store survives a real SIGKILL and any damage to a chunk
 * with a ranking identical to an uninterrupted run; notebook parameters out of range stop with
 * an error naming the parameter. Runs on the bundled organism, converted by the real converter.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { convertCheckpoint } from '../weights-converter/convert.ts';
import { ActivationStore, type StoreMeta } from '../lib/method/activation-store.ts';
import { Pipeline, type PipelineOptions } from '../lib/runs/pipeline.ts';
import { intraRelation } from '../lib/method/experiments.ts';
import type { Ranking } from '../lib/method/ranking.ts';
import { canonicalJson } from '../lib/data/io.ts';
import { decodeExact, encodeExact } from '../lib/runs/stage-cache.ts';
import { checkParam, currentEffective, params } from '../lib/notebook/params.ts';
import { resolveK } from '../lib/notebook/k.ts';
import { ConfigError } from '../lib/errors.ts';

const organism = new URL('../data/organism', import.meta.url).pathname;
const child = new URL('./helpers/pipeline-child.ts', import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), 'rsn-hostile-cache-'));
after(() => rmSync(work, { recursive: true, force: true }));

const RELATIONS = ['company_ceo', 'person_father'];
const BATCH = 4;

/** A result without its provenance's creation time (the only part a recomputation changes). */
function timeless<T>(x: T): unknown {
  return JSON.parse(JSON.stringify(encodeExact(x)).replace(/"createdAt":"[^"]*"/g, '"createdAt":""'));
}

/** The entry's text with its first accuracy changed to another valid number. */
function editedAccuracy(text: string): string {
  const edited = text.replace(/"accuracy":(\d(?:\.\d+)?)/, (_, v: string) => `"accuracy":${Number(v) > 0.5 ? Number(v) - 0.25 : Number(v) + 0.25}`);
  assert.notEqual(edited, text, 'the entry holds an accuracy');
  return edited;
}

/** Flip the lowest mantissa bit of the first value of the first float32 tensor of a safetensors file (still a finite number). */
function nudgeFirstWeight(file: string): string {
  const bytes = readFileSync(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { dtype?: string; data_offsets?: [number, number] }>;
  const [name, entry] = Object.entries(header).find(([n, e]) => n !== '__metadata__' && e.dtype === 'F32')!;
  bytes[8 + headerLength + entry.data_offsets![0]]! ^= 0x01;
  writeFileSync(file, bytes);
  return name;
}

function sameRanking(a: Ranking, b: Ranking): boolean {
  return a.relations.length === b.relations.length && a.relations.every((r, i) => r.name === b.relations[i]!.name && Buffer.from(r.ap.buffer).equals(Buffer.from(b.relations[i]!.ap.buffer)));
}

describe('exact value encoding of cache entries', () => {
  test('NaN, ±Infinity, -0, undefined and typed arrays come back exactly; JSON alone would not', () => {
    const value = { acc: NaN, drop: [Infinity, -Infinity, -0, 0.1 + 0.2], missing: undefined, list: [1, undefined, null], ap: Float32Array.from([NaN, 1.5, -0]), idx: Int32Array.from([3, -7]) };
    const back = decodeExact(JSON.parse(JSON.stringify(encodeExact(value))));
    assert.ok(isDeepStrictEqual(back, value), `round trip changed the value: ${JSON.stringify(encodeExact(back))}`);
    assert.ok(!isDeepStrictEqual(JSON.parse(JSON.stringify(value)), value), 'plain JSON would have been enough: the test shows nothing');
  });

  test('values JSON would silently change are refused', () => {
    assert.throws(() => encodeExact({ m: new Map() }), /value\.m: a Map cannot be cached/);
    assert.throws(() => encodeExact({ d: new Date(0) }), /value\.d: a Date cannot be cached/);
    assert.throws(() => encodeExact({ $number: 1 }), /reserved/);
  });

  test('canonical keys do not depend on property order', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: 2, c: [3, { f: 1, e: 2 }] } }), canonicalJson({ a: { c: [3, { e: 2, f: 1 }], d: 2 }, b: 1 }));
  });
});

const modelDir = join(work, 'model');
const dataDir = join(organism, 'relations');
let reference: Ranking;

function options(cacheDir: string, extra: Partial<PipelineOptions> = {}, log?: string[]): PipelineOptions {
  return { modelDir, dataDir, cacheDir, relations: RELATIONS, run: { batchSize: BATCH, quiet: true }, log: log ? (l) => log.push(l) : undefined, ...extra };
}

// One converted organism and one uninterrupted reference ranking for every test below.
before(async () => {
  await convertCheckpoint({ inputDir: organism, outputDir: modelDir, dtype: 'float32' });
  const p = await Pipeline.open(options(join(work, 'cache-reference')));
  reference = await p.ranking();
  p.dispose();
});

describe('pipeline caches on the organism', () => {
  const base = options;

  test('every stage is keyed by includeBos, batch size and its own options (intra through its evaluated jobs); a cached stage equals a fresh one', async () => {
    const cacheDir = join(work, 'cache-keys');
    const log: string[] = [];
    const stageLines = (name: string) => log.filter((l) => l.startsWith(`[rsn] ${name}:`));
    const p = await Pipeline.open(base(cacheDir, {}, log));
    const intraBos = await p.run(intraRelation, { k: 20, randomSeeds: 2, sets: ['eva'] });
    p.dispose();
    assert.match(stageLines('evaluate').at(-1)!, /computed/);

    // includeBos: false reaches the ranking and everything after it.
    log.length = 0;
    const q = await Pipeline.open(base(cacheDir, { includeBos: false }, log));
    const rankingNoBos = await q.ranking();
    const intraNoBos = await q.run(intraRelation, { k: 20, randomSeeds: 2, sets: ['eva'] });
    q.dispose();
    assert.match(stageLines('known').at(-1)!, /cached/, 'known facts do not depend on includeBos');
    assert.match(stageLines('ranking').at(-1)!, /computed/);
    assert.match(stageLines('evaluate').at(-1)!, /computed/, 'intra after a ranking with another includeBos must not be served from the cache');
    assert.ok(!sameRanking(rankingNoBos, reference), 'excluding BOS changes the ranking');
    assert.equal(rankingNoBos.includeBos, false);

    // The batch size reaches every stage (padding moves pooled activations in the last bits).
    log.length = 0;
    const r = await Pipeline.open(base(cacheDir, { run: { batchSize: BATCH + 1, quiet: true } }, log));
    await r.ranking();
    r.dispose();
    assert.match(stageLines('known').at(-1)!, /computed/);
    assert.match(stageLines('ranking').at(-1)!, /computed/);

    // Same settings again: cached, and equal to what was computed.
    log.length = 0;
    const s = await Pipeline.open(base(cacheDir, {}, log));
    const again = await s.run(intraRelation, { k: 20, randomSeeds: 2, sets: ['eva'] });
    const otherK = await s.run(intraRelation, { k: 21, randomSeeds: 2, sets: ['eva'] });
    s.dispose();
    assert.match(stageLines('evaluate')[0]!, /cached/);
    assert.match(stageLines('evaluate')[1]!, /computed/, 'another k is another entry');
    assert.ok(isDeepStrictEqual(timeless(again), timeless(intraBos)), 'the cached intra result differs from the fresh one');
    assert.ok(!isDeepStrictEqual(timeless(intraNoBos), timeless(intraBos)) || !isDeepStrictEqual(timeless(otherK), timeless(intraBos)));
  });

  test('NaN in a stage result survives the cache', async () => {
    const p = await Pipeline.open(base(join(work, 'cache-keys')));
    const compute = async () => ({ accuracy: NaN, drops: [NaN, Infinity, -0], perRelation: Float32Array.from([NaN, 0.25]) });
    const fresh = await p.stage('nan-check', { n: 1 }, compute);
    const cached = await p.stage('nan-check', { n: 1 }, () => Promise.reject(new Error('must come from the cache')));
    p.dispose();
    assert.ok(isDeepStrictEqual(cached, fresh));
  });

  test('a corrupt, truncated or foreign cache entry is reported by file name and recomputed, never used', async () => {
    const log: string[] = [];
    const p = await Pipeline.open(base(join(work, 'cache-keys'), {}, log));
    const fileOf = async (k: number) => {
      log.length = 0;
      const result = await p.run(intraRelation, { k, randomSeeds: 2, sets: ['eva'] });
      const file = log.map((l) => /^\[rsn\] evaluate: (?:cached|computed in [\d.]+ s) \((.*)\)$/.exec(l)?.[1]).find(Boolean)!;
      return { file, result };
    };
    const { file: target, result: original } = await fileOf(20);
    const { file: other } = await fileOf(21);
    const bytes = readFileSync(target);
    const cases: [string, () => void][] = [
      ['garbage', () => writeFileSync(target, 'not json {')],
      ['truncated', () => writeFileSync(target, bytes.subarray(0, bytes.length >> 1))],
      ['empty', () => writeFileSync(target, '')],
      ['another entry copied over it', () => writeFileSync(target, readFileSync(other))],
      ['wrong schema', () => writeFileSync(target, JSON.stringify({ schema: 'x' }))],
      ['an accuracy edited by hand', () => writeFileSync(target, editedAccuracy(bytes.toString('utf8')))],
    ];
    for (const [name, damage] of cases) {
      damage();
      const { result } = await fileOf(20);
      const line = log.find((l) => l.includes('unusable'));
      assert.ok(line?.includes(target), `${name}: no report naming ${target}: ${log.join(' | ')}`);
      assert.ok(log.some((l) => /evaluate: computed/.test(l)), `${name}: not recomputed`);
      assert.ok(isDeepStrictEqual(timeless(result), timeless(original)), `${name}: the recomputed result differs from the original`);
    }
    p.dispose();
  });

  test('a checkpoint re-converted into the same folder with one weight changed gets a new identity: nothing of the old weights is reused', async () => {
    const source = join(work, 'organism-copy');
    cpSync(organism, source, { recursive: true });
    const out = join(work, 'model-reconverted');
    await convertCheckpoint({ inputDir: source, outputDir: out, dtype: 'float32' });
    const log: string[] = [];
    const opts = { ...options(join(work, 'cache-reconverted'), {}, log), modelDir: out };
    const first = await Pipeline.open(opts);
    await first.known();
    const firstDir = first.dir;
    first.dispose();
    const tensor = nudgeFirstWeight(join(source, 'model.safetensors'));
    await convertCheckpoint({ inputDir: source, outputDir: out, dtype: 'float32', force: true });
    log.length = 0;
    const second = await Pipeline.open(opts);
    await second.known();
    second.dispose();
    assert.notEqual(second.dir, firstDir, `one bit of ${tensor} changed: another model identity, another cache folder`);
    assert.ok(log.some((l) => /known: computed/.test(l)) && !log.some((l) => /cached/.test(l)), log.join(' | '));
  });

  test('a damaged ranking file is detected by its checksum and the ranking recomputed from the kept store', async () => {
    const cacheDir = join(work, 'cache-reference');
    const log: string[] = [];
    const p = await Pipeline.open(base(cacheDir, {}, log));
    const store = p.activations();
    assert.ok(store?.complete, 'the activation store is kept after ranking');
    const rankingDir = p.rankingDir();
    const apFile = join(rankingDir, `${RELATIONS[0]}.ap.f32`);
    const bytes = readFileSync(apFile);
    bytes[100] ^= 0x40;
    writeFileSync(apFile, bytes);
    const ranking = await p.ranking();
    assert.ok(log.some((l) => l.includes('unusable') && l.includes(apFile)), log.join(' | '));
    assert.ok(sameRanking(ranking, reference));
    assert.ok(!log.some((l) => l.includes('activations:')), 'the intact store was reused, not collected again');
    assert.equal(p.removeActivations(), true);
    assert.equal(p.activations(), null);
    assert.equal(p.removeActivations(), false);
    p.dispose();
  });
});

describe('activation store: kill, damage, resume', () => {
  const opts = (cacheDir: string, log?: string[]) => options(cacheDir, {}, log);

  /** Start the child, SIGKILL it once the store holds at least `rows` prompts; the store dir. */
  async function killedRun(cacheDir: string, rows: number): Promise<string> {
    const p = await Pipeline.open(opts(cacheDir));
    const storeDir = p.activationsDir();
    p.dispose();
    const proc = spawn(process.execPath, ['--import', 'tsx', child, modelDir, dataDir, cacheDir, String(BATCH), RELATIONS.join(',')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((res) => proc.on('exit', (code) => res(code)));
    for (;;) {
      const metaFile = join(storeDir, 'meta.json');
      let completed = 0;
      try {
        completed = (JSON.parse(readFileSync(metaFile, 'utf8')) as StoreMeta).completed;
      } catch {
        // not written yet, or being renamed into place
      }
      if (completed >= rows) break;
      if (proc.exitCode !== null) throw new Error(`the child finished before it could be killed (exit ${proc.exitCode}): ${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    proc.kill('SIGKILL');
    await exited;
    const meta = JSON.parse(readFileSync(join(storeDir, 'meta.json'), 'utf8')) as StoreMeta;
    assert.ok(meta.completed < meta.promptEnd - meta.promptStart, 'the kill landed after the collection finished');
    assert.ok(!existsSync(join(p.dir, readdirSync(p.dir).find((f) => f.startsWith('ranking-')) ?? 'none')), 'no ranking was written by the killed run');
    return storeDir;
  }

  const damages: [string, (chunk: string) => void][] = [
    ['none (plain kill)', () => {}],
    ['chunk truncated', (c) => truncateSync(c, Math.floor(readFileSync(c).length / 3))],
    ['chunk emptied', (c) => truncateSync(c, 0)],
    ['chunk deleted', (c) => unlinkSync(c)],
    ['chunk bytes altered', (c) => {
      const b = readFileSync(c);
      b[b.length >> 2] ^= 0xff;
      writeFileSync(c, b);
    }],
  ];

  for (const [name, damage] of damages) {
    test(`SIGKILL mid-collection, damage: ${name} → resume gives the uninterrupted ranking`, async () => {
      const cacheDir = join(work, `kill-${name.replace(/\W+/g, '-')}`);
      const storeDir = await killedRun(cacheDir, 3 * BATCH);
      const meta = JSON.parse(readFileSync(join(storeDir, 'meta.json'), 'utf8')) as StoreMeta;
      const chunk = join(storeDir, meta.chunks[0]!.file);
      damage(chunk);
      if (name !== 'none (plain kill)') assert.throws(() => ActivationStore.open(storeDir), (e: Error) => e.message.includes(chunk), 'a damaged store opens for reading');
      const log: string[] = [];
      const p = await Pipeline.open(opts(cacheDir, log));
      const ranking = await p.ranking();
      p.dispose();
      assert.ok(sameRanking(ranking, reference), `${name}: the resumed ranking differs from the uninterrupted one`);
      if (name !== 'none (plain kill)') assert.ok(log.some((l) => l.includes(chunk)), `${name}: the damage was not reported: ${log.join(' | ')}`);
      assert.ok(ActivationStore.open(storeDir).complete, 'the store is kept, complete and verifiable');
    });
  }
});

describe('the activation store\'s meta.json', () => {
  test('a field edited by hand (includeBos, a count) is refused on open, naming meta.json; the pipeline reports it and collects again to the same ranking', async () => {
    const cacheDir = join(work, 'meta-edited');
    const first = await Pipeline.open(options(cacheDir));
    await first.ranking();
    const storeDir = first.activationsDir();
    const rankingDir = first.rankingDir();
    first.dispose();
    const file = join(storeDir, 'meta.json');
    for (const edit of [(m: StoreMeta) => void (m.includeBos = !m.includeBos), (m: StoreMeta) => void (m.batchSize += 1)]) {
      const m = JSON.parse(readFileSync(file, 'utf8')) as StoreMeta;
      edit(m);
      writeFileSync(file, JSON.stringify(m, null, 1));
      assert.throws(() => ActivationStore.open(storeDir), (e: Error) => e.message === `${file}: its content does not match its checksum (edited or damaged after it was written)`);
    }
    // The ranking is recomputed from a fresh collection (its folder removed first, so the store is what gets used).
    rmSync(rankingDir, { recursive: true, force: true });
    const log: string[] = [];
    const again = await Pipeline.open(options(cacheDir, {}, log));
    const ranking = await again.ranking();
    again.dispose();
    assert.ok(log.some((l) => l.includes(file) && l.includes('collecting again')), log.join(' | '));
    assert.ok(sameRanking(ranking, reference));
  });
});

describe('notebook parameters', () => {
  const defaults = { k: 3000, kPercent: 0, kMaxPercent: 3, seed: 0, randomSeeds: 10, batchSize: 64, ks: [0, 10, 50] };
  const cases: [string, Record<string, string>, RegExp][] = [
    ['negative k', { RSN_K: '-5' }, /parameter k = -5 \(from RSN_K\): expected an integer ≥ 1/],
    ['zero k', { RSN_K: '0' }, /parameter k = 0 .*≥ 1/],
    ['fractional k', { RSN_K: '2.5' }, /parameter k = 2\.5/],
    ['hex k', { RSN_K: '0x10' }, /RSN_K = "0x10": expected a decimal number/],
    ['exponent k', { RSN_K: '1e2' }, /RSN_K = "1e2"/],
    ['k-percent over 100', { RSN_K_PERCENT: '200' }, /parameter kPercent = 200 .*from 0 to 100/],
    ['negative k-percent', { RSN_K_PERCENT: '-1' }, /parameter kPercent = -1/],
    ['zero k cap', { RSN_K_MAX_PERCENT: '0' }, /parameter kMaxPercent = 0/],
    ['negative seed', { RSN_SEED: '-1' }, /parameter seed = -1/],
    ['zero random seeds', { RSN_RANDOM_SEEDS: '0' }, /parameter randomSeeds = 0/],
    ['zero batch', { RSN_BATCH_SIZE: '0' }, /parameter batchSize = 0/],
    ['NaN batch', { RSN_BATCH_SIZE: 'NaN' }, /RSN_BATCH_SIZE = "NaN"/],
    ['negative k in the sweep', { RSN_KS: '0,-10' }, /parameter ks = -10/],
  ];
  for (const [name, env, message] of cases) {
    test(`${name} is refused naming the parameter`, () => {
      assert.throws(() => params(defaults, { env, quiet: true }), (e: Error) => e instanceof ConfigError && message.test(e.message), `${name}: ${JSON.stringify(env)}`);
    });
  }

  test('a bad default is refused too (validation happens once, for every source)', () => {
    assert.throws(() => params({ ...defaults, k: -1 }, { env: {}, quiet: true }), /parameter k = -1: expected/);
    assert.throws(() => checkParam('batchSize', 1.5), /parameter batchSize = 1\.5/);
  });

  test('k is resolved once and the value used is recorded next to the requested one', () => {
    const P = params(defaults, { env: {}, quiet: true });
    const lines: string[] = [];
    const r = resolveK(P, 2432, { log: (l) => lines.push(l) });
    assert.equal(r.k, 72); // floor(3 % of 2432)
    assert.equal(r.how, '3000 capped at 3 % of the pool');
    assert.deepEqual(currentEffective()['k'], { value: 72, how: '3000 capped at 3 % of the pool' });
    assert.match(lines[0]!, /^k = 72 \(3000 capped/);
    assert.equal(resolveK({ ...P, kPercent: 0.36 }, 835584, { quiet: true }).k, 3008);
    assert.equal(resolveK({ ...P, k: 50 }, 2432, { quiet: true }).how, 'as set');
    assert.throws(() => resolveK({ ...P, kPercent: 0.001 }, 2432, { quiet: true }), /kPercent = 0\.001: .* less than one neuron/);
    assert.throws(() => resolveK({ ...P, kMaxPercent: 0.01 }, 2432, { quiet: true }), /kMaxPercent = 0\.01/);
  });
});
