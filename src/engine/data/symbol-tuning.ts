import { type FewShotShape, paperShape, type QueryEnding, renderFewShot } from './prompts';
import type { LabeledPool } from './pools';
import { drawFewShot } from './few-shot';
import { SeededRandom } from '../random';
import { drawSymbols, type SymbolKind, type SymbolSet } from './symbols';
import type { InstructionExample } from '../../shared/template';
import { SYMBOL_TUNING_PER_CLASS } from '../../shared/symbol-kinds';

/**
 * Symbol tuning (Wei et al., 2023): few-shot prompts from any labelled classification data whose labels are
 * replaced by arbitrary symbols, so the mapping can only be learnt from the exemplars in the prompt. Each
 * example is {question: the few-shot prompt, response: the query's symbol}, ready for the instruction template.
 *
 * By default each prompt holds SYMBOL_TUNING_PER_CLASS exemplars of every class: the paper's text speaks of
 * "four shots" (section 7.4), and the data it tuned on (tasksource/icl-symbol-tuning-instruct) holds four
 * exemplars per class. With a `fit`, no prompt is cut: a prompt whose whole training text would pass the
 * maximum length gets fewer exemplars per class (the same number for every class, at least one), and one that
 * does not fit even with one exemplar per class is dropped and reported. Training then never truncates a
 * prompt's query or its answer.
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

/** How long a prompt may be, and how its length is measured. */
export interface PromptFit {
  /** The longest training text allowed, in the unit `length` counts. */
  maxLength: number;
  /** The length of the whole training text of an example (prompt, answer and the template around them). */
  length(example: InstructionExample): number;
}

export interface SymbolTuningOptions {
  seed: number;
  /** Number of prompts drawn (fewer come out when `fit` drops some). */
  count: number;
  /** Exemplars per class (default SYMBOL_TUNING_PER_CLASS); with `fit`, the most a prompt gets. */
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
  /** Fit every prompt within a maximum length by taking fewer exemplars (never by cutting). */
  fit?: PromptFit;
}

export interface SymbolTuningExample extends InstructionExample {
  id: string;
  /** The pool the prompt came from. */
  source: string;
  /** Class -> the symbol that stands for it in this prompt. */
  symbols: Record<string, string>;
  shape: FewShotShape;
  /** Exemplars of each class in this prompt. */
  perClass: number;
}

/** A prompt left out because even one exemplar per class made it too long. */
export interface DroppedPrompt {
  id: string;
  source: string;
  /** Its length with one exemplar per class, in the fit's unit. */
  length: number;
}

export interface SymbolTuningData {
  examples: SymbolTuningExample[];
  /** Prompts given fewer exemplars per class than asked, to fit. */
  shortened: number;
  dropped: DroppedPrompt[];
  /** Exemplars per class -> how many prompts have that many. */
  perClassCounts: Record<number, number>;
}

export function generateSymbolTuningData(pools: readonly LabeledPool[], options: SymbolTuningOptions): SymbolTuningData {
  if (pools.length === 0) throw new Error('symbol tuning needs at least one labelled pool');
  if (!Number.isInteger(options.count) || options.count < 1) throw new Error(`count must be a positive integer, got ${options.count}`);
  const perClass = options.perClass ?? SYMBOL_TUNING_PER_CLASS;
  const set = options.symbolSet ?? 'tuning';
  const instructionMode = options.instruction ?? 'none';
  const out: SymbolTuningData = { examples: [], shortened: 0, dropped: [], perClassCounts: {} };
  for (let n = 0; n < options.count; n++) {
    // Round-robin over pools: each contributes equally, whatever their sizes.
    const pool = pools[n % pools.length];
    const id = `symbol-tuning/${set}/${pool.id}/${n}`;
    const rng = SeededRandom.from(options.seed, 'symbol-tuning', set, pool.id, n);
    const draw = drawFewShot(pool, rng, perClass, 'balanced');
    const avoid = [...Object.values(pool.labelWords), ...Object.values(pool.flippedWords)];
    const symbols = drawSymbols(rng, pool.classes.length, { set, kinds: options.kinds, avoid });
    const symbolOf: Record<string, string> = Object.fromEntries(pool.classes.map((c, k) => [c, symbols[k]]));
    // A shorter prompt keeps the first k exemplars of every class in this shuffled order, so the random
    // draws never depend on the fit: rank = place among the exemplars of its class.
    const shuffled = rng.shuffle(draw.exemplars.map((e) => ({ text: e.text, label: symbolOf[e.label] })));
    const seen = new Map<string, number>();
    const exemplars = shuffled.map((e) => {
      const rank = seen.get(e.label) ?? 0;
      seen.set(e.label, rank + 1);
      return { ...e, rank };
    });
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
    const response = symbolOf[draw.query.label];
    const render = (k: number): InstructionExample => ({
      question: renderFewShot(shape, k === perClass ? exemplars : exemplars.filter((e) => e.rank < k), draw.query.text, options.queryEnding ?? 'paper'),
      response,
    });
    let k = perClass;
    let example = render(k);
    if (options.fit) {
      const { maxLength, length } = options.fit;
      // Removing a block never lengthens the text, so the first k that fits, from the top, is the most that fit.
      while (k > 1 && length(example) > maxLength) example = render(--k);
      if (k === 1 && length(example) > maxLength) {
        out.dropped.push({ id, source: pool.id, length: length(example) });
        continue;
      }
    }
    if (k < perClass) out.shortened++;
    out.perClassCounts[k] = (out.perClassCounts[k] ?? 0) + 1;
    out.examples.push({ id, source: pool.id, ...example, symbols: symbolOf, shape, perClass: k });
  }
  return out;
}
