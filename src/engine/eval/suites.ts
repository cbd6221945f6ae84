import { drawFewShot } from '../data/few-shot';
import { SeededRandom } from '../random';
import { drawSymbols } from '../data/symbols';
import { BIG_BENCH_DATASETS, type BigBenchDataset, paperTarget, parseBigBenchPrompt, type PaperPromptRow } from './paper';
import {
  type ClassificationFormat,
  CLASSIFICATION_FORMATS,
  type Exemplar,
  IN_CONTEXT_FORMATS,
  PAPER_FORMATS,
  paperShape,
  renderBigBench,
  renderFewShot,
  usesInstruction,
  usesSymbols,
} from '../data/prompts';
import type { LabeledPool } from '../data/pools';
import type { EvalItem, SuiteKind } from './types';

/**
 * Evaluation suites, generated deterministically from a seed.
 *
 * Classification (in-context and flipped): item n of a dataset is one draw of a query and 4 exemplars per
 * class from the dataset's pool (never the query), rendered in every requested format with its own shuffle
 * and, for symbol formats, two fresh symbols from the evaluation half of the symbol space. As in the paper,
 * the formats of item n share the same query and exemplars, so formats compare on equal footing. Each item's
 * randomness is keyed by (seed, dataset, n, format): asking for more items never changes the first ones.
 *
 * BIG-bench: the tasks' underlying functions are not part of the data, so no new functions can be made up;
 * the suite uses the paper's 330 prompts. Variant 'resampled' makes new prompts from the same functions:
 * each paper prompt shows several input/output pairs of one function (its demonstrations and the query with
 * its target), and any one of them can be the query with the others, in any order, as demonstrations.
 */

export interface ClassificationSuiteOptions {
  seed: number;
  /** Items per dataset and format (the paper: 25). */
  count: number;
  /** Default: the paper's three in-context formats and flipped. */
  formats?: readonly ClassificationFormat[];
  /** Exemplars per class (the paper: 4, so 8 for two classes). */
  perClass?: number;
  /** Suite name for the items; default 'in_context' (and 'flipped' for the flipped format), 'user' for uploads. */
  suite?: SuiteKind;
}

export function classificationItems(pools: readonly LabeledPool[], options: ClassificationSuiteOptions): EvalItem[] {
  const formats = options.formats ?? PAPER_FORMATS;
  const perClass = options.perClass ?? 4;
  checkCount(options.count);
  for (const f of formats) if (!CLASSIFICATION_FORMATS.includes(f)) throw new Error(`unknown classification format "${f}"`);
  const items: EvalItem[] = [];
  for (const pool of pools) {
    for (let n = 0; n < options.count; n++) {
      const draw = drawFewShot(pool, SeededRandom.from(options.seed, 'classification', pool.id, n), perClass, 'uniform');
      for (const format of formats) {
        if (usesInstruction(format) && !pool.instruction) {
          throw new Error(`${pool.name} has no instruction, so it cannot be rendered as ${format}`);
        }
        const rng = SeededRandom.from(options.seed, 'classification', pool.id, n, format);
        const words = classWords(pool, format, rng);
        const exemplars: Exemplar[] = rng.shuffle(draw.exemplars.map((e) => ({ text: e.text, label: words[e.label] })));
        const suite: SuiteKind = options.suite ?? (format === 'flipped' ? 'flipped' : 'in_context');
        items.push({
          id: `gen/${suite}/${pool.id}/${format}/${n}`,
          suite,
          dataset: pool.id,
          format,
          prompt: renderFewShot(paperShape(format, pool.instruction ?? ''), exemplars, draw.query.text),
          target: words[draw.query.label],
          labels: pool.classes.map((c) => words[c]),
        });
      }
    }
  }
  return items;
}

/** The paper's in-context suite: three formats, 25 items each, per dataset. */
export function inContextItems(pools: readonly LabeledPool[], seed: number, count = 25): EvalItem[] {
  return classificationItems(pools, { seed, count, formats: IN_CONTEXT_FORMATS });
}

/** The paper's flipped-label suite: no instruction, Input/Symbol, exemplars and query labelled with swapped words. */
export function flippedItems(pools: readonly LabeledPool[], seed: number, count = 25): EvalItem[] {
  return classificationItems(pools, { seed, count, formats: ['flipped'] });
}

/** Class -> the word the prompt shows: label words, flipped words, or fresh evaluation symbols. */
function classWords(pool: LabeledPool, format: ClassificationFormat, rng: SeededRandom): Record<string, string> {
  if (format === 'flipped') return pool.flippedWords;
  if (!usesSymbols(format)) return pool.labelWords;
  // Symbols never equal a real label word of the task (an uppercase "HATE" would leak the label).
  const avoid = [...Object.values(pool.labelWords), ...Object.values(pool.flippedWords)];
  const symbols = drawSymbols(rng, pool.classes.length, { set: 'evaluation', avoid });
  return Object.fromEntries(pool.classes.map((c, k) => [c, symbols[k]]));
}

export interface BigBenchSuiteOptions {
  seed: number;
  /** Items per category; default: all of the paper's (30, 30, 120, 90, 30, 30). */
  count?: number;
  categories?: readonly BigBenchDataset[];
  /** 'paper': the paper's prompts verbatim; 'resampled': a different pair as the query, demonstrations shuffled. */
  variant?: 'paper' | 'resampled';
  /**
   * An instruction line put before the demonstrations (prompts.ts BIG_BENCH_INSTRUCTION is one); the
   * paper's prompts have none. Items with one get ids under "paper+instruction/" or "gen+instruction/".
   */
  instruction?: string;
}

export function bigBenchItems(paperRows: readonly PaperPromptRow[], options: BigBenchSuiteOptions): EvalItem[] {
  const categories = options.categories ?? BIG_BENCH_DATASETS;
  const variant = options.variant ?? 'paper';
  const instruction = options.instruction?.trim() ? options.instruction.trim() : undefined;
  const source = `${variant === 'paper' ? 'paper' : 'gen'}${instruction ? '+instruction' : ''}`;
  if (options.count !== undefined) checkCount(options.count);
  const items: EvalItem[] = [];
  for (const category of categories) {
    if (!BIG_BENCH_DATASETS.includes(category)) throw new Error(`unknown BIG-bench category "${category}"`);
    const rows = paperRows.filter((r) => r.suite === 'bigbench' && r.dataset === category);
    if (rows.length === 0) throw new Error(`the paper's prompts have no BIG-bench items for "${category}"`);
    const count = Math.min(options.count ?? rows.length, rows.length);
    // A seeded subset, kept in the paper's order so results line up with its notebook.
    const chosen = SeededRandom.from(options.seed, 'bigbench', category)
      .sampleIndices(rows.length, count)
      .sort((a, b) => a - b);
    for (const k of chosen) {
      const row = rows[k];
      const base = { suite: 'bigbench' as const, dataset: category, format: row.format };
      if (variant === 'paper') {
        const prompt = instruction ? `${instruction}\n\n${row.prompt}` : row.prompt;
        items.push({ id: `${source}/bigbench/${category}/${row.format}/${k}`, ...base, prompt, target: paperTarget(row) });
        continue;
      }
      const parsed = parseBigBenchPrompt(row.prompt);
      const pairs = [...parsed.demos, { input: parsed.query, output: paperTarget(row) }];
      const rng = SeededRandom.from(options.seed, 'bigbench-resampled', category, k);
      const q = rng.int(0, pairs.length - 1);
      const query = pairs[q];
      const demos = rng.shuffle(pairs.filter((_, i) => i !== q));
      items.push({
        id: `${source}/bigbench/${category}/${row.format}/${k}`,
        ...base,
        prompt: renderBigBench(parsed.inputPrefix, parsed.outputPrefix, demos, query.input, instruction),
        target: query.output,
      });
    }
  }
  return items;
}

function checkCount(count: number): void {
  if (!Number.isInteger(count) || count < 1) throw new Error(`item count must be a positive integer, got ${count}`);
}
