import { DEFAULT_MAX_TOKENS } from '../../shared/data-limits';
import { PAPER_TEMPLATE, parseTemplate, splitPromptCompletion, type InstructionExample } from '../../shared/template';
import type { Tokenizer } from './summary';

/**
 * Instruction-tuning text (a template from src/shared/template.ts) tokenised and truncated into
 * {input_ids, labels} rows for the causal-LM loss (labels are not shifted here: the loss shifts).
 */

/** The label value the loss ignores (PyTorch's CrossEntropyLoss ignore_index). */
export const IGNORE_INDEX = -100;

export interface TokenizeOptions {
  /** Truncate to this many tokens (default 512, the paper's). */
  maxTokens?: number;
  /** 'all' (the paper: loss on every token) or 'response' (labels -100 on the prompt part). */
  lossOn?: 'all' | 'response';
  /** Appended after the text when set (e.g. Phi-2's <|endoftext|>, 50256) so the model learns to stop. */
  eosTokenId?: number;
}

export interface TrainingRow {
  input_ids: number[];
  labels: number[];
}

export interface TokenizedDataset {
  rows: TrainingRow[];
  /** Rows longer than maxTokens, cut at the end. */
  truncatedRows: number;
  /** With lossOn 'response': rows whose response was cut off entirely, so they train nothing. */
  noLossRows: number;
  tokens: number;
  /** Tokens whose label is not -100. */
  trainedTokens: number;
}

/**
 * Tokenises instruction examples. For the response-only mask, the prompt part is the longest common prefix
 * of the tokens of the prompt alone and of the whole text: byte-level BPE merges across the boundary
 * (": " + "Hello" becomes ":" + " Hello"), so the prompt's own last token need not occur in the full text,
 * and a boundary token that carries response characters is trained on.
 */
export function tokenizeInstructionData(
  examples: readonly InstructionExample[],
  tokenizer: Tokenizer,
  templateSource: string = PAPER_TEMPLATE,
  options: TokenizeOptions = {},
): TokenizedDataset {
  const template = parseTemplate(templateSource);
  const maxTokens = options.maxTokens ?? DEFAULT_MAX_TOKENS;
  if (!Number.isInteger(maxTokens) || maxTokens < 2) throw new Error(`maxTokens must be an integer >= 2, got ${maxTokens}`);
  const lossOn = options.lossOn ?? 'all';
  const out: TokenizedDataset = { rows: [], truncatedRows: 0, noLossRows: 0, tokens: 0, trainedTokens: 0 };
  for (const example of examples) {
    const { prompt, completion } = splitPromptCompletion(template, example);
    let ids = tokenizer.encode(prompt + completion);
    if (options.eosTokenId !== undefined) ids.push(options.eosTokenId);
    let masked = 0;
    if (lossOn === 'response') {
      const promptIds = tokenizer.encode(prompt);
      while (masked < promptIds.length && masked < ids.length && promptIds[masked] === ids[masked]) masked++;
    }
    if (ids.length > maxTokens) {
      ids = ids.slice(0, maxTokens);
      out.truncatedRows++;
    }
    masked = Math.min(masked, ids.length);
    const labels = ids.slice();
    labels.fill(IGNORE_INDEX, 0, masked);
    if (lossOn === 'response' && masked === ids.length) out.noLossRows++;
    out.rows.push({ input_ids: ids, labels });
    out.tokens += ids.length;
    out.trainedTokens += ids.length - masked;
  }
  return out;
}
