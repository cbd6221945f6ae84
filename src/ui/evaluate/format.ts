/** Names people read for the evaluation's ids, and small number formats, shared by the Evaluate and Demo pages. */

const DATASET_NAMES: Record<string, string> = {
  teh: 'TEH',
  teo: 'TEO',
  subj: 'SUBJ',
  climate: 'Climate',
  add_elements: 'Add elements',
  input_independent: 'Input independent',
  modify_the_list: 'Modify the list',
  remove_elements: 'Remove elements',
  miscellaneous: 'Miscellaneous',
  turing: 'Simple Turing concepts',
  all: 'All',
};

const FORMAT_NAMES: Record<string, string> = {
  instruction_label: 'Instruction + label',
  instruction_symbol: 'Instruction + symbol',
  no_instruction_symbol: 'No instruction + symbol',
  no_instruction_symbol_io: 'No instruction + symbol (Input/Output)',
  flipped: 'Flipped labels',
  '3_shot': 'Few-shot',
  instruction: 'Saved instruction data',
  'symbol-tuning': 'Saved symbol-tuning data',
};

const SUITE_NAMES: Record<string, string> = {
  in_context: 'In-context classification',
  flipped: 'Flipped labels',
  bigbench: 'BIG-bench',
  user: 'Saved datasets',
  paper: "The paper's 730 prompts",
};

const PAPER_MODEL_NAMES: Record<string, string> = {
  'phi-2': 'Phi-2',
  'flan-phi-2': 'FLAN-Phi-2',
  'flan-phi-2-symbol': 'FLAN-Phi-2-Symbol',
  'mistral-7b-instruct': 'Mistral-7B-Instruct',
  'gpt-3.5': 'GPT-3.5',
};

export const datasetName = (id: string): string => DATASET_NAMES[id] ?? id;
export const formatName = (id: string): string => FORMAT_NAMES[id] ?? id;
export const suiteName = (id: string): string => SUITE_NAMES[id] ?? id;
export const paperModelName = (id: string): string => PAPER_MODEL_NAMES[id] ?? id;

/**
 * A percentage as the paper prints them: whole where it is whole (its 25-prompt cells: 12%, 63%), one
 * decimal otherwise (its BIG-bench figures: 52.7%).
 */
export function percent(correct: number, total: number): string {
  if (total === 0) return '–';
  const tenths = Math.round((correct / total) * 1000);
  return tenths % 10 === 0 ? `${tenths / 10}%` : `${(tenths / 10).toFixed(1)}%`;
}

/** A difference in percentage points with its sign, one decimal: "+3.1", "−12.0", "±0.0". */
export function points(delta: number | null): string {
  if (delta === null || !Number.isFinite(delta)) return '–';
  const r = Math.round(delta * 10) / 10;
  return r === 0 ? '±0.0' : `${r > 0 ? '+' : '−'}${Math.abs(r).toFixed(1)}`;
}

/** A hand review as a word. */
export function handName(score: number): string {
  return score === 1 ? 'right' : score === 0 ? 'wrong' : 'half';
}

export function duration(ms: number): string {
  if (!Number.isFinite(ms)) return '–';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

/** A rate readable at any speed: "1,234", "45.6", "0.83", "0.0042" (three significant figures below 100). */
export function rate(value: number | null | undefined, unit: string): string {
  if (value === null || value === undefined || !Number.isFinite(value) || value < 0) return '–';
  return `${value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toLocaleString('en-US', { maximumSignificantDigits: 3 })} ${unit}`;
}

export function count(n: number): string {
  return n.toLocaleString('en-US');
}

export function when(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** "base" or the adapter's name, for column headers. */
export function runLabel(run: { adapter: string | null; model: string }): string {
  return run.adapter ? `${run.model} + ${run.adapter}` : run.model;
}

/**
 * Short column headers for compared runs: the adapter (or "Base") when every run is of the same model,
 * the full label otherwise; repeated headers are numbered in run order.
 */
export function columnLabels(runs: ReadonlyArray<{ adapter: string | null; model: string }>): string[] {
  const sameModel = runs.every((r) => r.model === runs[0]?.model);
  const labels = runs.map((r) => (sameModel ? (r.adapter ?? 'Base') : runLabel(r)));
  return labels.map((l, k) => (labels.filter((x) => x === l).length > 1 ? `${l} (${labels.slice(0, k + 1).filter((x) => x === l).length})` : l));
}
