import type { Verdict } from './types';

/**
 * The *strict* verdict, exactly as documented (README, "Scoring"):
 *
 *   1. Strip leading whitespace and a leading "Output:", "Answer:", "Symbol:" or "A:" (case-sensitive,
 *      repeatedly: "Answer: Answer: Hate" -> "Hate"), with the whitespace after each.
 *   2. List targets (the target is one bracketed list, e.g. "[4, 1, 5, 9]"): take the first bracketed list
 *      anywhere in what remains, up to its matching "]", and compare it with the target after normalising
 *      whitespace inside both (none next to brackets and commas, runs of whitespace elsewhere -> one space),
 *      so "[4,1,  5, 9 ]" matches "[4, 1, 5, 9]".
 *   3. Other targets: take the first line of what remains, trim it, and compare with the trimmed target
 *      exactly. A label inside an explanation ("The answer is Hate") or with punctuation ("Hate.") is wrong;
 *      lines after the first (the model continuing with a new "Question: ...") are ignored.
 *   An empty generation is wrong.
 *
 * It agrees with the paper's hand scores less often than the answer verdict (answer.ts), which reads the
 * answer as a human would; both are kept for every item.
 */

const ANSWER_PREFIXES = ['Output:', 'Answer:', 'Symbol:', 'A:'];

/** Step 1 of the rule: whitespace and answer prefixes removed from the start. */
export function stripAnswerPrefixes(generation: string): string {
  let text = generation.trimStart();
  for (;;) {
    const prefix = ANSWER_PREFIXES.find((p) => text.startsWith(p));
    if (!prefix) return text;
    text = text.slice(prefix.length).trimStart();
  }
}

export function isListTarget(target: string): boolean {
  const t = target.trim();
  return t.startsWith('[') && t.endsWith(']') && firstBracketedList(t) === t;
}

/** The first "[...]" (with nested brackets balanced), or null. */
export function firstBracketedList(text: string): string | null {
  const start = text.indexOf('[');
  if (start < 0) return null;
  let depth = 0;
  for (let i = start; i < text.length; i++) {
    if (text[i] === '[') depth++;
    else if (text[i] === ']' && --depth === 0) return text.slice(start, i + 1);
  }
  return null;
}

export function normalizeList(list: string): string {
  return list
    .replace(/\s+/g, ' ')
    .replace(/\s*([[\],])\s*/g, '$1')
    .replace(/,/g, ', ');
}

export function scoreStrict(generation: string, target: string): Verdict {
  const text = stripAnswerPrefixes(generation);
  if (isListTarget(target)) {
    const list = firstBracketedList(text);
    if (list === null) return { correct: false, extracted: '' };
    return { correct: normalizeList(list) === normalizeList(target.trim()), extracted: list };
  }
  const firstLine = text.split('\n', 1)[0].trim();
  return { correct: firstLine !== '' && firstLine === target.trim(), extracted: firstLine };
}

/**
 * True once the generation holds everything the strict rule reads, so more tokens cannot change its
 * verdict: for list targets a first complete bracketed list, otherwise a newline after the stripped
 * answer prefixes (the first line is then final; prefixes cannot span a newline).
 */
export function strictSettled(generation: string, target: string): boolean {
  const text = stripAnswerPrefixes(generation);
  return isListTarget(target) ? firstBracketedList(text) !== null : text.includes('\n');
}
