/** App. J, Table 4: what the model says instead when deactivation flips a prompt from right to wrong. */
import type { Analysis } from '../experiment.ts';
import type { Dataset } from '../dataset.ts';
import type { IntraResult } from './intra-relation.ts';
import { paperNumbers } from '../paper-numbers.ts';
import { compare, type VerdictInput } from '../verdicts.ts';

export type ErrorCategory = 'repeat' | 'the' | 'a.' | 'other';

/**
 * Category of a wrong output: a repeat of the prompt (the output is the start of the prompt or
 * of the subject), an answer starting with "The", one starting with "A.", or other.
 */
export function errorCategory(output: string, prompt: string, subject: string): ErrorCategory {
  const o = output.trim();
  if (o.length === 0) return 'other';
  const lo = o.toLowerCase();
  if (prompt.toLowerCase().startsWith(lo) || subject.toLowerCase().startsWith(lo) || lo.startsWith(subject.toLowerCase())) return 'repeat';
  if (/^the\b/i.test(o)) return 'the';
  if (/^a\.(\s|$)/i.test(o) || o === 'A') return 'a.';
  return 'other';
}

export interface ErrorCategoryRow {
  relation: string;
  flips: number;
  /** Share of the flips per category; NaN when the relation has no flips. */
  shares: Record<ErrorCategory, number>;
}

export function errorCategories(intra: IntraResult, set = 'eva'): ErrorCategoryRow[] {
  return intra.relations.map((r) => {
    const flips = r.sets[set]?.flips ?? [];
    const counts: Record<ErrorCategory, number> = { repeat: 0, the: 0, 'a.': 0, other: 0 };
    for (const f of flips) {
      const subject = f.prompt.split(/'s |\s(?:is|was|works|plays)\b/)[0] ?? '';
      counts[errorCategory(f.after, f.prompt, subject)]++;
    }
    const shares = Object.fromEntries(Object.entries(counts).map(([c, n]) => [c, flips.length ? n / flips.length : NaN])) as Record<ErrorCategory, number>;
    return { relation: r.name, flips: flips.length, shares };
  });
}

export interface FlipCategoriesParams {
  /** The prompt set whose flips are categorised (the paper: P^eva). */
  set?: string;
}

export interface FlipCategoriesResult {
  k: number;
  set: string;
  relations: ErrorCategoryRow[];
}

function summarise(intra: IntraResult, params: FlipCategoriesParams): FlipCategoriesResult {
  const set = params.set ?? 'eva';
  return { k: intra.k, set, relations: errorCategories(intra, set) };
}

/** Table 4 of the paper per relation: [flips, repeat %, "The" %, "A." %]. */
export function paperTable4(): Record<string, [number, number, number, number]> {
  const p = paperNumbers();
  const flips = p.intraRelation.flipsTotalTable4;
  return Object.fromEntries(Object.entries(p.errorCategories.table4Shares).map(([r, s]) => [r, [flips[r]!, ...s]])) as Record<string, [number, number, number, number]>;
}

/** Our shares next to the paper's, as the notebook's table shows (and saves) them. */
export function flipCategoriesTable(result: FlipCategoriesResult): Record<string, string | number | null>[] {
  const paper = paperTable4();
  const pct = (x: number) => (Number.isFinite(x) ? 100 * x : null);
  return result.relations.map((c) => ({
    relation: c.relation,
    flips: c.flips,
    'repeat %': pct(c.shares.repeat),
    '"The" %': pct(c.shares.the),
    '"A." %': pct(c.shares['a.']),
    'other %': pct(c.shares.other),
    'paper flips': paper[c.relation]?.[0] ?? null,
    'paper repeat': paper[c.relation]?.[1] ?? null,
    'paper "The"': paper[c.relation]?.[2] ?? null,
    'paper "A."': paper[c.relation]?.[3] ?? null,
  }));
}

/**
 * Beyond the paper: per relation, the share of the flips whose deactivated output starts an object
 * of the same relation (the fact is lost, the relation still read) or of another relation (the
 * model answers the wrong relation), and the other relation met most often.
 */
export function answerKindsTable(intra: IntraResult, dataset: Dataset, set = 'eva'): Record<string, string | number | null>[] {
  const objectsOf = new Map(dataset.relations.map((r) => [r.relation.name, [...new Set(r.relation.samples.map((s) => s.object.toLowerCase()))]]));
  const startOf = (out: string, objs: string[]) => {
    const o = out.trim().replace(/^[^\p{L}\p{N}]+/u, '').toLowerCase();
    return o.length > 0 && objs.some((x) => x.startsWith(o));
  };
  return intra.relations.map((r) => {
    const flips = r.sets[set]!.flips;
    let same = 0;
    let otherRel = 0;
    const hits: Record<string, number> = {};
    for (const f of flips) {
      if (startOf(f.after, objectsOf.get(r.name)!)) same++;
      else {
        const o = [...objectsOf].find(([n, objs]) => n !== r.name && startOf(f.after, objs));
        if (o) {
          otherRel++;
          hits[o[0]] = (hits[o[0]] ?? 0) + 1;
        }
      }
    }
    const top = Object.entries(hits).sort((a, b) => b[1] - a[1])[0];
    return {
      relation: r.name,
      flips: flips.length,
      "same relation's object %": flips.length ? (100 * same) / flips.length : null,
      "another relation's object %": flips.length ? (100 * otherRel) / flips.length : null,
      'most frequent other relation': top ? `${top[0]} (${top[1]})` : '',
    };
  });
}

const CATEGORY_NAMES: Record<ErrorCategory, string> = { repeat: 'repeat', the: '"The"', 'a.': '"A."', other: 'other' };

/** Whether repeat is the largest of repeat / "The" / "A." (ties count for repeat), and if not, which is. */
function largest(repeat: number, the: number, a: number): ErrorCategory {
  return repeat >= the && repeat >= a ? 'repeat' : the >= a ? 'the' : 'a.';
}

function verdicts(result: FlipCategoriesResult): VerdictInput[] {
  const withFlips = result.relations.filter((c) => c.flips > 0);
  const repeatTop = withFlips.filter((c) => c.shares.repeat >= c.shares.the && c.shares.repeat >= c.shares['a.'] && c.shares.repeat > 0);
  const total = withFlips.reduce((a, x) => a + x.flips, 0);
  const pooled = (c: ErrorCategory) => (total ? (100 * withFlips.reduce((a, x) => a + x.shares[c] * x.flips, 0)) / total : NaN);
  const paper = Object.entries(paperTable4());
  const paperTotal = paper.reduce((a, [, v]) => a + v[0], 0);
  const paperRepeat = (paper.reduce((a, [, v]) => a + (v[0] * v[1]) / 100, 0) / paperTotal) * 100;
  const paperOthers = paper.map(([r, v]) => [r, largest(v[1], v[2], v[3])] as const).filter(([, c]) => c !== 'repeat');
  const others = paperOthers.map(([r, c]) => `${r}: ${CATEGORY_NAMES[c]}`).join(', ');
  return [
    {
      claim: 'Flipped prompts mostly turn into a repeat of the prompt (the largest of repeat / "The" / "A.")',
      paper: `repeat largest for ${paper.length - paperOthers.length} of ${paper.length} relations${others ? ` (${others})` : ''}`,
      ours: `repeat largest for ${repeatTop.length}/${withFlips.length} relations with flips`,
      status: withFlips.length > 0 && repeatTop.length > withFlips.length / 2 ? 'reproduced' : 'differs',
      detail: 'criterion: for more than half of the relations with at least one flip',
    },
    {
      claim: 'Pooled share of repeats among the flips',
      paper: `${paperRepeat.toFixed(1)} % of ${paperTotal} flips`,
      ours: `${pooled('repeat').toFixed(1)} % of ${total} flips ("The" ${pooled('the').toFixed(1)} %, "A." ${pooled('a.').toFixed(1)} %, other ${pooled('other').toFixed(1)} %)`,
      ...compare(paperRepeat, pooled('repeat'), { tolerance: 15, unit: 'points' }),
    },
  ];
}

/** Table 4 as an Analysis of the intra-relation result (its flips on one prompt set). */
export const flipCategories: Analysis<IntraResult, FlipCategoriesParams, FlipCategoriesResult> = {
  name: 'error-categories',
  paper: 'App. J, Table 4',
  summarise,
  verdicts,
};
