/**
 * The prefix check of paper §2.5 (from the authors' dev fork): a generation counts as correct
 * if, after stripping whitespace and leading non-alphanumeric characters, it is a non-empty,
 * case-insensitive prefix of the gold object. With 2 generated tokens the model rarely
 * produces the whole object, so "prefix of the object" is the criterion, not equality.
 */

export interface AnswerCheckOptions {
  /**
   * Remove all whitespace from both strings before comparing. For zh/ja (paper §10 item 8):
   * objects are written without spaces but token decoding may insert them, or vice versa.
   */
  ignoreWhitespace?: boolean;
}

// "Alphanumeric" is any letter or digit of any script, so a Chinese or Cyrillic answer is kept.
const LEADING_NON_ALNUM = /^[^\p{L}\p{N}]+/u;
const WHITESPACE = /\s+/gu;

/** The response as compared: trimmed, leading non-alphanumerics removed, NFC. */
export function normalizeResponse(generated: string, opts: AnswerCheckOptions = {}): string {
  // NFC so that a decoded "é" (e + combining accent) matches a precomposed one in the data.
  let r = generated.normalize('NFC').trim().replace(LEADING_NON_ALNUM, '');
  if (opts.ignoreWhitespace) r = r.replace(WHITESPACE, '');
  return r;
}

export function isCorrectAnswer(generated: string, object: string, opts: AnswerCheckOptions = {}): boolean {
  const response = normalizeResponse(generated, opts);
  if (response === '') return false;
  let gold = object.normalize('NFC');
  if (opts.ignoreWhitespace) gold = gold.replace(WHITESPACE, '');
  return gold.toLowerCase().startsWith(response.toLowerCase());
}

/** The check options the paper's defaults imply for a language tag (zh/ja: no spaces). */
export function answerCheckOptionsFor(language: string): AnswerCheckOptions {
  const primary = language.toLowerCase().split('-')[0];
  return { ignoreWhitespace: ['zh', 'zho', 'ja', 'jpn'].includes(primary) };
}
