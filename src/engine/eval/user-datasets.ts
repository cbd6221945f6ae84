import { SeededRandom } from '../random';
import { EvalSetupError } from './prepare';
import type { EvalItem } from './types';

/** Saved datasets (the Data page's {prompt, completion} rows) as evaluation items. */

/** A saved dataset row (the Data page keeps {prompt, completion} pairs whose concatenation is the text). */
export interface PromptCompletionRow {
  prompt: string;
  completion: string;
}

/** At most this many distinct completions make a dataset a classification set (its labels the candidates). */
export const MAX_DATASET_LABELS = 20;

/**
 * Candidate labels read off a few-shot prompt: when its last line is "<Prefix>:" (a symbol-tuning prompt,
 * "Answer:"), the values of the earlier "<Prefix>: value" lines, in order of first appearance.
 */
export function promptAnswerLabels(prompt: string): string[] {
  const lines = prompt.split('\n');
  const last = lines[lines.length - 1].trimEnd();
  const m = /^([^:\n]{1,40}):$/.exec(last);
  if (!m) return [];
  const lead = `${m[1]}: `;
  const labels: string[] = [];
  for (const line of lines.slice(0, -1)) {
    if (!line.startsWith(lead)) continue;
    const value = line.slice(lead.length).trim();
    if (value && !labels.includes(value)) labels.push(value);
  }
  return labels;
}

/**
 * A saved dataset as evaluation items: target = the completion, trimmed. Candidate labels (for rank
 * classification): the prompt's own exemplar answers where they include the target (symbol-tuning
 * prompts carry their symbols), else the dataset's distinct completions when there are 2..20 of them.
 * `count` rows are drawn with the seed (all of them if there are fewer), kept in dataset order.
 */
export function userDatasetItems(
  dataset: { name: string; kind: string },
  rows: readonly PromptCompletionRow[],
  options: { seed: number; count: number },
): EvalItem[] {
  if (!Number.isInteger(options.count) || options.count < 1) throw new EvalSetupError(`item count must be a positive integer, got ${options.count}`);
  const usable = rows.map((r, index) => ({ ...r, index, target: r.completion.trim() })).filter((r) => r.target !== '' && r.prompt !== '');
  if (usable.length === 0) throw new EvalSetupError(`"${dataset.name}" has no rows with both a prompt and a completion to compare with`);
  const distinct = [...new Set(usable.map((r) => r.target))];
  const datasetLabels = distinct.length >= 2 && distinct.length <= MAX_DATASET_LABELS ? distinct : null;
  const picked =
    options.count >= usable.length
      ? usable
      : SeededRandom.from(options.seed, 'user-dataset', dataset.name)
          .sampleIndices(usable.length, options.count)
          .sort((a, b) => a - b)
          .map((k) => usable[k]);
  return picked.map((r) => {
    const item: EvalItem = { id: `user/${dataset.name}/${r.index}`, suite: 'user', dataset: dataset.name, format: dataset.kind, prompt: r.prompt, target: r.target };
    const own = promptAnswerLabels(r.prompt);
    if (own.length >= 2 && own.includes(r.target)) item.labels = own;
    else if (datasetLabels) item.labels = datasetLabels;
    return item;
  });
}
