/**
 * saveRanking / loadRanking (lib/method/ranking.ts): a hand-built ranking survives the round
 * trip bit for bit, the CSV/JSON listings are in the order worked out by hand, and every kind of
 * damage to a saved ranking is refused with an error that names the file and the problem.
 *
 * Run: node --import tsx --test test/ranking-io.test.ts
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, cpSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointError } from '../lib/errors.ts';
import { NeuronSpace } from '../lib/method/neurons.ts';
import { loadRanking, RANKING_SCHEMA, saveRanking, topNeurons, type Ranking } from '../lib/method/ranking.ts';
import { seal } from '../lib/data/sealed-json.ts';
import type { Provenance } from '../lib/method/identity.ts';

const work = mkdtempSync(join(tmpdir(), 'rsn-ranking-io-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** 2 layers × (gate 5, up 5, down 3) = 26 neurons; layer 1 starts at 13. */
const space = new NeuronSpace(2, ['mlp.gate', 'mlp.up', 'mlp.down'], (s) => ({ 'mlp.gate': 5, 'mlp.up': 5, 'mlp.down': 3 })[s as 'mlp.gate']);

const provenance: Provenance = {
  model: { name: 'hand', dir: '/nowhere', sha256: 'ab'.repeat(32), storageDtype: 'float32' },
  dataHash: 'cd'.repeat(32),
  seed: 7,
  backend: 'cpu',
  version: 'test',
  createdAt: '2026-01-01T00:00:00.000Z',
  note: 'extra fields survive',
};

function handRanking(): Ranking {
  // alpha: AP 0.1 + i/100 except four neurons set high; values like 0.1 are not exact in
  // float32, so a lossy round trip would show.
  const alpha = Float32Array.from({ length: space.size }, (_, i) => 0.1 + i / 100);
  alpha[3] = 0.97; // layer 0 gate[3]
  alpha[20] = 0.95; // layer 1 up[2]
  alpha[12] = 0.95; // layer 0 down[2]: ties with 20; the lower index ranks first
  alpha[0] = 0.9; // layer 0 gate[0]
  // beta: all equal but one: ranks follow the index.
  const beta = new Float32Array(space.size).fill(0.2);
  beta[25] = 1 / 3;
  return {
    schema: RANKING_SCHEMA,
    provenance,
    space,
    includeBos: false,
    negativeRatio: 4,
    relations: [
      { name: 'alpha', numPositives: 11, numNegatives: 44, ap: alpha },
      { name: 'beta', numPositives: 3, numNegatives: 9, ap: beta },
    ],
  };
}

function bits(a: Float32Array): number[] {
  return [...new Uint32Array(a.buffer, a.byteOffset, a.length)];
}

describe('saveRanking → loadRanking', () => {
  const dir = join(work, 'saved');
  const original = handRanking();
  saveRanking(original, dir, 6);

  test('round trip: every field equal, AP arrays bit-identical, same top neurons', () => {
    const loaded = loadRanking(dir);
    assert.equal(loaded.schema, RANKING_SCHEMA);
    assert.deepEqual(loaded.provenance, provenance);
    assert.deepEqual(loaded.space.describe(), { numLayers: 2, sites: ['mlp.gate', 'mlp.up', 'mlp.down'], widths: { 'mlp.gate': 5, 'mlp.up': 5, 'mlp.down': 3 }, size: 26 });
    assert.deepEqual(loaded.space.blocks, space.blocks);
    assert.equal(loaded.includeBos, false);
    assert.equal(loaded.negativeRatio, 4);
    assert.deepEqual(loaded.relations.map((r) => [r.name, r.numPositives, r.numNegatives]), [['alpha', 11, 44], ['beta', 3, 9]]);
    loaded.relations.forEach((r, i) => {
      assert.ok(r.ap instanceof Float32Array);
      assert.deepEqual(bits(r.ap), bits(original.relations[i]!.ap));
    });
    // Ranks by (−AP, index), worked out by hand from the values above.
    assert.deepEqual([...topNeurons(loaded, 'alpha', 5)], [3, 12, 20, 0, 25]);
    assert.deepEqual([...topNeurons(loaded, 'beta', 4)], [25, 0, 1, 2]);
    assert.deepEqual([...topNeurons(loaded, 'alpha', 2, 'down')], [12, 25]);
  });

  test('the CSV and JSON listings hold the top csvTop neurons in rank order, with layer/site/unit', () => {
    const csv = readFileSync(join(dir, 'alpha.csv'), 'utf8').trim().split('\n');
    assert.equal(csv.length, 1 + 6);
    assert.equal(csv[0], 'rank,index,layer,site,unit,ap');
    assert.deepEqual(csv.slice(1).map((l) => l.split(',').slice(0, 5).join(',')), [
      '1,3,0,mlp.gate,3',
      '2,12,0,mlp.down,2',
      '3,20,1,mlp.up,2',
      '4,0,0,mlp.gate,0',
      '5,25,1,mlp.down,2',
      '6,24,1,mlp.down,1',
    ]);
    assert.ok(Math.abs(Number(csv[1]!.split(',')[5]) - 0.97) < 1e-7);
    const json = JSON.parse(readFileSync(join(dir, 'beta.json'), 'utf8')) as { relation: string; numPositives: number; ranked: { rank: number; index: number; layer: number; site: string; unit: number; ap: number }[] };
    assert.equal(json.relation, 'beta');
    assert.equal(json.numPositives, 3);
    assert.deepEqual(json.ranked.map((x) => x.index), [25, 0, 1, 2, 3, 4]);
    assert.deepEqual(json.ranked[0], { rank: 1, index: 25, layer: 1, site: 'mlp.down', unit: 2, ap: 0.333333343 });
  });

  test('saving again over an existing ranking replaces it', () => {
    const d2 = join(work, 'resaved');
    saveRanking(handRanking(), d2);
    const other = handRanking();
    other.relations = [{ name: 'gamma', numPositives: 1, numNegatives: 4, ap: new Float32Array(space.size).fill(0.5) }];
    saveRanking(other, d2);
    assert.deepEqual(loadRanking(d2).relations.map((r) => r.name), ['gamma']);
  });
});

describe('loadRanking refuses damaged rankings, naming the file and the problem', () => {
  const good = join(work, 'good');
  saveRanking(handRanking(), good);
  let n = 0;
  /** A fresh copy of the good ranking, damaged by `damage`. */
  const damaged = (damage: (dir: string) => void): string => {
    const d = join(work, `damaged-${n++}`);
    cpSync(good, d, { recursive: true });
    damage(d);
    return d;
  };
  /** Edit ranking.json and seal it again: these cases test the checks behind its checksum (which has its own case). */
  const editMeta = (d: string, edit: (m: Record<string, unknown>) => void, opts: { reseal?: boolean } = {}) => {
    const m = JSON.parse(readFileSync(join(d, 'ranking.json'), 'utf8')) as Record<string, unknown>;
    edit(m);
    writeFileSync(join(d, 'ranking.json'), JSON.stringify(opts.reseal === false ? m : seal(m)));
  };
  const refuses = (d: string, message: RegExp) =>
    assert.throws(() => loadRanking(d), (e: unknown) => {
      assert.ok(e instanceof CheckpointError, `expected a CheckpointError, got ${String(e)}`);
      assert.match(e.message, message);
      return true;
    });

  test('the undamaged copy loads (so the failures below come from the damage)', () => {
    assert.equal(loadRanking(damaged(() => {})).relations.length, 2);
  });
  test('no ranking.json', () => refuses(damaged((d) => unlinkSync(join(d, 'ranking.json'))), /no ranking\.json; not a saved ranking/));
  test('ranking.json cut short', () =>
    refuses(damaged((d) => writeFileSync(join(d, 'ranking.json'), readFileSync(join(d, 'ranking.json'), 'utf8').slice(0, 40))), /ranking\.json: not a readable ranking/));
  test('a count edited by hand (not sealed again)', () =>
    refuses(damaged((d) => editMeta(d, (m) => ((m['relations'] as { numPositives: number }[])[0]!.numPositives += 1), { reseal: false })), /ranking\.json: its content does not match its checksum/));
  test('another schema', () => refuses(damaged((d) => editMeta(d, (m) => (m['schema'] = 'rsn-ranking/0'))), /field "schema" is "rsn-ranking\/0", expected "rsn-ranking\/1"/));
  test('relations not a list', () => refuses(damaged((d) => editMeta(d, (m) => (m['relations'] = {}))), /field "relations" must be an array/));
  test('a space without sites', () => refuses(damaged((d) => editMeta(d, (m) => ((m['space'] as { sites: string[] }).sites = []))), /field "space" is not a neuron space/));
  test('a relation entry without its file name', () =>
    refuses(damaged((d) => editMeta(d, (m) => delete (m['relations'] as Record<string, unknown>[])[1]!['file'])), /field "relations\[1\]" needs string name, file and sha256/));
  test('an AP file deleted', () => refuses(damaged((d) => unlinkSync(join(d, 'beta.ap.f32'))), /beta\.ap\.f32: missing \(listed in .*ranking\.json\)/));
  test('an AP file truncated', () =>
    refuses(damaged((d) => writeFileSync(join(d, 'alpha.ap.f32'), readFileSync(join(d, 'alpha.ap.f32')).subarray(0, 100))), /alpha\.ap\.f32: 100 bytes, expected 104/));
  test('one AP value changed (same size)', () =>
    refuses(
      damaged((d) => {
        const b = readFileSync(join(d, 'alpha.ap.f32'));
        b[13] = b[13]! ^ 0x01;
        writeFileSync(join(d, 'alpha.ap.f32'), b);
      }),
      /alpha\.ap\.f32: contents do not match the checksum in .*ranking\.json/,
    ));
});
