import type { EvaluationSetup, StoredRunSummary } from '../worker/eval-api';

/**
 * The Evaluate page's comparison tables, built from saved runs' summaries (no items needed): per
 * (suite, format) one row per dataset and an "all" row, with a column per compared run and per paper
 * model, counted by the verdict the user chose.
 */

/**
 * Which verdict a number counts: the answer verdict (the default), the strict rule, or hand review
 * (over the reviewed items only). A rank-scored run's own verdict is rank classification's; the
 * answer verdict there is that of its generation.
 */
export type VerdictChoice = 'answer' | 'strict' | 'hand';

export const VERDICT_NAMES: Record<VerdictChoice, string> = {
  answer: 'answer verdict',
  strict: 'strict rule',
  hand: 'hand review',
};

/** One cell of a comparison: correct of total (hand review: the score of the reviewed items), or null. */
export type Score = { correct: number; total: number } | null;

export interface ComparisonRow {
  suite: string;
  dataset: string;
  format: string;
  /** One per compared run, in the order of `columns`. */
  runs: Score[];
  /** The paper's hand-scored result per paper model (pooled over the same datasets for "all"). */
  paper: Record<string, Score>;
}

export interface ComparisonTable {
  /** "in_context/instruction_label", "flipped/flipped", "bigbench/3_shot", "user/<kind>". */
  key: string;
  suite: string;
  format: string;
  rows: ComparisonRow[];
}

type PaperCells = EvaluationSetup['paper']['cells'];
type Counts = Pick<StoredRunSummary, 'total' | 'correct' | 'answer' | 'strict' | 'reviewed' | 'handScore'>;

/** A group of items counted by one verdict. */
export function scoreOf(counts: Counts, verdict: VerdictChoice): Score {
  if (verdict === 'hand') return counts.reviewed > 0 ? { correct: counts.handScore, total: counts.reviewed } : null;
  return { correct: verdict === 'strict' ? counts.strict : counts.answer, total: counts.total };
}

const DATASET_ORDER = ['teh', 'teo', 'subj', 'climate', 'add_elements', 'input_independent', 'modify_the_list', 'remove_elements', 'miscellaneous', 'turing'];
const SUITE_ORDER = ['in_context', 'flipped', 'bigbench', 'user'];
const FORMAT_ORDER = ['instruction_label', 'instruction_symbol', 'no_instruction_symbol', 'no_instruction_symbol_io', 'flipped', '3_shot'];

export function comparisonTables(runs: readonly StoredRunSummary[], paperCells: PaperCells, paperModels: readonly string[], verdict: VerdictChoice = 'answer'): ComparisonTable[] {
  const lookup = new Map<string, { correct: number; total: number }>();
  for (const c of paperCells) lookup.set(`${c.suite}/${c.dataset}/${c.format}/${c.model}`, { correct: c.correct, total: c.total });
  const tables = new Map<string, ComparisonTable>();
  const rowOf = (suite: string, dataset: string, format: string): ComparisonRow => {
    const key = `${suite}/${format}`;
    let table = tables.get(key);
    if (!table) tables.set(key, (table = { key, suite, format, rows: [] }));
    let row = table.rows.find((r) => r.dataset === dataset);
    if (!row) table.rows.push((row = { suite, dataset, format, runs: runs.map(() => null), paper: {} }));
    return row;
  };
  runs.forEach((run, k) => {
    for (const cell of run.cells) rowOf(cell.suite, cell.dataset, cell.format).runs[k] = scoreOf(cell, verdict);
  });
  for (const table of tables.values()) {
    // "all" last; the datasets in the order the paper lists them, then any others.
    const rank = (d: string) => (d === 'all' ? 1e9 : DATASET_ORDER.includes(d) ? DATASET_ORDER.indexOf(d) : 1e6);
    table.rows.sort((a, b) => rank(a.dataset) - rank(b.dataset) || a.dataset.localeCompare(b.dataset));
    const datasets = table.rows.filter((r) => r.dataset !== 'all').map((r) => r.dataset);
    for (const row of table.rows) {
      for (const model of paperModels) {
        const parts = (row.dataset === 'all' ? datasets : [row.dataset]).map((d) => lookup.get(`${row.suite}/${d}/${row.format}/${model}`));
        // A pooled number only where the paper has every dataset of the row; a partial sum would mislead.
        let pooled: Score = parts.length > 0 ? { correct: 0, total: 0 } : null;
        for (const p of parts) pooled = p && pooled ? { correct: pooled.correct + p.correct, total: pooled.total + p.total } : null;
        row.paper[model] = pooled;
      }
    }
  }
  const order = (list: string[], x: string) => (list.includes(x) ? list.indexOf(x) : list.length);
  return [...tables.values()].sort((a, b) => order(SUITE_ORDER, a.suite) - order(SUITE_ORDER, b.suite) || order(FORMAT_ORDER, a.format) - order(FORMAT_ORDER, b.format));
}

/** Percentage points between two scores (a - b), or null where either is missing. */
export function delta(a: Score, b: Score): number | null {
  if (!a || !b || a.total === 0 || b.total === 0) return null;
  return (100 * a.correct) / a.total - (100 * b.correct) / b.total;
}
