import { firstBracketedList, isListTarget, normalizeList, stripAnswerPrefixes } from './strict';
import type { Verdict } from './types';

/**
 * The *answer* verdict: the answer read out of a generation as a careful human reader would, then
 * compared with the target. The paper scored by hand and leniently; this rule writes down what such a
 * reader does, in general terms (test/unit/engine/eval/answer.test.ts measures its agreement with the paper's
 * hand scores). Beside it the *strict* verdict (scoring.ts) stays exactly as documented.
 *
 *   1. Leading whitespace and answer prefixes go: "Output:", "Answer:", "Symbol:", "A:" and the
 *      prompt's own output prefix (the "Label:" of a prompt that ends in "Label:").
 *   2. A restated query is skipped: when the generation repeats the prompt's query with the prompt's
 *      input prefix ("Input: [1, 0, 6]") and then gives an output line ("Label: [7]"), the output
 *      line is the answer. Only the query counts: a copied exemplar is not an answer.
 *   3. List targets: a first line that is a bare list of numbers ("9", "9, 9, 6") is that list;
 *      otherwise the first bracketed list. Lists compare with whitespace normalised.
 *   4. Other targets: the first non-empty line is the answer when it is one of the candidate labels
 *      (the prompt's exemplar answers, the item's labels, the target), read case-insensitively and
 *      without decoration: trailing punctuation ("Hate."), quotes or asterisks around it, a leading
 *      enumerator or tag ("Q1:", "1.", "-"). A label inside a sentence is not read out ("The answer
 *      is Hate because..."): the paper's hand scores count such sentences both ways.
 *   5. An answer line whose next non-empty line names another label ("BJQE\nWYAR\nBJQE...") answers
 *      nothing: the generation lists the labels rather than choosing one.
 *   An empty generation is wrong.
 */

/** What the answer rule reads off the prompt (without the `Instruct:` wrapper). */
export interface PromptShape {
  /** "Question", "Input", "User"...: the prefix of the prompt's first line that has one, or null. */
  inputPrefix: string | null;
  /** "Answer", "Label", "Teacher"...: the prompt's last line "X:", or null. */
  outputPrefix: string | null;
  /** The query block's text after the input prefix (an instruction line first where the format has one). */
  query: string | null;
  /** The exemplars' answers ("X: value" lines), in order of first appearance. */
  labels: string[];
}

export interface AnswerContext {
  /** The prompt the model answered, as the item holds it (without the `Instruct:` wrapper). */
  prompt?: string;
  /** Candidate labels known besides the prompt's own (an item's labels). */
  labels?: readonly string[];
}

export function readPromptShape(prompt: string): PromptShape {
  const trimmed = prompt.replace(/\s+$/, '');
  const lastNl = trimmed.lastIndexOf('\n');
  const last = /^([^\s:][^:\n]{0,39}):$/.exec(trimmed.slice(lastNl + 1));
  // The first line with a prefix: an instruction line may come before the first block.
  const first = /^([^\s:][^:\n]{0,39}): /m.exec(trimmed);
  const outputPrefix = lastNl >= 0 && last ? last[1] : null;
  const inputPrefix = first ? first[1] : null;
  let query: string | null = null;
  if (inputPrefix && outputPrefix) {
    const body = trimmed.slice(0, lastNl);
    const at = body.lastIndexOf(`\n${inputPrefix}: `);
    query = at >= 0 ? body.slice(at + inputPrefix.length + 3) : body.slice(first!.index + inputPrefix.length + 2);
  }
  const labels: string[] = [];
  if (outputPrefix) {
    const lead = `${outputPrefix}: `;
    for (const line of trimmed.slice(0, lastNl).split('\n')) {
      const value = line.startsWith(lead) ? line.slice(lead.length).trim() : '';
      if (value && !labels.includes(value)) labels.push(value);
    }
  }
  return { inputPrefix, outputPrefix, query, labels };
}

/** The answer verdict; `settled` is true once no continuation of the generation could change it. */
export interface AnswerReading extends Verdict {
  settled: boolean;
}

export function scoreAnswer(generation: string, target: string, context: AnswerContext = {}): Verdict {
  const { correct, extracted } = readAnswer(generation, target, context);
  return { correct, extracted };
}

/** Decoration a label may carry on its line (enumerator, quotes, asterisks, punctuation), in characters at most. */
const MAX_DECORATION = 12;

/** The last prompts read, since "stop when answered" reads the same prompt after every token. */
const shapes = new Map<string, PromptShape>();

function shapeOf(prompt: string): PromptShape {
  let shape = shapes.get(prompt);
  if (!shape) {
    shape = readPromptShape(prompt);
    if (shapes.size >= 16) shapes.delete(shapes.keys().next().value!);
    shapes.set(prompt, shape);
  }
  return shape;
}

export function readAnswer(generation: string, target: string, context: AnswerContext = {}): AnswerReading {
  const shape = context.prompt === undefined ? null : shapeOf(context.prompt);
  const outPrefix = shape?.outputPrefix ?? null;
  let text = stripPrefixes(generation, outPrefix);
  const restated = skipRestatedQuery(text, shape);
  if (restated === 'open') return { correct: false, extracted: '', settled: false };
  if (restated !== null) text = stripPrefixes(restated, outPrefix);
  return isListTarget(target) ? readList(text, target) : readLabel(text, target, labelSet(target, shape, context));
}

function stripPrefixes(text: string, outputPrefix: string | null): string {
  let t = stripAnswerPrefixes(text);
  if (outputPrefix) {
    const own = `${outputPrefix}:`;
    while (t.startsWith(own)) t = stripAnswerPrefixes(t.slice(own.length));
  }
  return t;
}

const squash = (s: string) => s.replace(/\s+/g, ' ').trim();

/**
 * When `text` restates the prompt's query ("{input prefix}: {query}\n{output prefix}: ...") the text
 * from the output prefix on; null when it does not; 'open' while the text so far could still be one.
 */
function skipRestatedQuery(text: string, shape: PromptShape | null): string | null | 'open' {
  if (!shape?.inputPrefix || !shape.outputPrefix || shape.query === null) return null;
  const lead = `${shape.inputPrefix}:`;
  if (!text.startsWith(lead)) return lead.startsWith(text) && text !== '' ? 'open' : null;
  const out = `\n${shape.outputPrefix}:`;
  const queries = [squash(shape.query)];
  const nl = shape.query.indexOf('\n');
  if (nl >= 0) queries.push(squash(shape.query.slice(nl + 1))); // restated without the instruction line
  const end = text.indexOf(out);
  if (end >= 0) return queries.includes(squash(text.slice(lead.length, end))) ? text.slice(end + 1) : null;
  // No output line yet: open while the text could still become the query, then its output line.
  const sofar = text.slice(lead.length).replace(/\s+/g, ' ').replace(/^ /, '');
  const nlAt = text.lastIndexOf('\n');
  const tail = text.slice(nlAt + 1);
  const couldContinue = queries.some((q) => q.startsWith(sofar.trimEnd()) || q.startsWith(sofar));
  const couldBeOutputLine = nlAt > 0 && queries.includes(squash(text.slice(lead.length, nlAt))) && out.slice(1).startsWith(tail);
  return couldContinue || couldBeOutputLine ? 'open' : null;
}

function readList(text: string, target: string): AnswerReading {
  const lines = text.split('\n');
  const k = lines.findIndex((l) => l.trim() !== '');
  if (k < 0) return { correct: false, extracted: '', settled: false };
  const line = lines[k].trim();
  const complete = k < lines.length - 1;
  // A bare first line ("9", "9, 9, 6") is final once the line ends (it could still grow a bracket).
  const bare = /^-?\d+(\s*,\s*-?\d+)*\.?$/.test(line) ? `[${line.replace(/\.$/, '')}]` : null;
  if (bare !== null) return { correct: normalizeList(bare) === normalizeList(target.trim()), extracted: bare, settled: complete };
  const list = firstBracketedList(text);
  if (list === null) return { correct: false, extracted: '', settled: false };
  return { correct: normalizeList(list) === normalizeList(target.trim()), extracted: list, settled: complete || line.includes('[') };
}

function labelSet(target: string, shape: PromptShape | null, context: AnswerContext): string[] {
  const all = [target.trim(), ...(context.labels ?? []), ...(shape?.labels ?? [])].map((l) => l.trim()).filter((l) => l !== '');
  const seen = new Set<string>();
  return all.filter((l) => !seen.has(l.toLowerCase()) && seen.add(l.toLowerCase()));
}

/** Ways a label is decorated on its line, each undone in turn: punctuation, quotes, an enumerator or tag. */
const UNDECORATE: ReadonlyArray<(s: string) => string> = [
  (s) => s.replace(/[.!,;:]+$/, ''),
  (s) => s.replace(/^["'“*`]+(.*?)["'”*`]+$/, '$1'),
  (s) => s.replace(/^(?:[A-Za-z]{1,12}\d{0,3}:|\d{1,3}[.)]|[-*•])\s*/, ''),
];

/** The label a line names, read case-insensitively without decoration, or null. */
function lineLabel(line: string, labels: readonly string[]): string | null {
  const byKey = new Map(labels.map((l) => [l.toLowerCase(), l]));
  const seen = new Set<string>();
  let frontier = [line.trim()];
  for (let depth = 0; depth <= UNDECORATE.length + 1 && frontier.length > 0; depth++) {
    for (const s of frontier) {
      const hit = byKey.get(s.toLowerCase());
      if (hit !== undefined) return hit;
    }
    frontier = frontier.flatMap((s) => UNDECORATE.map((undo) => undo(s).trim())).filter((x) => x !== '' && !seen.has(x) && Boolean(seen.add(x)));
  }
  return null;
}

function readLabel(text: string, target: string, labels: readonly string[]): AnswerReading {
  const lines = text.split('\n');
  const k = lines.findIndex((l) => l.trim() !== '');
  if (k < 0) return { correct: false, extracted: '', settled: false };
  const line = lines[k].trim();
  const complete = k < lines.length - 1;
  // A line longer than any label with its decoration cannot become one, finished or not.
  const longest = Math.max(...labels.map((l) => l.length)) + MAX_DECORATION;
  const named = lineLabel(line, labels);
  if (named === null) return { correct: false, extracted: line, settled: complete };
  const verdict = (correct: boolean, extracted: string, settled: boolean): AnswerReading => ({ correct, extracted, settled });
  const right = named.toLowerCase() === target.trim().toLowerCase();
  if (!complete) return verdict(right, named, false);
  // The next non-empty line: the same label again confirms it; another label means the labels are listed.
  for (let j = k + 1; j < lines.length; j++) {
    const next = lines[j].trim();
    if (next === '') continue;
    const open = j === lines.length - 1;
    const other = lineLabel(next, labels);
    if (other === null) return verdict(right, named, !open || next.length > longest);
    // Repeated, the label stands whatever follows: the line becomes no label, or stays this one.
    if (other.toLowerCase() === named.toLowerCase()) return verdict(right, named, true);
    return verdict(false, `${named} / ${other}`, !open);
  }
  return verdict(right, named, false);
}
