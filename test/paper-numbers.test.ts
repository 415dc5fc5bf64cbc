/** The paper's numbers file: read whole, every relation of the paper present, and a damaged file named with its field. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { PAPER_NUMBERS_FILE, paperNumbers, parsePaperNumbers } from '../lib/method/paper-numbers.ts';
import { ConfigError } from '../lib/errors.ts';

const LRE_RELATIONS = 12;

test('the paper numbers cover the twelve relations of Table 2 and Table 4', () => {
  const p = paperNumbers();
  assert.equal(Object.keys(p.intraRelation.flipsTotalTable4).length, LRE_RELATIONS);
  assert.equal(Object.keys(p.perplexity.table2).length, LRE_RELATIONS);
  assert.deepEqual(Object.keys(p.intraRelation.flipsTotalTable4).sort(), Object.keys(p.perplexity.table2).sort());
  assert.equal(p.cumulativity.ranges.length, p.kSweep.paperKs.length - 2);
  assert.deepEqual(Object.keys(p.errorCategories.table4Shares), Object.keys(p.intraRelation.flipsTotalTable4));
});

test('a damaged paper numbers file is refused, naming the field', () => {
  const good = JSON.parse(readFileSync(PAPER_NUMBERS_FILE, 'utf8')) as Record<string, Record<string, unknown>>;
  const without = structuredClone(good);
  delete without['interRelation']!['motherGainColumns'];
  assert.throws(() => parsePaperNumbers(without), (e: unknown) => e instanceof ConfigError && /interRelation\.motherGainColumns/.test(e.message));
  const shortRow = structuredClone(good);
  (shortRow['cumulativity']!['table3'] as Record<string, string[]>)['product_company'] = ['1/0'];
  assert.throws(() => parsePaperNumbers(shortRow), /cumulativity\.table3/);
  assert.throws(() => parsePaperNumbers({ ...good, schema: 'other/1' }), /schema/);
});
