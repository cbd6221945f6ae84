/** The suites the paper ran, plus the user's own labelled datasets. */
export type SuiteKind = 'in_context' | 'flipped' | 'bigbench' | 'user';

/**
 * One evaluation prompt. The runner generates from `prompt` (wrapped with wrapPaperPrompt for the paper's
 * setting) and scores the generation against `target` (scoring.ts); where `labels` is present, rank
 * classification over those candidates is possible too.
 */
export interface EvalItem {
  /** Unique within a run, stable for a given seed: "<source>/<suite>/<dataset>/<format>/<n>". */
  id: string;
  suite: SuiteKind;
  /** teh, teo, subj, climate; add_elements, ..., turing; or the user's dataset id. */
  dataset: string;
  /** instruction_label, instruction_symbol, no_instruction_symbol, flipped, or 3_shot for BIG-bench. */
  format: string;
  prompt: string;
  target: string;
  /** Candidate answers for rank classification (classification items only), in class order. */
  labels?: string[];
}

/** An automatic verdict on a generation. */
export interface Verdict {
  correct: boolean;
  /** The part of the generation that was compared with the target. */
  extracted: string;
}
