import { type Exemplar, type FewShotShape, paperShape, type QueryEnding, renderFewShot } from '../eval/prompts';
import type { LabeledPool } from '../eval/tasks';
import { drawFewShot } from './few-shot';
import { SeededRandom } from './random';
import { drawSymbols, type SymbolKind, type SymbolSet } from './symbols';
import type { InstructionExample } from './template';

/**
 * Symbol tuning (Wei et al., 2023): few-shot prompts from any labelled classification data whose labels are
 * replaced by arbitrary symbols, so the mapping can only be learnt from the exemplars in the prompt. The
 * paper tuned on 10-shot prompts, 5 per class. Each example is {question: the few-shot prompt, response:
 * the query's symbol}, ready for the instruction template.
 */

/** Input/output line prefixes for the 'varied' shapes; Question/Answer is the paper's evaluation shape. */
export const SYMBOL_TUNING_PREFIXES: ReadonlyArray<readonly [string, string]> = [
  ['Question', 'Answer'],
  ['Input', 'Symbol'],
  ['Input', 'Label'],
  ['Input', 'Output'],
  ['Sentence', 'Label'],
  ['Text', 'Category'],
  ['Q', 'A'],
  ['Student', 'Teacher'],
];

export interface SymbolTuningOptions {
  seed: number;
  /** Number of prompts. */
  count: number;
  /** Exemplars per class (default 5). */
  perClass?: number;
  /**
   * Which half of the symbol space: 'tuning' for training data (default), 'evaluation' for held-out prompts
   * whose symbols the model never saw in tuning.
   */
  symbolSet?: SymbolSet;
  kinds?: readonly SymbolKind[];
  /** 'none' (default), 'include' (pools without an instruction get none), or 'mixed' (half the prompts). */
  instruction?: 'none' | 'include' | 'mixed';
  /** 'paper': always the paper's Question/Answer blocks; 'varied': a prefix pair per prompt (default). */
  shapes?: 'paper' | 'varied';
  /** Default 'paper' (the query block ends "Answer: \n", as at evaluation time). */
  queryEnding?: QueryEnding;
}

export interface SymbolTuningExample extends InstructionExample {
  id: string;
  /** The pool the prompt came from. */
  source: string;
  /** Class -> the symbol that stands for it in this prompt. */
  symbols: Record<string, string>;
  shape: FewShotShape;
}

export function generateSymbolTuningData(pools: readonly LabeledPool[], options: SymbolTuningOptions): SymbolTuningExample[] {
  if (pools.length === 0) throw new Error('symbol tuning needs at least one labelled pool');
  if (!Number.isInteger(options.count) || options.count < 1) throw new Error(`count must be a positive integer, got ${options.count}`);
  const perClass = options.perClass ?? 5;
  const set = options.symbolSet ?? 'tuning';
  const instructionMode = options.instruction ?? 'none';
  const out: SymbolTuningExample[] = [];
  for (let n = 0; n < options.count; n++) {
    // Round-robin over pools: each contributes equally, whatever their sizes.
    const pool = pools[n % pools.length];
    const rng = SeededRandom.from(options.seed, 'symbol-tuning', set, pool.id, n);
    const draw = drawFewShot(pool, rng, perClass, 'balanced');
    const avoid = [...Object.values(pool.labelWords), ...Object.values(pool.flippedWords)];
    const symbols = drawSymbols(rng, pool.classes.length, { set, kinds: options.kinds, avoid });
    const symbolOf: Record<string, string> = Object.fromEntries(pool.classes.map((c, k) => [c, symbols[k]]));
    const exemplars: Exemplar[] = rng.shuffle(draw.exemplars.map((e) => ({ text: e.text, label: symbolOf[e.label] })));
    const withInstruction =
      pool.instruction !== undefined && (instructionMode === 'include' || (instructionMode === 'mixed' && rng.int(0, 1) === 1));
    let shape: FewShotShape;
    if ((options.shapes ?? 'varied') === 'paper') {
      shape = paperShape(withInstruction ? 'instruction_symbol' : 'no_instruction_symbol', pool.instruction ?? '');
    } else {
      // Skip prefixes that start a line inside the texts (RTE's texts hold "\nQuestion: "): blocks stay unambiguous.
      const texts = [draw.query, ...draw.exemplars].map((e) => `\n${e.text}`);
      const clean = SYMBOL_TUNING_PREFIXES.filter(([a, b]) => !texts.some((t) => t.includes(`\n${a}:`) || t.includes(`\n${b}:`)));
      const [inputPrefix, outputPrefix] = rng.pick(clean.length > 0 ? clean : SYMBOL_TUNING_PREFIXES);
      shape = { inputPrefix, outputPrefix };
      if (withInstruction) shape.instruction = pool.instruction;
    }
    out.push({
      id: `symbol-tuning/${set}/${pool.id}/${n}`,
      source: pool.id,
      question: renderFewShot(shape, exemplars, draw.query.text, options.queryEnding ?? 'paper'),
      response: symbolOf[draw.query.label],
      symbols: symbolOf,
      shape,
    });
  }
  return out;
}
