import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { formatJson } from '../lib/data/io.ts';
import { buildPaperRelations } from '../lib/data/lre.ts';
import { ANSWER_SUFFIX, buildPrompts, fillTemplate } from '../lib/data/prompts.ts';
import { DataError, loadRelation, loadRelations, parseRelation, type Relation } from '../lib/data/relation.ts';
import { mulberry32, sampleNegatives, shuffled } from '../lib/rng.ts';
import { loadSplit, saveSplit, splitFileName, splitRelation, subjectKey, type Split } from '../lib/data/split.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const RELATIONS_DIR = join(ROOT, 'data/relations');
const SPLITS_DIR = join(RELATIONS_DIR, 'splits');
const LRE_FIXTURE = join(ROOT, 'test/fixtures/lre');

/**
 * design/paper.md §2.2, written out independently of lib/data/lre.ts so that a slip in the
 * build spec shows up here.
 */
const PAPER: Record<string, { lre: string; n: number; templates: string[]; eva2: string[] }> = {
  company_ceo: {
    lre: 'company_ceo.json',
    n: 298,
    templates: ["{}'s CEO is", 'The CEO of {} is'],
    eva2: ['The name of the CEO of {} is', 'Who is the CEO of {}? Their name is'],
  },
  company_hq: {
    lre: 'company_hq.json',
    n: 674,
    templates: ['{} is headquartered in the city of', 'The headquarters of {} are in the city of'],
    eva2: ['The headquarters of {} is in the city of', 'Where are the headquarters of {}? It is in the city of'],
  },
  landmark_continent: { lre: 'landmark_on_continent.json', n: 947, templates: ['{} is on the continent of'], eva2: ['What continent is {} on? It is on'] },
  landmark_country: { lre: 'landmark_in_country.json', n: 836, templates: ['{} is in the country of'], eva2: ['What country is {} in? It is in'] },
  person_father: { lre: 'person_father.json', n: 991, templates: ["{}'s father is named"], eva2: ["Who is {}'s father? Their father is named"] },
  person_mother: {
    lre: 'person_mother.json',
    n: 994,
    templates: ["{}'s mother is named"],
    eva2: ['Name of mother of {} is', "Who is {}'s mother? Their mother is named"],
  },
  person_occupation: { lre: 'person_occupation.json', n: 821, templates: ['{} works as a', 'By profession, {} is a'], eva2: ['{} works professionally as a'] },
  person_plays_instrument: {
    lre: 'person_plays_instrument.json',
    n: 513,
    templates: ['{} plays the instrument of'],
    eva2: ['What instrument does {} play? They play the', 'The instrument that {} plays is called the'],
  },
  person_pro_sport: { lre: 'person_plays_pro_sport.json', n: 318, templates: ['{} plays the sport of'], eva2: ['What sport does {} play? They play'] },
  person_sport_position: {
    lre: 'person_plays_position_in_sport.json',
    n: 952,
    templates: ['{} plays in the position of a', 'In their sport, {} plays as a'],
    eva2: ['Which position does {} play? They play as a', 'In their sport, {} plays in the position of a'],
  },
  product_company: {
    lre: 'product_by_company.json',
    n: 522,
    templates: ['{} was created by which company', '{} is a product of which company'],
    eva2: ['Which company developed {}? It was developed by'],
  },
  star_constellation: {
    lre: 'star_constellation.json',
    n: 362,
    templates: ['{} is part of the constellation named'],
    eva2: ['What is the name of the constellation that {} is part of? It is part of'],
  },
};

interface LreJson {
  prompt_templates: string[];
  prompt_templates_zs: string[];
  samples: { subject: string; object: string }[];
}

function readLre(file: string): LreJson {
  return JSON.parse(readFileSync(join(LRE_FIXTURE, 'factual', file), 'utf8')) as LreJson;
}

const relations = loadRelations(RELATIONS_DIR);
const byName = new Map(relations.map((r) => [r.name, r]));
function rel(name: string): Relation {
  const r = byName.get(name);
  assert.ok(r, `relation ${name} missing`);
  return r;
}

const tmpDirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'rsn-relations-'));
  tmpDirs.push(d);
  return d;
}
after(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

/** Files under `dir`, as sorted relative paths (hand-rolled: Dirent.parentPath needs Node ≥20.12). */
function listFiles(dir: string, sub = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, sub), { withFileTypes: true })) {
    const rel = sub === '' ? e.name : `${sub}/${e.name}`;
    if (e.isDirectory()) out.push(...listFiles(dir, rel));
    else if (e.isFile()) out.push(rel);
  }
  return out.sort();
}

describe('committed relations (data/relations)', () => {
  test('are exactly the paper\'s 12 relations', () => {
    assert.deepEqual(relations.map((r) => r.name), Object.keys(PAPER).sort());
  });

  test('have the LRE source files\' rows: same count, same order, duplicates kept', () => {
    for (const [name, p] of Object.entries(PAPER)) {
      const lre = readLre(p.lre);
      assert.equal(lre.samples.length, p.n, `${p.lre} in the fixture should have the paper.md count`);
      assert.equal(rel(name).samples.length, lre.samples.length, name);
      assert.deepEqual(rel(name).samples, lre.samples.map((s) => ({ subject: s.subject, object: s.object })), name);
    }
    // product_by_company carries 20 exact duplicate rows upstream; they must survive.
    const pc = rel('product_company').samples.map((s) => `${s.subject}\u0000${s.object}`);
    assert.equal(pc.length - new Set(pc).size, 20);
  });

  test('have the templates of the paper table, including the two wording deviations', () => {
    for (const [name, p] of Object.entries(PAPER)) {
      assert.deepEqual(rel(name).templates, p.templates, `${name} templates`);
      assert.deepEqual(rel(name).eva2Templates, p.eva2, `${name} eva-2 templates`);
      for (const t of rel(name).eva2Templates) assert.ok(!rel(name).templates.includes(t));
      const lre = readLre(p.lre);
      for (const t of p.eva2) assert.ok(lre.prompt_templates_zs.includes(t), `${name}: eva-2 ${t} comes from LRE zs`);
    }
    assert.deepEqual(readLre('person_plays_instrument.json').prompt_templates, ['{} plays the']);
    assert.deepEqual(readLre('product_by_company.json').prompt_templates, ['{} was created by', '{} is a product of']);
    for (const name of ['person_plays_instrument', 'product_company']) {
      assert.ok(rel(name).notes.some((n) => n.startsWith('Wording deviation')), `${name} documents its deviation`);
    }
    assert.ok(rel('product_company').notes.some((n) => /ambiguous/i.test(n) && n.includes('Table 19')));
    // Templates the paper does not use as originals match LRE exactly.
    for (const [name, p] of Object.entries(PAPER)) {
      if (name === 'person_plays_instrument' || name === 'product_company') continue;
      assert.deepEqual(readLre(p.lre).prompt_templates, p.templates, name);
    }
  });

  test('carry the LRE attribution, and the folder carries the MIT notice', () => {
    const sourceMd = readFileSync(join(LRE_FIXTURE, 'SOURCE.md'), 'utf8');
    for (const r of relations) {
      const s = r.source;
      assert.ok(s);
      assert.equal(s.url, 'https://github.com/evandez/relations');
      assert.equal(s.commit, '1b9ec3cf2b8368e42bde7e80fcef384312a6ec07');
      assert.equal(s.license, 'MIT');
      assert.equal(s.copyright, 'Copyright (c) 2022 Evan Hernandez');
      assert.equal(s.licenseFile, 'LICENSE-LRE.md');
      assert.ok(s.blobId && sourceMd.includes(`| ${s.path} | ${s.blobId} |`), `${r.name}: blob id in SOURCE.md`);
    }
    const lic = readFileSync(join(RELATIONS_DIR, 'LICENSE-LRE.md'), 'utf8');
    assert.ok(lic.includes('MIT License') && lic.includes('Copyright (c) 2022 Evan Hernandez'));
    assert.ok(lic.includes('The above copyright notice and this permission notice shall be included in all'));
    for (const f of readdirSync(SPLITS_DIR)) {
      const split = JSON.parse(readFileSync(join(SPLITS_DIR, f), 'utf8')) as { attribution?: string };
      assert.match(split.attribution ?? '', /MIT; Copyright \(c\) 2022 Evan Hernandez/, f);
    }
  });

  test('equal a fresh build from the LRE fixture, byte for byte (relations, splits, README, licence)', () => {
    const built = buildPaperRelations(LRE_FIXTURE, { seed: 0 });
    assert.deepEqual(listFiles(RELATIONS_DIR), [...built.files.keys()].sort());
    for (const [path, content] of built.files) {
      assert.equal(readFileSync(join(RELATIONS_DIR, path), 'utf8'), content, `${path} is stale: rerun scripts/build-relations.ts`);
    }
  });
});

describe('splits', () => {
  test('committed seed-0 splits: 50 evaluation triples, subject-disjoint, covering all rows', () => {
    for (const r of relations) {
      const split = loadSplit(join(SPLITS_DIR, splitFileName(r.name, 0)), r);
      assert.equal(split.evaluation.length, 50, r.name);
      assert.equal(split.detection.length, r.samples.length - 50, r.name);
      const evalSubjects = new Set(split.evaluation.map((t) => t.subject));
      const evalKeys = new Set(split.evaluation.map((t) => subjectKey(t.subject)));
      for (const t of split.detection) {
        assert.ok(!evalSubjects.has(t.subject), `${r.name}: ${t.subject} on both sides`);
        assert.ok(!evalKeys.has(subjectKey(t.subject)), `${r.name}: ${t.subject} (case variant) on both sides`);
      }
      const rows = [...split.evaluation, ...split.detection].map((t) => t.row).sort((a, b) => a - b);
      assert.deepEqual(rows, r.samples.map((_, i) => i));
    }
  });

  test('committed splits equal freshly computed ones', () => {
    for (const r of relations) {
      const committed = loadSplit(join(SPLITS_DIR, splitFileName(r.name, 0)), r);
      assert.deepEqual(committed, splitRelation(r, { seed: 0, evalTriples: 50 }), r.name);
    }
  });

  test('same seed → same split; another seed → another split', () => {
    for (const r of relations) {
      const a = splitRelation(r, { seed: 0 });
      const b = splitRelation(r, { seed: 0 });
      const c = splitRelation(r, { seed: 1 });
      assert.deepEqual(a, b, r.name);
      assert.notDeepEqual(a.evaluation.map((t) => t.row), c.evaluation.map((t) => t.row), r.name);
      assert.equal(c.evaluation.length, 50);
    }
  });

  test('a subject with several rows, or case variants of one, stays on one side', () => {
    for (const seed of [0, 1, 2, 3, 4, 5, 6, 7]) {
      const pc = splitRelation(rel('product_company'), { seed });
      const clang = [...pc.evaluation, ...pc.detection].filter((t) => t.subject === 'Clang');
      assert.equal(clang.length, 4);
      const inEval = pc.evaluation.filter((t) => t.subject === 'Clang').length;
      assert.ok(inEval === 0 || inEval === 4, `seed ${seed}: Clang split ${inEval}/4`);
      const ceo = splitRelation(rel('company_ceo'), { seed });
      const nv = ceo.evaluation.filter((t) => subjectKey(t.subject) === 'nvidia').length;
      assert.ok(nv === 0 || nv === 2, `seed ${seed}: NVIDIA/Nvidia split`);
      assert.equal(pc.evaluation.length, 50);
    }
  });

  test('saveSplit/loadSplit round-trip; a changed relation file is refused', () => {
    const dir = tmp();
    const r = rel('person_pro_sport');
    const split = splitRelation(r, { seed: 7 });
    const path = join(dir, splitFileName(r.name, 7));
    saveSplit(split, path);
    assert.deepEqual(readdirSync(dir), [splitFileName(r.name, 7)], 'no temp file left behind');
    assert.deepEqual(loadSplit(path, r), split);
    const changed = parseRelation(formatJson({ ...JSON.parse(readFileSync(r.file, 'utf8')), notes: ['edited'] }), 'edited.json');
    assert.throws(() => loadSplit(path, changed), (e: unknown) => e instanceof DataError && e.field === 'relationSha256' && e.message.includes(path));
  });

  test('a relation too small for the evaluation budget is an error, not a short split', () => {
    const r = parseRelation(
      JSON.stringify({ schema: 'rsn-relation/1', name: 'tiny', templates: ['{} is'], samples: [{ subject: 'a', object: 'b' }, { subject: 'c', object: 'd' }] }),
      'tiny.json',
    );
    assert.throws(() => splitRelation(r, { seed: 0 }), (e: unknown) => e instanceof DataError && /exactly 50/.test(e.message) && e.message.includes('tiny.json'));
    assert.throws(() => splitRelation(r, { seed: 0, evalTriples: 2 }), DataError);
    const s = splitRelation(r, { seed: 0, evalTriples: 1 });
    assert.equal(s.evaluation.length, 1);
    assert.equal(s.detection.length, 1);
  });
});

describe('rng', () => {
  test('mulberry32 matches an independent implementation (Python, 32-bit masked)', () => {
    const take = (seed: number) => {
      const r = mulberry32(seed);
      return [r.nextUint32(), r.nextUint32(), r.nextUint32(), r.nextUint32()];
    };
    assert.deepEqual(take(0), [1144304738, 1416247, 958946056, 627933444]);
    assert.deepEqual(take(1), [2693262067, 11749833, 2265367787, 4213581821]);
    assert.deepEqual(take(42), [2581720956, 1925393290, 3661312704, 2876485805]);
  });

  /** mulberry32 in unbounded integer arithmetic masked to 32 bits, independent of Math.imul and int32 coercion. */
  function bigIntMulberry32(seed: number, count: number): number[] {
    const mask = (1n << 32n) - 1n;
    let s = BigInt(seed);
    const out: number[] = [];
    for (let i = 0; i < count; i++) {
      s = (s + 0x6d2b79f5n) & mask;
      let t = ((s ^ (s >> 15n)) * (s | 1n)) & mask;
      t = (t ^ ((t + (((t ^ (t >> 7n)) * (t | 61n)) & mask)) & mask)) & mask;
      out.push(Number((t ^ (t >> 14n)) & mask));
    }
    return out;
  }

  test('mulberry32 matches a BigInt reference over many seeds; next and intScaled are the scaled raw outputs', () => {
    for (const seed of [0, 1, 2, 42, 1234, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff]) {
      const want = bigIntMulberry32(seed, 64);
      const r = mulberry32(seed);
      assert.deepEqual(Array.from({ length: 64 }, () => r.nextUint32()), want, `seed ${seed}`);
      const f = mulberry32(seed);
      assert.deepEqual(Array.from({ length: 64 }, () => f.next()), want.map((u) => u / 2 ** 32), `seed ${seed}: next`);
      // floor(u · n / 2^32) in exact integer arithmetic: the draw the committed splits used.
      const g = mulberry32(seed);
      const ns = Array.from({ length: 64 }, (_, i) => 1 + i * 997);
      assert.deepEqual(ns.map((n) => g.intScaled(n)), want.map((u, i) => Number((BigInt(u) * BigInt(ns[i]!)) >> 32n)), `seed ${seed}: intScaled`);
    }
  });

  test('intUniform and sampleNegatives follow the rejection-sampling stream of the reference', () => {
    const raw = bigIntMulberry32(77, 4000);
    let at = 0;
    // Exact rejection: accept u below the largest multiple of n not above 2^32, answer u mod n.
    const uniform = (n: number): number => {
      const limit = 2 ** 32 - (2 ** 32 % n);
      for (;;) {
        const u = raw[at++]!;
        if (u < limit) return u % n;
      }
    };
    const g = mulberry32(77);
    const ns = [1, 2, 3, 7, 1000, 2 ** 31 + 1, 3 * 2 ** 30, 2 ** 32];
    for (let i = 0; i < 200; i++) assert.equal(g.intUniform(ns[i % ns.length]!), uniform(ns[i % ns.length]!), `draw ${i}`);
    // A partial Fisher–Yates over the candidates with the same draws, seed reduced modulo 2^32.
    const candidates = Array.from({ length: 50 }, (_, i) => 3 * i + 1);
    for (const [seed, reduced] of [[77, 77], [77 + 2 ** 32, 77], [77 - 2 ** 32, 77]] as const) {
      at = 0;
      const pool = candidates.slice();
      for (let i = 0; i < 12; i++) {
        const j = i + uniform(pool.length - i);
        [pool[i], pool[j]] = [pool[j]!, pool[i]!];
      }
      assert.deepEqual(sampleNegatives(candidates, 12, seed), pool.slice(0, 12), `seed ${seed} (≡ ${reduced})`);
    }
  });

  test('shuffle is a permutation and leaves its input alone', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i);
    const ys = shuffled(xs, mulberry32(3));
    assert.deepEqual([...ys].sort((a, b) => a - b), xs);
    assert.notDeepEqual(ys, xs);
    assert.deepEqual(xs, Array.from({ length: 100 }, (_, i) => i));
  });

  test('seeds outside uint32 are refused', () => {
    assert.throws(() => mulberry32(-1), RangeError);
    assert.throws(() => mulberry32(1.5), RangeError);
    assert.throws(() => mulberry32(2 ** 32), RangeError);
    assert.throws(() => mulberry32(-1, 'options.seed'), /^RangeError: options\.seed: expected an integer in \[0, 4294967295\], found -1$/);
    assert.equal(mulberry32(2 ** 32 - 1).nextUint32(), bigIntMulberry32(2 ** 32 - 1, 1)[0]);
  });
});

describe('prompts', () => {
  test('one prompt per triple × template, "<filled template>? Answer:"', () => {
    const r = rel('company_ceo');
    const split: Split = splitRelation(r, { seed: 0 });
    const prompts = buildPrompts(split.evaluation, r.templates);
    assert.equal(prompts.length, 50 * 2);
    assert.deepEqual(
      prompts.slice(0, 2).map((p) => p.templateIndex),
      [0, 1],
    );
    const nvidia = r.samples.findIndex((s) => s.subject === 'NVIDIA');
    const [p0, p1] = buildPrompts([{ relation: r.name, row: nvidia, ...r.samples[nvidia] }], r.templates);
    assert.equal(p0.text, "NVIDIA's CEO is? Answer:");
    assert.equal(p1.text, 'The CEO of NVIDIA is? Answer:');
    assert.deepEqual(
      { relation: p1.relation, subject: p1.subject, object: p1.object, templateIndex: p1.templateIndex, row: p1.row },
      { relation: 'company_ceo', subject: 'NVIDIA', object: 'Jensen Huang', templateIndex: 1, row: nvidia },
    );
    for (const p of prompts) assert.ok(p.text.endsWith(ANSWER_SUFFIX));
  });

  test('eva-2 prompts use eva2Templates the same way', () => {
    const [p] = buildPrompts([{ relation: 'landmark_continent', row: 0, subject: 'Elbe', object: 'Europe' }], rel('landmark_continent').eva2Templates);
    assert.equal(p.text, 'What continent is Elbe on? It is on? Answer:');
    const r = rel('person_mother');
    assert.equal(buildPrompts(splitRelation(r, { seed: 0 }).evaluation, r.eva2Templates).length, 100);
  });

  test('a subject containing "$&" or "{}" is inserted literally', () => {
    assert.equal(fillTemplate('The CEO of {} is', 'A$&B$\'C'), "The CEO of A$&B$'C is");
    assert.equal(fillTemplate('{} is in the country of', '{}x'), '{}x is in the country of');
    assert.throws(() => fillTemplate('no slot', 'x'), DataError);
  });
});

describe('loader errors name the file and the field', () => {
  const good = {
    schema: 'rsn-relation/1',
    name: 'my_relation',
    templates: ['{} lives in'],
    eva2Templates: ['Where does {} live? In'],
    samples: [{ subject: 'Ada', object: 'London' }],
  };

  function write(name: string, text: string): string {
    const dir = tmp();
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  }

  function expectError(text: string, field: string, pattern?: RegExp): void {
    const path = write('bad.json', text);
    assert.throws(
      () => loadRelation(path),
      (e: unknown) => {
        assert.ok(e instanceof DataError, `expected DataError, got ${String(e)}`);
        assert.ok(e.message.includes(path), `message names the file: ${e.message}`);
        assert.ok(e.message.includes(`"${field}"`), `message names field ${field}: ${e.message}`);
        assert.equal(e.file, path);
        assert.equal(e.field, field);
        if (pattern) assert.match(e.message, pattern);
        return true;
      },
    );
  }

  test('a user relation in the same schema loads, with defaults', () => {
    const path = write('mine.json', JSON.stringify({ schema: 'rsn-relation/1', name: 'mine', templates: ['{} lives in'], samples: good.samples }));
    const r = loadRelation(path);
    assert.equal(r.language, 'en');
    assert.deepEqual(r.eva2Templates, []);
    assert.deepEqual(r.notes, []);
    assert.equal(r.file, path);
    assert.match(r.sha256, /^[0-9a-f]{64}$/);
    assert.equal(loadRelation(write('full.json', JSON.stringify(good))).eva2Templates.length, 1);
  });

  test('malformed JSON', () => expectError('{"schema": "rsn-relation/1",', '(whole file)', /valid JSON/));
  test('unknown field (top level)', () => expectError(JSON.stringify({ ...good, eva2templates: [] }), 'eva2templates', /unknown field/));
  test('unknown field (in a sample)', () =>
    expectError(JSON.stringify({ ...good, samples: [{ subject: 'a', object: 'b', obj: 'c' }] }), 'samples[0].obj', /unknown field/));
  test('unknown field (in source)', () => expectError(JSON.stringify({ ...good, source: { dataset: 'x', licence: 'MIT' } }), 'source.licence', /unknown field/));
  test('missing field', () => {
    const { templates: _t, ...noTemplates } = good;
    expectError(JSON.stringify(noTemplates), 'templates', /missing/);
    expectError(JSON.stringify({ ...good, samples: [{ subject: 'a' }] }), 'samples[0].object', /missing/);
  });
  test('wrong type', () => {
    expectError(JSON.stringify({ ...good, templates: '{} lives in' }), 'templates', /array/);
    expectError(JSON.stringify({ ...good, samples: [{ subject: 'a', object: 3 }] }), 'samples[0].object', /a string/);
    expectError(JSON.stringify({ ...good, schema: 'rsn-relation/2' }), 'schema');
  });
  test('template without exactly one {}', () => {
    expectError(JSON.stringify({ ...good, templates: ['lives in'] }), 'templates[0]', /exactly one "\{\}".*0 slots/);
    expectError(JSON.stringify({ ...good, templates: ['{} lives in', '{} and {}'] }), 'templates[1]', /2 slots/);
    expectError(JSON.stringify({ ...good, eva2Templates: ['Where?'] }), 'eva2Templates[0]', /exactly one/);
    expectError(JSON.stringify({ ...good, templates: [] }), 'templates', /non-empty/);
  });
  test('empty samples, blank subject, eva-2 equal to an original', () => {
    expectError(JSON.stringify({ ...good, samples: [] }), 'samples', /non-empty/);
    expectError(JSON.stringify({ ...good, samples: [{ subject: '', object: 'x' }] }), 'samples[0].subject', /non-empty/);
    expectError(JSON.stringify({ ...good, samples: [{ subject: 'a ', object: 'x' }] }), 'samples[0].subject', /whitespace/);
    expectError(JSON.stringify({ ...good, eva2Templates: ['{} lives in'] }), 'eva2Templates[0]', /not also in "templates"/);
  });
  test('two files with the same relation name in one directory', () => {
    const dir = tmp();
    writeFileSync(join(dir, 'a.json'), JSON.stringify(good));
    writeFileSync(join(dir, 'b.json'), JSON.stringify(good));
    assert.throws(() => loadRelations(dir), (e: unknown) => e instanceof DataError && e.field === 'name' && e.message.includes('b.json'));
  });
});

describe('build script', () => {
  test('writes the same files as the library build; bad input fails with a message', () => {
    const out = tmp();
    const script = join(ROOT, 'scripts/build-relations.ts');
    const ok = spawnSync(process.execPath, ['--import', 'tsx', script, LRE_FIXTURE, '--out', out], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /wrote 26 files/);
    assert.deepEqual(listFiles(out), listFiles(RELATIONS_DIR));
    for (const f of listFiles(out)) assert.equal(readFileSync(join(out, f), 'utf8'), readFileSync(join(RELATIONS_DIR, f), 'utf8'), f);

    const bad = spawnSync(process.execPath, ['--import', 'tsx', script, join(out, 'nowhere'), '--out', join(out, 'x')], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /SOURCE\.md/);
  });
});
