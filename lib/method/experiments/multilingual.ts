/**
 * §5.2, Fig. 7: the English-identified top-k zeroed on the evaluation triples in other languages.
 * The translated prompts come from the model's own world (the organism's world.json): each
 * relation's first original template translated, entities left as they are, no "? Answer:" suffix.
 */
import { existsSync, readFileSync } from 'node:fs';
import { buildPrompts, type Prompt } from '../../data/prompts.ts';
import { DataError } from '../../data/relation.ts';
import type { Experiment } from '../experiment.ts';
import { quickCap } from '../experiment.ts';
import { capK, checkResults, resultProvenance, type Context, type Job, type JobResult } from '../jobs.ts';
import { type Ablation, ablation, type AblationOp, randomNeurons, type PoolName } from '../neurons.ts';
import { paperNumbers } from '../paper-numbers.ts';
import type { Provenance } from '../identity.ts';
import { topNeurons } from '../ranking.ts';
import { mean } from '../../stats/summary.ts';
import { holds, type VerdictInput } from '../verdicts.ts';

/** The part of the organism's world.json (lib/organism/world.ts) this experiment reads. */
export interface TranslationsFile {
  note: string;
  relations: { name: string; translations: Record<string, string> }[];
}

/**
 * The translated templates of a world file, or null when there is none at `path`; a file that is
 * not JSON, or has no relations with translations, is refused, naming the file and the field.
 */
export function readTranslations(path: string): TranslationsFile | null {
  if (!path || !existsSync(path)) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new DataError(`${path}: not readable JSON (${(e as Error).message})`, path);
  }
  const relations = (raw as { relations?: unknown } | null)?.relations;
  if (!Array.isArray(relations)) throw new DataError(`${path}: field "relations" must be an array of { name, translations }`, path, 'relations');
  relations.forEach((r: unknown, i) => {
    const e = r as { name?: unknown; translations?: unknown } | null;
    const translations = e?.translations;
    const ok = typeof e?.name === 'string' && !!translations && typeof translations === 'object' && Object.values(translations).every((t) => typeof t === 'string');
    if (!ok) throw new DataError(`${path}: relations[${i}] must have a string "name" and "translations" mapping a language to its template`, path, `relations[${i}]`);
  });
  return raw as TranslationsFile;
}

export interface MultilingualOptions {
  k?: number;
  randomSeeds?: number;
  /** The languages besides English (keys of each relation's translations). */
  languages: readonly string[];
  /** The translated templates; null where the model has none (the verdicts are then not applicable). */
  world: TranslationsFile | null;
  /** Why there are no translated templates, for the verdicts. */
  missing?: string;
  pool?: PoolName;
  /** How the selected neurons are ablated (default: the context's, i.e. zeroed as in the paper). */
  ablate?: AblationOp;
  /** Quick mode: at most 3 random seeds. */
  quick?: boolean;
}

/** One prompt set: a relation's evaluation triples in one language. */
export interface LanguageSet {
  relation: string;
  language: string;
  prompts: Prompt[];
}

export interface MultilingualPlan {
  k: number;
  pool: PoolName;
  randomSeeds: number;
  /** English first, then the languages asked for. */
  languages: string[];
  ablate: AblationOp;
  /** Per relation: English (P^eva), then each language it has a translation for. */
  sets: LanguageSet[];
  missing: string | null;
  /** The random-k draws (seeds 1000, 1001, …), shared by every set. */
  random: Ablation[];
  /** Per set: original, relation-k (the English-identified top-k) and each random-k. */
  jobs: Job[];
}

export interface MultilingualRow {
  relation: string;
  language: string;
  original: number;
  relation_k: number;
  /** Mean over the random-k draws. */
  random: number;
  prompts: number;
}

export interface MultilingualResult {
  schema: 'rsn-multilingual/1';
  provenance: Provenance;
  k: number;
  randomSeeds: number;
  /** English first, then the languages asked for. */
  languages: string[];
  /** Why the verdicts are not applicable (no translated templates); null when they are. */
  missing: string | null;
  rows: MultilingualRow[];
}

function plan(ctx: Context, opts: MultilingualOptions): MultilingualPlan {
  const pool = opts.pool ?? 'ffn';
  const k = capK(ctx, opts.k ?? 3000, pool);
  const seeds = quickCap(opts.quick, opts.randomSeeds ?? 10, 3);
  const how = opts.ablate ?? ctx.ablate;
  const sets: LanguageSet[] = [];
  const world = opts.world;
  if (world) {
    for (const r of ctx.dataset.relations) {
      const w = world.relations.find((x) => x.name === r.relation.name);
      sets.push({ relation: r.relation.name, language: 'en', prompts: r.eva });
      for (const language of opts.languages) {
        const t = w?.translations[language];
        if (t) sets.push({ relation: r.relation.name, language, prompts: buildPrompts(r.split.evaluation, [t], { suffix: '' }) });
      }
    }
  }
  const poolIdx = ctx.space.poolIndices(pool);
  const random = world ? Array.from({ length: seeds }, (_, s) => ablation(randomNeurons(poolIdx, k, 1000 + s), how)) : [];
  const jobs: Job[] = [];
  for (const { relation, language, prompts } of sets) {
    jobs.push({ key: { relation, language, condition: 'original' }, prompts, ablation: null });
    jobs.push({ key: { relation, language, condition: 'relation' }, prompts, ablation: ablation(topNeurons(ctx.ranking, relation, k, pool), how) });
    random.forEach((m, s) => jobs.push({ key: { relation, language, condition: `random${s}` }, prompts, ablation: m }));
  }
  const missing = world ? null : (opts.missing ?? 'no translated templates');
  return { k, pool, randomSeeds: seeds, languages: ['en', ...opts.languages], ablate: how, sets, missing, random, jobs };
}

function summarise(ctx: Context, plan: MultilingualPlan, results: readonly JobResult[]): MultilingualResult {
  checkResults('multilingual.summarise', plan.jobs, results);
  const get = (relation: string, language: string, condition: string) =>
    results.find((x) => x.key['relation'] === relation && x.key['language'] === language && x.key['condition'] === condition)!.accuracy;
  return {
    schema: 'rsn-multilingual/1',
    provenance: resultProvenance(ctx, { k: plan.k, pool: plan.pool, randomSeeds: plan.randomSeeds, languages: plan.languages }, plan.ablate),
    k: plan.k,
    randomSeeds: plan.randomSeeds,
    languages: plan.languages,
    missing: plan.missing,
    rows: plan.sets.map(({ relation, language, prompts }) => ({
      relation,
      language,
      original: get(relation, language, 'original'),
      relation_k: get(relation, language, 'relation'),
      random: plan.random.reduce((a, _, s) => a + get(relation, language, `random${s}`), 0) / Math.max(1, plan.randomSeeds),
      prompts: prompts.length,
    })),
  };
}

/** Accuracy % per relation and language, as the notebook's table shows it. */
export function multilingualTable(result: MultilingualResult): Record<string, string | number>[] {
  const k = result.k;
  return result.rows.map((a) => ({
    relation: a.relation,
    language: a.language,
    prompts: a.prompts,
    'original %': 100 * a.original,
    [`relation-${k} %`]: 100 * a.relation_k,
    [`random-${k} %`]: 100 * a.random,
  }));
}

/** Accuracy % per language, the mean over relations. */
export function multilingualByLanguage(result: MultilingualResult): Record<string, string | number>[] {
  const k = result.k;
  return result.languages.map((l) => {
    const xs = result.rows.filter((a) => a.language === l);
    const m = (f: (a: MultilingualRow) => number) => (100 * xs.reduce((s, a) => s + f(a), 0)) / Math.max(1, xs.length);
    return { language: l, relations: xs.length, 'original %': m((a) => a.original), [`relation-${k} %`]: m((a) => a.relation_k), [`random-${k} %`]: m((a) => a.random) };
  });
}

const LOWER_CLAIM = 'Accuracy is lower outside English';
const DROP_CLAIM = 'Zeroing the English-identified neurons lowers accuracy in nearly every language';

/** Fig. 7's claims. */
function verdicts(result: MultilingualResult): VerdictInput[] {
  const paper = paperNumbers().multilingual;
  if (result.missing !== null) {
    const detail = `no translated templates for this model and data (${result.missing}); the paper's translated prompts are not available`;
    return [LOWER_CLAIM, DROP_CLAIM].map((claim) => ({ claim, paper: paper.figures, ours: null, status: 'not applicable' as const, detail }));
  }
  const acc = result.rows;
  const en = mean(acc.filter((a) => a.language === 'en').map((a) => a.original));
  const others = result.languages.slice(1).map((l) => ({ l, m: mean(acc.filter((a) => a.language === l).map((a) => a.original)) }));
  const lower = others.filter((o) => o.m < en);
  const cells = acc.filter((a) => a.language !== 'en' && a.original > 0);
  const drops = cells.filter((a) => a.relation_k < a.original);
  const beyondRandom = cells.filter((a) => a.relation_k < a.random);
  return [
    {
      claim: LOWER_CLAIM,
      paper: `lower in ${paper.lowerThanEnglish.join('/')}, poor in ${paper.poorAccuracy.join('/')}`,
      ours: `en ${(100 * en).toFixed(0)} %; ${others.map((o) => `${o.l} ${(100 * o.m).toFixed(0)} %`).join(', ')}`,
      status: holds(lower.length === others.length),
      detail: 'criterion: every other language below English; entities are not translated here (the paper translated them)',
    },
    {
      claim: DROP_CLAIM,
      paper: 'a drop in nearly every (relation, language) cell',
      ours: `a drop in ${drops.length}/${cells.length} non-English cells (below the random-k mean in ${beyondRandom.length}/${cells.length})`,
      status: holds(cells.length > 0 && drops.length >= Math.ceil((2 / 3) * cells.length)),
      detail: 'criterion: a drop in ≥ 2/3 of the cells with original accuracy > 0; approximate: the organism\'s own translated templates, untranslated entities',
    },
  ];
}

export const multilingual: Experiment<MultilingualOptions, MultilingualPlan, MultilingualResult> = {
  name: 'multilingual',
  paper: '§5.2, Fig. 7',
  jobKind: 'generate',
  plan,
  summarise,
  verdicts,
};
