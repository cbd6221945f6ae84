/**
 * The paper's prompt shapes, character for character (test/unit/engine/eval/paper.test.ts rebuilds all 730 of
 * the paper's prompts with these functions).
 *
 * Few-shot classification, one block per exemplar and an open block for the query:
 *   {inputPrefix}: [{instruction}\n]{text}\n{outputPrefix}: {label}\n
 *   {inputPrefix}: [{instruction}\n]{query}\n{outputPrefix}: \n        <- a space, then the newline
 *   instruction_label      Question/Answer, instruction, the task's label words
 *   instruction_symbol     Question/Answer, instruction, two arbitrary symbols
 *   no_instruction_symbol  Question/Answer, no instruction, two arbitrary symbols (the prompts the paper ran)
 *   no_instruction_symbol_io  Input/Output, no instruction, two arbitrary symbols (the format as the
 *                          paper's appendix prints it; the paper's numbers are for the prompts it ran)
 *   flipped                Input/Symbol, no instruction, exemplars' and query's label words swapped
 *
 * BIG-bench (list functions 3-shot; simple Turing concepts 3 to 6 demonstrations), blank line between
 * blocks, no final newline:
 *   [{instruction}\n\n]{p}: {input}\n{q}: {output}\n\n  per demonstration, then  {p}: {query}\n{q}:
 *   with (p, q) one of Input/Label, Q/A, Question/Answer, Student/Teacher, User/Assistant, Input/Output.
 *   The prompts the paper ran have no instruction line; its section 4.2.2 shows one as an option.
 *
 * The model saw every prompt wrapped as `Instruct: {prompt}\nOutput:`, greedy, at most 50 new tokens.
 */

export interface Exemplar {
  text: string;
  label: string;
}

export type ClassificationFormat = 'instruction_label' | 'instruction_symbol' | 'no_instruction_symbol' | 'no_instruction_symbol_io' | 'flipped';

/** The paper's three in-context formats, as its prompts ran them. */
export const IN_CONTEXT_FORMATS: readonly ClassificationFormat[] = ['instruction_label', 'instruction_symbol', 'no_instruction_symbol'];
/** The formats the paper ran (its numbers exist for these). */
export const PAPER_FORMATS: readonly ClassificationFormat[] = [...IN_CONTEXT_FORMATS, 'flipped'];
/** Every format a suite can draw: the paper's, and the appendix's Input/Output variant of no instruction + symbol. */
export const CLASSIFICATION_FORMATS: readonly ClassificationFormat[] = ['instruction_label', 'instruction_symbol', 'no_instruction_symbol', 'no_instruction_symbol_io', 'flipped'];

export interface FewShotShape {
  inputPrefix: string;
  outputPrefix: string;
  /** Repeated on its own line at the top of every block when present. */
  instruction?: string;
}

/**
 * How the query block ends: 'paper' is the paper's `Answer: \n`; 'open' stops at `Answer:` so that a
 * completion (' Zujib') can follow, for training text.
 */
export type QueryEnding = 'paper' | 'open';

export function renderFewShot(shape: FewShotShape, exemplars: readonly Exemplar[], query: string, ending: QueryEnding = 'paper'): string {
  const head = (text: string) => `${shape.inputPrefix}: ${shape.instruction === undefined ? '' : `${shape.instruction}\n`}${text}\n`;
  let out = '';
  for (const e of exemplars) out += `${head(e.text)}${shape.outputPrefix}: ${e.label}\n`;
  return out + head(query) + (ending === 'paper' ? `${shape.outputPrefix}: \n` : `${shape.outputPrefix}:`);
}

/** The block layout of each of the paper's classification formats. */
export function paperShape(format: ClassificationFormat, instruction: string): FewShotShape {
  switch (format) {
    case 'instruction_label':
    case 'instruction_symbol':
      return { inputPrefix: 'Question', outputPrefix: 'Answer', instruction };
    case 'no_instruction_symbol':
      return { inputPrefix: 'Question', outputPrefix: 'Answer' };
    case 'no_instruction_symbol_io':
      return { inputPrefix: 'Input', outputPrefix: 'Output' };
    case 'flipped':
      return { inputPrefix: 'Input', outputPrefix: 'Symbol' };
  }
}

export function usesSymbols(format: ClassificationFormat): boolean {
  return format === 'instruction_symbol' || format === 'no_instruction_symbol' || format === 'no_instruction_symbol_io';
}

export function usesInstruction(format: ClassificationFormat): boolean {
  return format === 'instruction_label' || format === 'instruction_symbol';
}

export interface BigBenchPair {
  input: string;
  output: string;
}

export const BIG_BENCH_PREFIXES: ReadonlyArray<readonly [string, string]> = [
  ['Input', 'Label'],
  ['Q', 'A'],
  ['Question', 'Answer'],
  ['Student', 'Teacher'],
  ['User', 'Assistant'],
  ['Input', 'Output'],
];

/**
 * An instruction line for BIG-bench prompts where the user asks for one. The paper's prompts have none;
 * this wording is the app's (editable), stating the task as section 4.2.2 describes it.
 */
export const BIG_BENCH_INSTRUCTION = 'Each input maps to its output by the same rule. Apply that rule to the last input.';

export function renderBigBench(inputPrefix: string, outputPrefix: string, demos: readonly BigBenchPair[], query: string, instruction?: string): string {
  let out = instruction === undefined || instruction.trim() === '' ? '' : `${instruction.trim()}\n\n`;
  for (const d of demos) out += `${inputPrefix}: ${d.input}\n${outputPrefix}: ${d.output}\n\n`;
  return `${out}${inputPrefix}: ${query}\n${outputPrefix}:`;
}

/** The paper's runtime wrapper around every prompt. */
export function wrapPaperPrompt(prompt: string): string {
  return `Instruct: ${prompt}\nOutput:`;
}

/** The paper's decoding: greedy, at most 50 new tokens. */
export const PAPER_GENERATION = { decoding: 'greedy', maxNewTokens: 50 } as const;
