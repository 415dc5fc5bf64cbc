/**
 * The paper's experiments (§4–§5, App. C/E/G/J), each one object with its plan, summary and
 * verdicts (lib/method/experiments/; the views of a ranking, which run no model, as Analysis
 * objects), the jobs they are made of (jobs.ts), and the error categories of an intra-relation
 * result.
 */
import type { IntraResult } from './experiments/intra-relation.ts';

export * from './jobs.ts';
export * from './experiment.ts';
export * from './verdicts.ts';
export * from './experiments/intra-relation.ts';
export * from './experiments/inter-relation.ts';
export * from './experiments/k-sweep.ts';
export * from './experiments/cumulativity.ts';
export * from './experiments/perplexity.ts';
export * from './experiments/identification.ts';
export * from './experiments/layers.ts';
export * from './experiments/overlap.ts';
export * from './experiments/multilingual.ts';
export * from './experiments/gemma.ts';

// ---------------------------------------------------------------- E14 error categories (Table 4)

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

export function errorCategories(intra: IntraResult, set = 'eva'): { relation: string; flips: number; shares: Record<ErrorCategory, number> }[] {
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
