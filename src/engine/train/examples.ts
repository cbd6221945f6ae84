import type { Tokenizer } from '../data/summary';
import { tokenizeInstructionData } from '../data/template';
import type { TrainingExample } from '../store/datasets';
import type { TrainExample } from './batches';

/**
 * Prepared rows (prompt + completion, exactly the templated text) to the token ids and labels a run
 * trains on, the same way for the worker's runs and the CLI: each row is tokenised whole, then cut at the
 * maximum length, so that what a cut loses is known and counted.
 */

export interface TrainingExamples {
  examples: TrainExample[];
  /** Tokens of the kept examples. */
  tokens: number;
  /** Rows left out or cut, and why. */
  skipped: { empty: number; noLoss: number; truncated: number; answerCut: number };
}

export interface TrainingExamplesOptions {
  maxLength: number;
  /** Loss on every token (the paper) or on the completion only. */
  lossOn: 'all' | 'response';
  /** Appended to every row (Phi-2's <|endoftext|>) so the model learns to stop. */
  eosTokenId?: number;
  /** Each row ends with its answer (symbol-tuning prompts): a row the maximum length would cut teaches nothing and is left out. */
  answerLast?: boolean;
  onProgress?(done: number, total: number): void;
}

const PROGRESS_ROWS = 256;
/** Tokenised whole, then cut here, so that a row's length before the cut is known. */
const UNCUT = 2 ** 30;

export async function tokenizeTrainingRows(rows: readonly TrainingExample[], tokenizer: Tokenizer, o: TrainingExamplesOptions): Promise<TrainingExamples> {
  const examples: TrainExample[] = [];
  const skipped = { empty: 0, noLoss: 0, truncated: 0, answerCut: 0 };
  let tokens = 0;
  const eos = o.eosTokenId;
  for (let at = 0; at < rows.length; at += PROGRESS_ROWS) {
    o.onProgress?.(at, rows.length);
    const part = rows.slice(at, at + PROGRESS_ROWS).map((r) => ({ question: r.prompt, response: r.completion }));
    // prompt + completion is the templated text: the identity template reproduces it.
    const t = tokenizeInstructionData(part, tokenizer, '{question}{response}', { maxTokens: UNCUT, lossOn: o.lossOn, eosTokenId: eos });
    for (const whole of t.rows) {
      const text = whole.input_ids.length - (eos === undefined ? 0 : 1);
      if (o.answerLast && text > o.maxLength) {
        skipped.answerCut++;
        continue;
      }
      if (whole.input_ids.length > o.maxLength) skipped.truncated++;
      const row = { input_ids: whole.input_ids.slice(0, o.maxLength), labels: whole.labels.slice(0, o.maxLength) };
      if (row.input_ids.length < 2) {
        skipped.empty++;
        continue;
      }
      // A label only counts at position 1 or later (position 0 has nothing before it to predict from).
      if (!row.labels.some((l, i) => i > 0 && l !== -100)) {
        skipped.noLoss++;
        continue;
      }
      examples.push(row);
      tokens += row.input_ids.length;
    }
    // Let other messages (a pause, a cancel) in between chunks of a large dataset.
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  return { examples, tokens, skipped };
}

/** FNV-1a over every example's ids and labels: a resumed run must see exactly the data it started with. */
export function examplesFingerprint(examples: readonly TrainExample[]): string {
  let h = 0x811c9dc5;
  const mix = (v: number) => {
    h = Math.imul(h ^ (v & 0xffff), 0x01000193);
    h = Math.imul(h ^ (v >>> 16), 0x01000193);
  };
  for (const e of examples) {
    mix(e.input_ids.length);
    for (const id of e.input_ids) mix(id);
    for (const l of e.labels) mix(l);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}
