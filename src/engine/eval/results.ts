import Papa from 'papaparse';
import type { PaperReference } from './paper';
import { referenceKey } from './paper';
import { wrapPaperPrompt } from '../data/prompts';
import { scoreByRank, scoreVerdicts, type Verdict } from './scoring';
import type { EvalItem } from './types';

/** How a run generated and scored; recorded with its results so a table can say what it compares. */
export interface EvalSettings {
  /** 'paper' wraps prompts as `Instruct: {prompt}\nOutput:`; 'none' sends them as they are. */
  wrapper: 'paper' | 'none';
  decoding: 'greedy';
  maxNewTokens: number;
  /** 'generation': the answer verdict on the generated text (scoring.ts); 'rank': argmax log-likelihood over labels. */
  scoring: 'generation' | 'rank';
  /** Weights: 'int8' or 'f16'. */
  precision?: string;
  /** Item count per dataset and format asked for. */
  count?: number;
}

/** A person's verdict on an item, as the paper's hand scores: 1 right, 0.5 half right, 0 wrong. */
export type HandScore = 1 | 0.5 | 0;

export const HAND_SCORES: readonly HandScore[] = [1, 0.5, 0];

export interface EvalItemResult extends EvalItem {
  generation: string;
  /** The verdict the run counts: the answer verdict, or rank classification's with 'rank' scoring. */
  verdict: Verdict;
  /** The two automatic verdicts of the generation (scoring.ts), whatever the run counts. */
  strict: Verdict;
  answer: Verdict;
  /** A hand review, where someone gave one (stored beside the run, see results-store.ts). */
  review?: HandScore;
  /** Per-candidate log-likelihoods, with rank scoring. */
  logLikelihoods?: number[];
  /** Milliseconds spent on this item. */
  ms?: number;
}

export interface EvalRunResult {
  /** Free label of the model: "phi-2", "phi-2 int8", or whatever the user calls it. */
  model: string;
  /** The adapter's name, or null for the base model. */
  adapter: string | null;
  seed: number;
  settings: EvalSettings;
  /** What was run: "paper", "in_context", "flipped", "bigbench", "user:<dataset>"... */
  suite: string;
  items: EvalItemResult[];
  /** ISO 8601. */
  startedAt: string;
  durationMs: number;
}

/** The text the model is given for an item under a run's settings. */
export function modelInput(item: EvalItem, wrapper: EvalSettings['wrapper']): string {
  return wrapper === 'paper' ? wrapPaperPrompt(item.prompt) : item.prompt;
}

/** What the answer verdict reads besides the generation: the item's prompt and candidate labels. */
export function answerContext(item: Pick<EvalItem, 'prompt' | 'labels'>): { prompt: string; labels?: readonly string[] } {
  return item.labels ? { prompt: item.prompt, labels: item.labels } : { prompt: item.prompt };
}

/**
 * Scores one item and records it: both automatic verdicts of the generation, and the one the run
 * counts. With 'rank' scoring the per-candidate log-likelihoods (in item.labels order) decide, and
 * `extracted` is the chosen label; with 'generation' the answer verdict does.
 */
export function toItemResult(
  item: EvalItem,
  generation: string,
  scoring: EvalSettings['scoring'],
  extra: { logLikelihoods?: number[]; ms?: number } = {},
): EvalItemResult {
  const { strict, answer } = scoreVerdicts(generation, item.target, answerContext(item));
  let verdict: Verdict = answer;
  if (scoring === 'rank') {
    if (!item.labels) throw new Error(`item ${item.id} has no candidate labels, so it cannot be rank-scored`);
    if (!extra.logLikelihoods) throw new Error(`rank scoring of item ${item.id} needs the candidates' log-likelihoods`);
    const ranked = scoreByRank(item.labels, extra.logLikelihoods, item.target);
    verdict = { correct: ranked.correct, extracted: ranked.predicted };
  }
  const result: EvalItemResult = { ...item, generation, verdict, strict, answer };
  if (extra.logLikelihoods) result.logLikelihoods = [...extra.logLikelihoods];
  if (extra.ms !== undefined) result.ms = extra.ms;
  return result;
}

/** Counts of one group of items under every verdict. */
export interface VerdictCounts {
  total: number;
  /** Right by the verdict the run counts (the answer verdict, or rank classification's). */
  correct: number;
  /** Right by each automatic verdict of the generation. */
  answer: number;
  strict: number;
  /** Items with a hand review, and the sum of their scores (right 1, half 0.5, wrong 0). */
  reviewed: number;
  handScore: number;
}

export interface AccuracyRow extends VerdictCounts {
  model: string;
  adapter: string | null;
  suite: string;
  dataset: string;
  format: string;
  /** correct / total. */
  accuracy: number;
}

export function emptyCounts(): VerdictCounts {
  return { total: 0, correct: 0, answer: 0, strict: 0, reviewed: 0, handScore: 0 };
}

export function countItem(counts: VerdictCounts, item: Pick<EvalItemResult, 'verdict' | 'strict' | 'answer' | 'review'>): void {
  counts.total++;
  if (item.verdict.correct) counts.correct++;
  if (item.answer.correct) counts.answer++;
  if (item.strict.correct) counts.strict++;
  if (item.review !== undefined) {
    counts.reviewed++;
    counts.handScore += item.review;
  }
}

/**
 * Accuracy per (model, adapter, suite, dataset, format), in order of first appearance, plus a total row
 * per (model, adapter, suite, format) over datasets (dataset "all"), the way the paper's Table 1 pools them.
 */
export function accuracyTable(runs: readonly EvalRunResult[]): AccuracyRow[] {
  const cells = new Map<string, AccuracyRow>();
  const totals = new Map<string, AccuracyRow>();
  const add = (map: Map<string, AccuracyRow>, key: string, proto: Omit<AccuracyRow, keyof VerdictCounts | 'accuracy'>, item: EvalItemResult) => {
    let row = map.get(key);
    if (!row) map.set(key, (row = { ...proto, ...emptyCounts(), accuracy: 0 }));
    countItem(row, item);
    row.accuracy = row.correct / row.total;
  };
  for (const run of runs) {
    for (const item of run.items) {
      const who = JSON.stringify([run.model, run.adapter]);
      const base = { model: run.model, adapter: run.adapter, suite: item.suite, format: item.format };
      add(cells, `${who}|${item.suite}|${item.dataset}|${item.format}`, { ...base, dataset: item.dataset }, item);
      add(totals, `${who}|${item.suite}|${item.format}`, { ...base, dataset: 'all' }, item);
    }
  }
  return [...cells.values(), ...totals.values()];
}

export interface ComparedRow extends AccuracyRow {
  /** The paper's hand-scored result for the same suite, dataset and format, per paper model. */
  paper: Array<{ model: string; correct: number; total: number; accuracy: number }>;
}

/** Puts the paper's numbers beside each row (for "all" rows: the paper's counts pooled over the same datasets). */
export function compareWithPaper(rows: readonly AccuracyRow[], reference: PaperReference): ComparedRow[] {
  const datasetsOf = new Map<string, Set<string>>();
  for (const r of rows) {
    if (r.dataset === 'all') continue;
    const key = `${JSON.stringify([r.model, r.adapter])}|${r.suite}|${r.format}`;
    if (!datasetsOf.has(key)) datasetsOf.set(key, new Set());
    datasetsOf.get(key)!.add(r.dataset);
  }
  return rows.map((r) => {
    const datasets =
      r.dataset === 'all' ? [...(datasetsOf.get(`${JSON.stringify([r.model, r.adapter])}|${r.suite}|${r.format}`) ?? [])] : [r.dataset];
    const paper = reference.models.flatMap((model) => {
      let correct = 0;
      let total = 0;
      for (const d of datasets) {
        const cell = reference.cells.get(referenceKey(r.suite, d, r.format))?.get(model);
        if (!cell) return []; // the paper did not run this combination: no number rather than a partial one
        correct += cell.correct;
        total += cell.total;
      }
      return total === 0 ? [] : [{ model, correct, total, accuracy: correct / total }];
    });
    return { ...r, paper };
  });
}

/**
 * What a spreadsheet would run as a formula: a cell starting with =, +, -, @, tab or CR. Papa's own
 * `escapeFormulae: true` pattern ends in `.*$` without the dotall flag and so misses cells that hold a
 * line break (a multi-line generation); this one looks at the first character only.
 */
const FORMULA_START = /^[=+\-@\t\r]/;

export const RESULT_CSV_COLUMNS = [
  'model',
  'adapter',
  'seed',
  'run_suite',
  'started_at',
  'id',
  'suite',
  'dataset',
  'format',
  'correct',
  'answer',
  'strict',
  'hand_review',
  'target',
  'extracted',
  'strict_extracted',
  'generation',
  'prompt',
] as const;

/**
 * One CSV row per item (RFC 4180 quoting, CRLF line ends, header first). `correct` is the verdict the
 * run counts, `answer` and `strict` the two automatic verdicts, `hand_review` 1, 0.5, 0 or empty;
 * `extracted` is what the counted verdict compared, `strict_extracted` what the strict rule did.
 */
export function resultsToCsv(runs: readonly EvalRunResult[]): string {
  const data = runs.flatMap((run) =>
    run.items.map((item) => [
      run.model,
      run.adapter ?? '',
      String(run.seed),
      run.suite,
      run.startedAt,
      item.id,
      item.suite,
      item.dataset,
      item.format,
      String(item.verdict.correct),
      String(item.answer.correct),
      String(item.strict.correct),
      item.review === undefined ? '' : String(item.review),
      item.target,
      item.verdict.extracted,
      item.strict.extracted,
      item.generation,
      item.prompt,
    ]),
  );
  // Generations and prompts are untrusted text: a cell starting with =, +, -, @, tab or CR would run as
  // a formula in a spreadsheet, so it gets a leading ' (and quotes), as OWASP advises for CSV.
  return Papa.unparse({ fields: [...RESULT_CSV_COLUMNS], data }, { quotes: false, newline: '\r\n', escapeFormulae: FORMULA_START });
}

/** Version 2 added the strict and answer verdicts and hand reviews to every item. */
export const RESULTS_JSON_VERSION = 2;

export function resultsToJson(runs: readonly EvalRunResult[]): string {
  return JSON.stringify({ format: 'phi2-lora-eval-results', version: RESULTS_JSON_VERSION, runs }, null, 2);
}

/**
 * An item as this version keeps it: results saved before the two verdicts existed (they had only the
 * strict one, as `verdict`) get both from their generation, and count the answer verdict unless they
 * were rank-scored. A hand review that is not 1, 0.5 or 0 is dropped.
 */
export function upgradeItem(item: EvalItemResult, scoring: EvalSettings['scoring']): EvalItemResult {
  let out = item;
  if (!item.strict || !item.answer) {
    const { strict, answer } = scoreVerdicts(item.generation ?? '', item.target, answerContext(item));
    const ranked = scoring === 'rank' && item.labels !== undefined && item.logLikelihoods !== undefined;
    out = { ...item, strict, answer, verdict: ranked ? item.verdict : answer };
  }
  if (out.review !== undefined && !HAND_SCORES.includes(out.review)) {
    const { review: _dropped, ...rest } = out;
    out = rest;
  }
  return out;
}

/** Reads back what resultsToJson wrote (this version or the first), checking the parts tables rely on. */
export function resultsFromJson(json: string): EvalRunResult[] {
  const root = JSON.parse(json) as { format?: unknown; version?: unknown; runs?: unknown };
  if (root.format !== 'phi2-lora-eval-results' || (root.version !== 1 && root.version !== RESULTS_JSON_VERSION) || !Array.isArray(root.runs)) {
    throw new Error(`not an evaluation results file (expected format "phi2-lora-eval-results", version 1 or ${RESULTS_JSON_VERSION})`);
  }
  return (root.runs as EvalRunResult[]).map((run, k) => {
    if (typeof run.model !== 'string' || !Array.isArray(run.items)) throw new Error(`run ${k + 1}: missing model or items`);
    for (const item of run.items) {
      if (typeof item.id !== 'string' || typeof item.target !== 'string' || typeof item.verdict?.correct !== 'boolean') {
        throw new Error(`run ${k + 1}: an item without id, target or verdict`);
      }
    }
    return { ...run, items: run.items.map((item) => upgradeItem(item, run.settings?.scoring ?? 'generation')) };
  });
}

/** The accuracy table as CSV, with one column per paper model where a reference is given. */
export function accuracyTableToCsv(rows: readonly (AccuracyRow | ComparedRow)[], paperModels: readonly string[] = []): string {
  const fields = ['model', 'adapter', 'suite', 'dataset', 'format', 'correct', 'total', 'accuracy', 'answer', 'strict', 'reviewed', 'hand_score', ...paperModels.map((m) => `paper_${m}`)];
  const data = rows.map((r) => {
    const paper = 'paper' in r ? r.paper : [];
    return [
      r.model,
      r.adapter ?? '',
      r.suite,
      r.dataset,
      r.format,
      String(r.correct),
      String(r.total),
      r.accuracy.toFixed(4),
      String(r.answer),
      String(r.strict),
      String(r.reviewed),
      String(r.handScore),
      ...paperModels.map((m) => {
        const p = paper.find((x) => x.model === m);
        return p ? p.accuracy.toFixed(4) : '';
      }),
    ];
  });
  return Papa.unparse({ fields, data }, { quotes: false, newline: '\r\n', escapeFormulae: FORMULA_START });
}
