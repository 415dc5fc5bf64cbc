/**
 * Zero-shot prompts (paper §2.3): the filled template, then "?", then " Answer:", e.g.
 * "The CEO of NVIDIA is? Answer:". One prompt per triple × template, triple-major.
 */

import { DataError, SUBJECT_SLOT } from './relation.ts';
import type { Triple } from './split.ts';

export const ANSWER_SUFFIX = '? Answer:';

export interface Prompt {
  relation: string;
  /** Row of the triple in the relation's `samples`. */
  row: number;
  subject: string;
  object: string;
  /** Index into the template list the prompt was built from (originals or eva-2). */
  templateIndex: number;
  template: string;
  text: string;
}

export interface PromptOptions {
  /**
   * Appended to the filled template. Default "? Answer:" (English, §2.3); the translated
   * prompts of §2.7 use none, so pass "" for those.
   */
  suffix?: string;
}

/** Put `subject` into the single "{}" of `template`. */
export function fillTemplate(template: string, subject: string): string {
  const slots = template.split(SUBJECT_SLOT).length - 1;
  if (slots !== 1) {
    throw new DataError(`template ${JSON.stringify(template)}: expected exactly one "${SUBJECT_SLOT}", found ${slots}`, undefined, 'template');
  }
  // A replacer function, because a string replacement would expand "$&", "$'" etc. inside the subject.
  return template.replace(SUBJECT_SLOT, () => subject);
}

export function buildPrompts(triples: readonly Triple[], templates: readonly string[], opts: PromptOptions = {}): Prompt[] {
  const suffix = opts.suffix ?? ANSWER_SUFFIX;
  const out: Prompt[] = [];
  for (const t of triples) {
    templates.forEach((template, templateIndex) => {
      out.push({
        relation: t.relation,
        row: t.row,
        subject: t.subject,
        object: t.object,
        templateIndex,
        template,
        text: fillTemplate(template, t.subject) + suffix,
      });
    });
  }
  return out;
}
