/**
 * How often each automatic verdict agrees with the paper's hand scores, on the 495 generations of
 * shared/data/paper/hand_scores_dev.json beside the project (phi-2 and flan-phi-2; a row scored 0.5 by hand counts as a
 * disagreement). test/unit/engine/eval/answer.test.ts measures these and fails when they stop being true, so
 * the figures the page and the README quote stay the measured ones. Plain values, shared with the UI.
 */
export const HAND_SCORE_AGREEMENT = {
  rows: 495,
  answer: 483,
  strict: 466,
} as const;

/** "97.6%": agreeing rows of HAND_SCORE_AGREEMENT as a percentage with one decimal. */
export function agreementPercent(agreeing: number): string {
  return `${((100 * agreeing) / HAND_SCORE_AGREEMENT.rows).toFixed(1)}%`;
}
