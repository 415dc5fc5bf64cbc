/**
 * The paper's numbers the verdicts compare with, read from data/paper/numbers.json (one file, so a
 * number is typed once and a reader can check it against the paper).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../errors.ts';
import { type LlamaConfig, parseLlamaConfig } from '../model/config.ts';

export const PAPER_NUMBERS_FILE = fileURLToPath(new URL('../../data/paper/numbers.json', import.meta.url));

export interface PaperNumbers {
  data: { relations: number; minFacts: number; evaTriples: number };
  /** Per model of Table 1 (in the file's order): its config and neuron counts. */
  table1: Record<string, { config: LlamaConfig; ffnNeurons: number; allLinearNeurons: number }>;
  /** The top-k of LLaMA-2-7B's FFN neurons and the overlaps the paper names (§3–§4.1). */
  ranking: { k: number; ffnPoolSize: number; overlapFatherMother: number; overlapOccupationSportPosition: number };
  intraRelation: { flipsTotalTable4: Record<string, number>; randomDropPoints: number; relationsAtZeroAccuracy: number };
  interRelation: { motherGainColumns: number };
  kSweep: { paperKs: number[]; ffnPoolSize: number };
  cumulativity: { ranges: string[]; table3: Record<string, string[]> };
  /** [sentences, perplexity before, after] per relation. */
  perplexity: { table2: Record<string, [number, number, number]>; table8: Record<string, string> };
  /** The mean |P^eva-2 − P^eva| original accuracy the text calls a small shift, read as none. */
  eva2Templates: { originalShiftPoints: number };
  /** Table 4's shares of the flips in %: [repeat, "The", "A."] per relation (the flips: intraRelation.flipsTotalTable4). */
  errorCategories: { table4Shares: Record<string, [number, number, number]> };
  /** Relations where resilient facts are more frequent [of, out of], the exceptions, and the Wilcoxon p over relations. */
  factFrequency: {
    resilientMoreFrequent7B: [number, number];
    resilientMoreFrequent13B: [number, number];
    exceptions7B: number;
    exceptions13B: number;
    wilcoxonP7B: number;
    wilcoxonP13B: number;
  };
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
  for (const f of ['relations', 'minFacts', 'evaTriples']) need(isNum(p['data']?.[f]), `data.${f}`, 'a number');
  const models = p['table1']?.['models'];
  need(isRecordOf(models, (m) => typeof m === 'object' && m !== null && isNum((m as Record<string, unknown>)['ffnNeurons']) && isNum((m as Record<string, unknown>)['allLinearNeurons'])), 'table1.models', 'per model, { config, ffnNeurons, allLinearNeurons }');
  const table1: PaperNumbers['table1'] = {};
  for (const [name, m] of Object.entries(models as Record<string, { config: unknown; ffnNeurons: number; allLinearNeurons: number }>)) {
    table1[name] = { config: parseLlamaConfig(m.config, `${PAPER_NUMBERS_FILE}: table1.models.${name}.config`), ffnNeurons: m.ffnNeurons, allLinearNeurons: m.allLinearNeurons };
  }
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
  need(isRecordOf(p['perplexity']?.['table8'], (v) => typeof v === 'string' && v.includes('<o>')), 'perplexity.table8', 'per relation, a template with <o> for the object');
  need(isNum(p['eva2Templates']?.['originalShiftPoints']), 'eva2Templates.originalShiftPoints', 'a number');
  const shares = p['errorCategories']?.['table4Shares'];
  need(isRecordOf(shares, (v) => Array.isArray(v) && v.length === 3 && v.every(isNum)), 'errorCategories.table4Shares', 'per relation, [repeat, "The", "A."] in %');
  const flips = p['intraRelation']!['flipsTotalTable4'] as Record<string, number>;
  need(Object.keys(shares as object).every((r) => r in flips), 'errorCategories.table4Shares', 'for relations of intraRelation.flipsTotalTable4');
  const ff = p['factFrequency'];
  for (const f of ['resilientMoreFrequent7B', 'resilientMoreFrequent13B']) {
    const v = ff?.[f];
    need(Array.isArray(v) && v.length === 2 && v.every(isNum), `factFrequency.${f}`, '[relations, out of]');
  }
  for (const f of ['exceptions7B', 'exceptions13B', 'wilcoxonP7B', 'wilcoxonP13B']) need(isNum(ff?.[f]), `factFrequency.${f}`, 'a number');
  need(typeof p['multilingual']?.['figures'] === 'string', 'multilingual.figures', 'a string');
  for (const f of ['lowerThanEnglish', 'poorAccuracy']) {
    const v = p['multilingual']?.[f];
    need(Array.isArray(v) && v.length > 0 && v.every((l) => typeof l === 'string'), `multilingual.${f}`, 'a non-empty array of language codes');
  }
  need(typeof p['gemma']?.['family'] === 'string', 'gemma.family', 'a string');
  for (const f of ['numLayers', 'hiddenSize', 'intermediateSize', 'ffnPoolSize', 'allRelationsFallBeyondK']) need(isNum(p['gemma']?.[f]), `gemma.${f}`, 'a number');
  return { ...(p as unknown as PaperNumbers), table1 };
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
