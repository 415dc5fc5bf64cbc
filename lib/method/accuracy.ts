/**
 * Accuracy as the paper measures it (§2.5): greedy-decode 2 tokens and count the answer correct
 * when the decoded text is a prefix of the gold object (isCorrectAnswer). Every accuracy in the
 * project — filtering P^det, the experiments, the organism's training probes and model card —
 * goes through gradeAnswers, so they all batch, mask and check answers the same way.
 */
import { isCorrectAnswer } from '../data/answer-check.ts';
import type { ModelRunner } from '../model/runner.ts';
import type { LlamaTokenizer } from '../tokenizer.ts';
import { greedyRows, type RunOptions } from './generation.ts';
import { NeuronSpace, type Ablation } from './neurons.ts';

export interface AnswerRow {
  /** Prompt token ids (with BOS). */
  ids: readonly number[];
  /** The gold object the answer must be a prefix of. */
  object: string;
  /** What this row does to neurons (global indices of the `space` option); absent or null: nothing. */
  ablation?: Ablation | null;
}

export interface GradedAnswer {
  /** The decoded greedy continuation. */
  output: string;
  correct: boolean;
}

export interface GradeOptions extends RunOptions {
  /** The neuron space the rows' ablations index (default: the model's FFN space). */
  space?: NeuronSpace;
}

/** Greedy answers (2 new tokens unless `maxNewTokens` says otherwise) of every row, graded, in row order. */
export async function gradeAnswers(model: ModelRunner, tok: LlamaTokenizer, rows: readonly AnswerRow[], opts: GradeOptions = {}): Promise<GradedAnswer[]> {
  const { space = NeuronSpace.forModel(model.config, 'ffn'), ...run } = opts;
  const tokens = await greedyRows(model, space, rows.map((r) => ({ ids: r.ids, ablation: r.ablation ?? null })), { ...run, maxNewTokens: run.maxNewTokens ?? 2 });
  return tokens.map((t, i) => {
    const output = tok.decode(t);
    return { output, correct: isCorrectAnswer(output, rows[i]!.object) };
  });
}

/** Share of correct answers; NaN for none (an accuracy of nothing is undefined, not 0). */
export function accuracyOf(answers: readonly { correct: boolean }[] | readonly boolean[]): number {
  if (answers.length === 0) return NaN;
  let n = 0;
  for (const a of answers) if (typeof a === 'boolean' ? a : a.correct) n++;
  return n / answers.length;
}
