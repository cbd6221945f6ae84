import Papa from 'papaparse';
import type { PaperReference } from './paper';
import { referenceKey } from './paper';
import { wrapPaperPrompt } from './prompts';
import { scoreByRank, scoreGeneration, type Verdict } from './scoring';
import type { EvalItem } from './types';

/** How a run generated and scored; recorded with its results so a table can say what it compares. */
export interface EvalSettings {
  /** 'paper' wraps prompts as `Instruct: {prompt}\nOutput:`; 'none' sends them as they are. */
  wrapper: 'paper' | 'none';
  decoding: 'greedy';
  maxNewTokens: number;
  /** 'generation': the README's rule on the generated text; 'rank': argmax log-likelihood over labels. */
  scoring: 'generation' | 'rank';
  /** Weights: 'int8' or 'f16'. */
  precision?: string;
  /** Item count per dataset and format asked for. */
  count?: number;
}

export interface EvalItemResult extends EvalItem {
  generation: string;
  verdict: Verdict;
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

/**
 * Scores one item and records it. With 'rank' scoring the per-candidate log-likelihoods (in item.labels
 * order) decide, and `extracted` is the chosen label; with 'generation' the README's rule does.
 */
export function toItemResult(
  item: EvalItem,
  generation: string,
  scoring: EvalSettings['scoring'],
  extra: { logLikelihoods?: number[]; ms?: number } = {},
): EvalItemResult {
  let verdict: Verdict;
  if (scoring === 'rank') {
    if (!item.labels) throw new Error(`item ${item.id} has no candidate labels, so it cannot be rank-scored`);
    if (!extra.logLikelihoods) throw new Error(`rank scoring of item ${item.id} needs the candidates' log-likelihoods`);
    const ranked = scoreByRank(item.labels, extra.logLikelihoods, item.target);
    verdict = { correct: ranked.correct, extracted: ranked.predicted };
  } else {
    verdict = scoreGeneration(generation, item.target);
  }
  const result: EvalItemResult = { ...item, generation, verdict };
  if (extra.logLikelihoods) result.logLikelihoods = [...extra.logLikelihoods];
  if (extra.ms !== undefined) result.ms = extra.ms;
  return result;
}

export interface AccuracyRow {
  model: string;
  adapter: string | null;
  suite: string;
  dataset: string;
  format: string;
  correct: number;
  total: number;
  accuracy: number;
}

/**
 * Accuracy per (model, adapter, suite, dataset, format), in order of first appearance, plus a total row
 * per (model, adapter, suite, format) over datasets (dataset "all"), the way the paper's Table 1 pools them.
 */
export function accuracyTable(runs: readonly EvalRunResult[]): AccuracyRow[] {
  const cells = new Map<string, AccuracyRow>();
  const totals = new Map<string, AccuracyRow>();
  const add = (map: Map<string, AccuracyRow>, key: string, proto: Omit<AccuracyRow, 'correct' | 'total' | 'accuracy'>, ok: boolean) => {
    let row = map.get(key);
    if (!row) map.set(key, (row = { ...proto, correct: 0, total: 0, accuracy: 0 }));
    row.total++;
    if (ok) row.correct++;
    row.accuracy = row.correct / row.total;
  };
  for (const run of runs) {
    for (const item of run.items) {
      const who = JSON.stringify([run.model, run.adapter]);
      const base = { model: run.model, adapter: run.adapter, suite: item.suite, format: item.format };
      add(cells, `${who}|${item.suite}|${item.dataset}|${item.format}`, { ...base, dataset: item.dataset }, item.verdict.correct);
      add(totals, `${who}|${item.suite}|${item.format}`, { ...base, dataset: 'all' }, item.verdict.correct);
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
  'target',
  'extracted',
  'generation',
  'prompt',
] as const;

/** One CSV row per item (RFC 4180 quoting, CRLF line ends, header first). */
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
      item.verdict.correct ? 'true' : 'false',
      item.target,
      item.verdict.extracted,
      item.generation,
      item.prompt,
    ]),
  );
  // Generations and prompts are untrusted text: a cell starting with =, +, -, @, tab or CR would run as
  // a formula in a spreadsheet, so it gets a leading ' (and quotes), as OWASP advises for CSV.
  return Papa.unparse({ fields: [...RESULT_CSV_COLUMNS], data }, { quotes: false, newline: '\r\n', escapeFormulae: FORMULA_START });
}

export function resultsToJson(runs: readonly EvalRunResult[]): string {
  return JSON.stringify({ format: 'phi2-lora-eval-results', version: 1, runs }, null, 2);
}

/** Reads back what resultsToJson wrote, checking the parts tables rely on. */
export function resultsFromJson(json: string): EvalRunResult[] {
  const root = JSON.parse(json) as { format?: unknown; version?: unknown; runs?: unknown };
  if (root.format !== 'phi2-lora-eval-results' || root.version !== 1 || !Array.isArray(root.runs)) {
    throw new Error('not an evaluation results file (expected format "phi2-lora-eval-results", version 1)');
  }
  for (const [k, run] of (root.runs as EvalRunResult[]).entries()) {
    if (typeof run.model !== 'string' || !Array.isArray(run.items)) throw new Error(`run ${k + 1}: missing model or items`);
    for (const item of run.items) {
      if (typeof item.id !== 'string' || typeof item.verdict?.correct !== 'boolean') throw new Error(`run ${k + 1}: item without id or verdict`);
    }
  }
  return root.runs as EvalRunResult[];
}

/** The accuracy table as CSV, with one column per paper model where a reference is given. */
export function accuracyTableToCsv(rows: readonly (AccuracyRow | ComparedRow)[], paperModels: readonly string[] = []): string {
  const fields = ['model', 'adapter', 'suite', 'dataset', 'format', 'correct', 'total', 'accuracy', ...paperModels.map((m) => `paper_${m}`)];
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
      ...paperModels.map((m) => {
        const p = paper.find((x) => x.model === m);
        return p ? p.accuracy.toFixed(4) : '';
      }),
    ];
  });
  return Papa.unparse({ fields, data }, { quotes: false, newline: '\r\n', escapeFormulae: FORMULA_START });
}
