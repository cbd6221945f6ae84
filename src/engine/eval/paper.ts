import { SeededRandom } from '../random';
import { BIG_BENCH_PREFIXES, type BigBenchPair, type ClassificationFormat, CLASSIFICATION_FORMATS, type Exemplar, paperShape, PAPER_FORMATS, usesInstruction } from '../data/prompts';
import { DataFormatError } from '../data/pools';
import type { EvalItem, SuiteKind } from './types';

/**
 * The paper's own 730 evaluation prompts (public/data/paper/prompts.jsonl) and hand-scored results
 * (public/data/paper/results.json): parsing, the replication item list, and the reference numbers.
 */

export interface PaperPromptRow {
  suite: 'in_context' | 'flipped' | 'bigbench';
  format: string;
  dataset: string;
  prompt: string;
  target: string;
}

/** The paper's adapters on the Hub, by the model names its results use (the base model is "phi-2"). */
export const PAPER_MODEL_OF_REPO: Readonly<Record<string, string>> = {
  'ChunB1/phi-2_OpenOrca_cot_only': 'flan-phi-2',
  'ChunB1/phi-2_OpenOrca_cot_only_symbol': 'flan-phi-2-symbol',
};

export const BIG_BENCH_DATASETS = ['add_elements', 'input_independent', 'modify_the_list', 'remove_elements', 'miscellaneous', 'turing'] as const;
export type BigBenchDataset = (typeof BIG_BENCH_DATASETS)[number];

export function parsePaperPrompts(jsonl: string): PaperPromptRow[] {
  const rows: PaperPromptRow[] = [];
  jsonl.split('\n').forEach((line, k) => {
    if (line.trim() === '') return;
    const where = `paper/prompts.jsonl line ${k + 1}`;
    let v: Record<string, unknown>;
    try {
      v = JSON.parse(line);
    } catch (err) {
      throw new DataFormatError(`${where}: ${(err as Error).message}`);
    }
    const { suite, format, dataset, prompt, target } = v;
    if (suite !== 'in_context' && suite !== 'flipped' && suite !== 'bigbench') throw new DataFormatError(`${where}: unknown suite ${String(suite)}`);
    for (const [name, value] of Object.entries({ format, dataset, prompt, target })) {
      if (typeof value !== 'string') throw new DataFormatError(`${where}: "${name}" must be a string`);
    }
    rows.push({ suite, format: format as string, dataset: dataset as string, prompt: prompt as string, target: target as string });
  });
  return rows;
}

/**
 * The target to score against. The paper's export lost the opening quote of every simple-Turing-concept
 * target ("00'" for '00'; "'" for the empty output ''), while its prompts show outputs quoted on both sides:
 * the quote is restored so a correct generation can match.
 */
export function paperTarget(row: Pick<PaperPromptRow, 'dataset' | 'target'>): string {
  if (row.dataset === 'turing' && /^[01]*'$/.test(row.target)) return `'${row.target}`;
  return row.target;
}

/** The 730 prompts as evaluation items, verbatim, in file order; ids "paper/<suite>/<dataset>/<format>/<n>". */
export function paperItems(rows: readonly PaperPromptRow[]): EvalItem[] {
  const seen = new Map<string, number>();
  return rows.map((row) => {
    const group = `${row.suite}/${row.dataset}/${row.format}`;
    const n = seen.get(group) ?? 0;
    seen.set(group, n + 1);
    const item: EvalItem = {
      id: `paper/${group}/${n}`,
      suite: row.suite as SuiteKind,
      dataset: row.dataset,
      format: row.format,
      prompt: row.prompt,
      target: paperTarget(row),
    };
    if (row.suite !== 'bigbench') {
      const parsed = parseClassificationPrompt(row.prompt, row.format as ClassificationFormat);
      const labels = [...new Set(parsed.exemplars.map((e) => e.label))];
      if (!labels.includes(item.target)) labels.push(item.target);
      item.labels = labels;
    }
    return item;
  });
}

/**
 * A stratified sample of the paper's items: `perGroup` of each dataset and format (of each BIG-bench
 * task), drawn with the seed, kept in file order with their ids, so a sample's results line up with a
 * run of all 730. Groups smaller than perGroup are taken whole.
 */
export function samplePaperItems(items: readonly EvalItem[], perGroup: number, seed: number): EvalItem[] {
  if (!Number.isInteger(perGroup) || perGroup < 1) throw new DataFormatError(`the sample needs a whole number of items per group of 1 or more, got ${perGroup}`);
  const groups = new Map<string, number[]>();
  items.forEach((item, k) => {
    const key = referenceKey(item.suite, item.dataset, item.format);
    groups.set(key, [...(groups.get(key) ?? []), k]);
  });
  const keep = new Set<number>();
  for (const [key, members] of groups) {
    const picked = perGroup >= members.length ? members.map((_, j) => j) : SeededRandom.from(seed, 'paper-sample', key).sampleIndices(members.length, perGroup);
    for (const j of picked) keep.add(members[j]);
  }
  return items.filter((_, k) => keep.has(k));
}

export interface ParsedClassificationPrompt {
  instruction?: string;
  exemplars: Exemplar[];
  query: string;
}

/** Splits one of the paper's few-shot classification prompts into exemplars and query. */
export function parseClassificationPrompt(prompt: string, format: ClassificationFormat): ParsedClassificationPrompt {
  if (!CLASSIFICATION_FORMATS.includes(format)) throw new DataFormatError(`unknown classification format "${format}"`);
  const { inputPrefix: inP, outputPrefix: outP } = paperShape(format, '');
  const withInstruction = usesInstruction(format);
  if (!prompt.startsWith(`${inP}: `) || !prompt.endsWith(`\n${outP}: \n`)) {
    throw new DataFormatError(`not a ${format} prompt: it must start with "${inP}: " and end with "${outP}: \\n"`);
  }
  const blocks = prompt.slice(inP.length + 2).split(`\n${inP}: `);
  let instruction: string | undefined;
  const parsed = blocks.map((block, k) => {
    const last = k === blocks.length - 1;
    const sep = block.lastIndexOf(`\n${outP}: `);
    if (sep < 0) throw new DataFormatError(`block ${k + 1} of a ${format} prompt has no "${outP}: " line`);
    let text = block.slice(0, sep);
    const label = block.slice(sep + outP.length + 3);
    if (withInstruction) {
      const nl = text.indexOf('\n');
      const ins = text.slice(0, nl);
      if (nl < 0 || (instruction !== undefined && ins !== instruction)) throw new DataFormatError(`block ${k + 1} does not repeat the instruction`);
      instruction = ins;
      text = text.slice(nl + 1);
    }
    return { text, label: last ? label.slice(0, -1) : label };
  });
  const query = parsed.pop()!;
  if (query.label !== '') throw new DataFormatError('the query block must end with an empty answer');
  const out: ParsedClassificationPrompt = { exemplars: parsed, query: query.text };
  if (instruction !== undefined) out.instruction = instruction;
  return out;
}

export interface ParsedBigBenchPrompt {
  inputPrefix: string;
  outputPrefix: string;
  demos: BigBenchPair[];
  query: string;
}

/** Splits one of the paper's 3-shot BIG-bench prompts into its prefix pair, demonstrations and query. */
export function parseBigBenchPrompt(prompt: string): ParsedBigBenchPrompt {
  const pair = BIG_BENCH_PREFIXES.find(([p, q]) => prompt.startsWith(`${p}: `) && prompt.endsWith(`\n${q}:`));
  if (!pair) throw new DataFormatError('not a BIG-bench prompt: unknown input/output prefixes');
  const [p, q] = pair;
  const blocks = prompt.split('\n\n');
  const pairs = blocks.map((block, k) => {
    const lines = block.split('\n');
    if (lines.length !== 2 || !lines[0].startsWith(`${p}: `) || !lines[1].startsWith(`${q}:`)) {
      throw new DataFormatError(`block ${k + 1} of a BIG-bench prompt is not "${p}: …\\n${q}: …"`);
    }
    return { input: lines[0].slice(p.length + 2), output: lines[1].slice(q.length + 2) };
  });
  const query = pairs.pop()!;
  return { inputPrefix: p, outputPrefix: q, demos: pairs, query: query.input };
}

/** The paper's hand-scored numbers, indexed for lookup. */
export interface PaperReference {
  /** Models in the order results.json lists them. */
  models: string[];
  /** key "<suite>/<dataset>/<format>" -> model -> {correct, total}. */
  cells: Map<string, Map<string, { correct: number; total: number }>>;
}

export function referenceKey(suite: string, dataset: string, format: string): string {
  return `${suite}/${dataset}/${format}`;
}

export function parsePaperResults(json: string): PaperReference {
  const root = JSON.parse(json) as Record<string, unknown>;
  const ic = root.in_context_correct_of_25 as Record<string, unknown> | undefined;
  const bb = root.bigbench_correct as Record<string, unknown> | undefined;
  if (!ic || !bb) throw new DataFormatError('results.json: expected in_context_correct_of_25 and bigbench_correct');
  const cells = new Map<string, Map<string, { correct: number; total: number }>>();
  const models: string[] = [];
  const put = (key: string, model: string, correct: unknown, total: number) => {
    if (typeof correct !== 'number' || !Number.isInteger(correct) || correct < 0 || correct > total) {
      throw new DataFormatError(`results.json: bad count for ${model} at ${key}`);
    }
    if (!models.includes(model)) models.push(model);
    let cell = cells.get(key);
    if (!cell) cells.set(key, (cell = new Map()));
    cell.set(model, { correct, total });
  };
  const icOrder = ic.order as string[];
  for (const format of PAPER_FORMATS) {
    const byModel = ic[format] as Record<string, number[]> | undefined;
    if (!byModel) throw new DataFormatError(`results.json: no in-context numbers for ${format}`);
    const suite = format === 'flipped' ? 'flipped' : 'in_context';
    for (const [model, counts] of Object.entries(byModel)) {
      icOrder.forEach((dataset, k) => put(referenceKey(suite, dataset, format), model, counts[k], 25));
    }
  }
  const bbOrder = bb.order as string[];
  const n = bb.n as number[];
  for (const [model, counts] of Object.entries(bb)) {
    if (model === 'order' || model === 'n') continue;
    bbOrder.forEach((dataset, k) => put(referenceKey('bigbench', dataset, '3_shot'), model, (counts as number[])[k], n[k]));
  }
  return { models, cells };
}
