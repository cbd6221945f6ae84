import { DEFAULT_MAX_TOKENS } from '../../shared/data-limits';
import type { Tokenizer } from './summary';

/**
 * Instruction-tuning text: a template with {question} and {response} placeholders, tokenised and truncated
 * into {input_ids, labels} rows for the causal-LM loss (labels are not shifted here: the loss shifts).
 */

/**
 * The paper's training template. (Its code has a typo, '### nOutput:', from a lost backslash; this is the
 * template the paper describes and meant.)
 */
export const PAPER_TEMPLATE = '### Instruct: {question}\n ### Output: {response}';

/** The label value the loss ignores (PyTorch's CrossEntropyLoss ignore_index). */
export const IGNORE_INDEX = -100;

export interface InstructionExample {
  question: string;
  response: string;
}

/** A template split around its placeholders: text = before + question + between + response + after. */
export interface InstructionTemplate {
  source: string;
  before: string;
  between: string;
  after: string;
}

export class TemplateError extends Error {
  override name = 'TemplateError';
}

/**
 * Validates a template: exactly one {question}, then exactly one {response}, and no other {name}
 * placeholder (a typo such as {answer} would otherwise be trained on literally).
 */
export function parseTemplate(source: string): InstructionTemplate {
  const found = [...source.matchAll(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g)];
  const unknown = found.filter((m) => m[1] !== 'question' && m[1] !== 'response').map((m) => m[0]);
  if (unknown.length > 0) {
    throw new TemplateError(`Unknown placeholder ${unknown.join(', ')}: a template may only use {question} and {response}.`);
  }
  const q = found.filter((m) => m[1] === 'question');
  const r = found.filter((m) => m[1] === 'response');
  if (q.length !== 1) throw new TemplateError(`The template needs {question} exactly once; it has it ${q.length} times.`);
  if (r.length !== 1) throw new TemplateError(`The template needs {response} exactly once; it has it ${r.length} times.`);
  const qAt = q[0].index as number;
  const rAt = r[0].index as number;
  if (rAt < qAt) throw new TemplateError('{response} must come after {question}: the model reads the question first.');
  return {
    source,
    before: source.slice(0, qAt),
    between: source.slice(qAt + '{question}'.length, rAt),
    after: source.slice(rAt + '{response}'.length),
  };
}

export function renderTemplate(template: InstructionTemplate, example: InstructionExample): string {
  return template.before + example.question + template.between + example.response + template.after;
}

/** The text up to the response (what the model is given) and the rest (what it learns to write). */
export function splitPromptCompletion(template: InstructionTemplate, example: InstructionExample): { prompt: string; completion: string } {
  return { prompt: template.before + example.question + template.between, completion: example.response + template.after };
}

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
