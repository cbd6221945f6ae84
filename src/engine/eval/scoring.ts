import { readAnswer, scoreAnswer, type AnswerContext } from './answer';
import { scoreStrict, strictSettled } from './strict';
import type { Verdict } from './types';

/**
 * Every item's generation gets two automatic verdicts, both kept with the run:
 *
 *   strict  the documented rule of strict.ts: the first line (or first bracketed list) after answer
 *           prefixes must equal the target exactly;
 *   answer  answer.ts: the answer read out as a careful human reader would (a restated query skipped,
 *           "9" for "[9]", "Hate." for "Hate", a list of both labels wrong), then compared. This is
 *           the default verdict tables show; neither is the paper's (it scored by hand).
 *
 * Rank classification (scoreByRank) picks the candidate label with the highest log-likelihood instead,
 * and a hand review (results.ts) may be added to any item.
 */

export type { Verdict } from './types';
export type { AnswerContext } from './answer';
export { scoreStrict } from './strict';
export { scoreAnswer } from './answer';

export type VerdictKind = 'answer' | 'strict';

export interface Verdicts {
  strict: Verdict;
  answer: Verdict;
}

export function scoreVerdicts(generation: string, target: string, context: AnswerContext = {}): Verdicts {
  return { strict: scoreStrict(generation, target), answer: scoreAnswer(generation, target, context) };
}

/**
 * True once neither verdict can change whatever the model generates next ("stop when answered"):
 * the strict rule's first line or list is complete and the answer rule has read all it reads.
 */
export function verdictsSettled(generation: string, target: string, context: AnswerContext = {}): boolean {
  return strictSettled(generation, target) && readAnswer(generation, target, context).settled;
}

export interface RankVerdict {
  correct: boolean;
  /** The chosen candidate. */
  predicted: string;
  predictedIndex: number;
}

/**
 * Rank classification: the candidate with the largest log-likelihood (of the candidate's tokens given the
 * prompt, summed) is the prediction. Ties go to the earlier candidate, so the result never depends on
 * floating-point noise in sorting.
 */
export function scoreByRank(labels: readonly string[], logLikelihoods: readonly number[], target: string): RankVerdict {
  if (labels.length === 0) throw new Error('rank classification needs at least one candidate label');
  if (labels.length !== logLikelihoods.length) {
    throw new Error(`rank classification got ${labels.length} labels but ${logLikelihoods.length} log-likelihoods`);
  }
  if (!labels.includes(target)) throw new Error(`the target "${target}" is not among the candidate labels (${labels.join(', ')})`);
  let best = 0;
  logLikelihoods.forEach((ll, k) => {
    if (Number.isNaN(ll)) throw new Error(`log-likelihood of candidate "${labels[k]}" is NaN`);
    if (ll > logLikelihoods[best]) best = k;
  });
  return { correct: labels[best] === target, predicted: labels[best], predictedIndex: best };
}
