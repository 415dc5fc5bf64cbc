/**
 * The paper's numbers the verdicts compare with, read from data/paper/numbers.json (one file, so a
 * number is typed once and a reader can check it against the paper).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../errors.ts';

export const PAPER_NUMBERS_FILE = fileURLToPath(new URL('../../data/paper/numbers.json', import.meta.url));

export interface PaperNumbers {
  /** The top-k of LLaMA-2-7B's FFN neurons and the overlaps the paper names (§3–§4.1). */
  ranking: { k: number; ffnPoolSize: number; overlapFatherMother: number; overlapOccupationSportPosition: number };
  intraRelation: { flipsTotalTable4: Record<string, number>; randomDropPoints: number; relationsAtZeroAccuracy: number };
  interRelation: { motherGainColumns: number };
  kSweep: { paperKs: number[]; ffnPoolSize: number };
  cumulativity: { ranges: string[]; table3: Record<string, string[]> };
  /** [sentences, perplexity before, after] per relation. */
  perplexity: { table2: Record<string, [number, number, number]> };
  /** The languages the paper names as lower than English and as poor (§5.2). */
  multilingual: { figures: string; lowerThanEnglish: string[]; poorAccuracy: string[] };
  /** Gemma-7B's architecture and the k beyond which every relation falls (App. C). */
  gemma: { family: string; numLayers: number; hiddenSize: number; intermediateSize: number; ffnPoolSize: number; allRelationsFallBeyondK: number };
}

function need(cond: boolean, field: string, expected: string): void {
  if (!cond) throw new ConfigError(`${PAPER_NUMBERS_FILE}: ${field} must be ${expected}`, PAPER_NUMBERS_FILE, field);
}

const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
const isRecordOf = (x: unknown, ok: (v: unknown) => boolean): boolean => typeof x === 'object' && x !== null && !Array.isArray(x) && Object.values(x).every(ok);

/** Checks every field the verdicts read; a damaged file is named, not half-used. */
export function parsePaperNumbers(json: unknown): PaperNumbers {
  const o = json as Record<string, Record<string, unknown>> | null;
  need(typeof o === 'object' && o !== null && (o as Record<string, unknown>)['schema'] === 'rsn-paper-numbers/1', 'schema', '"rsn-paper-numbers/1"');
  const p = o!;
  for (const f of ['k', 'ffnPoolSize', 'overlapFatherMother', 'overlapOccupationSportPosition']) need(isNum(p['ranking']?.[f]), `ranking.${f}`, 'a number');
  need(isRecordOf(p['intraRelation']?.['flipsTotalTable4'], isNum), 'intraRelation.flipsTotalTable4', 'an object of numbers per relation');
  need(isNum(p['intraRelation']?.['randomDropPoints']), 'intraRelation.randomDropPoints', 'a number');
  need(isNum(p['intraRelation']?.['relationsAtZeroAccuracy']), 'intraRelation.relationsAtZeroAccuracy', 'a number');
  need(isNum(p['interRelation']?.['motherGainColumns']), 'interRelation.motherGainColumns', 'a number');
  need(Array.isArray(p['kSweep']?.['paperKs']) && (p['kSweep']!['paperKs'] as unknown[]).every(isNum), 'kSweep.paperKs', 'an array of numbers');
  need(isNum(p['kSweep']?.['ffnPoolSize']), 'kSweep.ffnPoolSize', 'a number');
  const ranges = p['cumulativity']?.['ranges'];
  need(Array.isArray(ranges) && ranges.every((r) => typeof r === 'string'), 'cumulativity.ranges', 'an array of strings');
  need(isRecordOf(p['cumulativity']?.['table3'], (v) => Array.isArray(v) && v.length === (ranges as unknown[]).length && v.every((c) => typeof c === 'string')), 'cumulativity.table3', 'per relation, one "total/affected" string per range');
  need(isRecordOf(p['perplexity']?.['table2'], (v) => Array.isArray(v) && v.length === 3 && v.every(isNum)), 'perplexity.table2', 'per relation, [sentences, before, after]');
  need(typeof p['multilingual']?.['figures'] === 'string', 'multilingual.figures', 'a string');
  for (const f of ['lowerThanEnglish', 'poorAccuracy']) {
    const v = p['multilingual']?.[f];
    need(Array.isArray(v) && v.length > 0 && v.every((l) => typeof l === 'string'), `multilingual.${f}`, 'a non-empty array of language codes');
  }
  need(typeof p['gemma']?.['family'] === 'string', 'gemma.family', 'a string');
  for (const f of ['numLayers', 'hiddenSize', 'intermediateSize', 'ffnPoolSize', 'allRelationsFallBeyondK']) need(isNum(p['gemma']?.[f]), `gemma.${f}`, 'a number');
  return p as unknown as PaperNumbers;
}

let cached: PaperNumbers | null = null;

export function paperNumbers(): PaperNumbers {
  if (!cached) {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(PAPER_NUMBERS_FILE, 'utf8'));
    } catch (e) {
      throw new ConfigError(`${PAPER_NUMBERS_FILE}: ${(e as Error).message}`, PAPER_NUMBERS_FILE);
    }
    cached = parsePaperNumbers(json);
  }
  return cached;
}
