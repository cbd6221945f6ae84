import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HAND_SCORE_AGREEMENT } from '../../../../src/shared/agreement';
import { readAnswer, readPromptShape, scoreAnswer } from '../../../../src/engine/eval/answer';
import { paperTarget } from '../../../../src/engine/eval/paper';
import { scoreStrict, verdictsSettled } from '../../../../src/engine/eval/scoring';
import { strictSettled } from '../../../../src/engine/eval/strict';

const ok = (generation: string, target: string, prompt?: string, labels?: string[]) => scoreAnswer(generation, target, { prompt, labels }).correct;

const TEH = 'Question: Label the tweet.\nI love you\nAnswer: No Hate\nQuestion: Label the tweet.\nI hate them\nAnswer: Hate\nQuestion: Label the tweet.\nthe query\nAnswer: \n';
const SYMBOLS = 'Question: good day\nAnswer: BJQE\nQuestion: bad day\nAnswer: WYAR\nQuestion: fine day\nAnswer: \n';
const LIST = 'Input: [3, 8]\nLabel: [5, 2]\n\nInput: [9]\nLabel: [5, 2]\n\nInput: [1, 0, 6]\nLabel:';

describe('answer verdict', () => {
  it('reads the prompt: its prefixes, query and exemplar answers', () => {
    expect(readPromptShape(TEH)).toEqual({ inputPrefix: 'Question', outputPrefix: 'Answer', query: 'Label the tweet.\nthe query', labels: ['No Hate', 'Hate'] });
    expect(readPromptShape(LIST)).toEqual({ inputPrefix: 'Input', outputPrefix: 'Label', query: '[1, 0, 6]', labels: ['[5, 2]'] });
    expect(readPromptShape('free text')).toEqual({ inputPrefix: null, outputPrefix: null, query: null, labels: [] });
  });

  it('reads a label without its decoration, in any case', () => {
    for (const g of [' Hate', 'Hate.', ' "Hate"', '**Hate**', 'hate', 'Answer: Hate!', 'Label: Hate', '1. Hate', '- Hate']) expect(ok(g, 'Hate', TEH), g).toBe(true);
    expect(ok('Output:\nQ1: JXQV\nQ2: JXQV', 'JXQV', SYMBOLS, ['JXQV', 'KLMN'])).toBe(true);
    // "No Hate" is a label of its own, not "Hate" with a word before it.
    expect(ok('No Hate', 'Hate', TEH)).toBe(false);
    expect(ok('No Hate.', 'No Hate', TEH)).toBe(true);
    // The strict verdict takes none of these.
    expect(scoreStrict('Hate.', 'Hate').correct).toBe(false);
  });

  it('does not read a label out of a sentence, nor a line after the answer line', () => {
    expect(ok('The answer is Hate because it insults a group.', 'Hate', TEH)).toBe(false);
    expect(ok('I am not sure.\nHate', 'Hate', TEH)).toBe(false);
    expect(ok('Question: another tweet\nAnswer: Hate', 'Hate', TEH)).toBe(false);
    expect(ok('', 'Hate', TEH)).toBe(false);
    expect(ok('Output:\n\n', 'Hate', TEH)).toBe(false);
  });

  it('counts a generation that lists the labels as no answer', () => {
    expect(scoreAnswer('BJQE\nWYAR\nBJQE\nWYAR', 'BJQE', { prompt: SYMBOLS })).toEqual({ correct: false, extracted: 'BJQE / WYAR' });
    // The same label again confirms it; a question after it is no label.
    expect(ok('BJQE\n\nBJQE\nWYAR', 'BJQE', SYMBOLS)).toBe(true);
    expect(ok('BJQE\nQuestion: next', 'BJQE', SYMBOLS)).toBe(true);
  });

  it('reads lists: a bare first line as the list, else the first bracketed list', () => {
    expect(ok('Output: 9', '[9]', LIST)).toBe(true);
    expect(ok('Output:\n9, 9, 6\n\nUser: [3]', '[9, 9, 6]', LIST)).toBe(true);
    expect(ok('Output: [4,1,  5]\n', '[4, 1, 5]', LIST)).toBe(true);
    expect(ok('The list is [5, 2].', '[5, 2]', LIST)).toBe(true);
    expect(ok('9 apples', '[9]', LIST)).toBe(false);
    expect(ok('[5, 2, 1]', '[5, 2]', LIST)).toBe(false);
  });

  it('skips a restated query, and only the query', () => {
    expect(scoreAnswer('Output: Input: [1, 0, 6]\nLabel: [7]\n\nExplanation: ...', '[7]', { prompt: LIST })).toEqual({ correct: true, extracted: '[7]' });
    // A copied exemplar is not the query: its first list is what the model answered.
    expect(ok('Input: [9]\nLabel: [5, 2]', '[5, 2]', LIST)).toBe(false);
    // Classification: the query block with or without its instruction line.
    expect(ok('Question: Label the tweet.\nthe query\nAnswer: Hate', 'Hate', TEH)).toBe(true);
    expect(ok('Question: the query\nAnswer: Hate', 'Hate', TEH)).toBe(true);
    expect(ok('Question: I love you\nAnswer: Hate', 'Hate', TEH)).toBe(false);
    // Without the prompt nothing is known to be restated.
    expect(ok('Input: [1, 0, 6]\nLabel: [7]', '[7]')).toBe(false);
  });

  it('keeps quoted targets whole (simple Turing concepts)', () => {
    const turing = "Input: '10'\nOutput: '1'\n\nInput: '0'\nOutput: ''\n\nInput: '11'\nOutput:";
    expect(ok(" '11'\n\nInput: '0'", "'11'", turing)).toBe(true);
    expect(ok(" ''\n", "''", turing)).toBe(true);
    expect(ok(" '1'\n", "'11'", turing)).toBe(false);
  });
});

/**
 * The paper's hand scores: half of its generations (phi-2 and flan-phi-2) with the authors' scores,
 * beside the project. Rows scored 0.5 count as disagreements whatever the verdict.
 */
const HAND = join(import.meta.dirname, '../../../../../shared/data/paper/hand_scores_dev.json');

interface HandRow {
  suite: string;
  dataset: string;
  model: string;
  prompt: string;
  target: string;
  generation: string;
  hand_score: number;
}

describe.skipIf(!existsSync(HAND))("agreement with the paper's hand scores", () => {
  const rows = (existsSync(HAND) ? JSON.parse(readFileSync(HAND, 'utf8')) : []) as HandRow[];
  const target = (r: HandRow) => paperTarget({ dataset: r.dataset, target: r.target });

  it('the answer verdict agrees with at least 95% of them, overall and per suite and model', () => {
    const groups = new Map<string, { n: number; answer: number; strict: number }>();
    let answer = 0;
    let strict = 0;
    for (const r of rows) {
      const hand = r.hand_score === 1 ? true : r.hand_score === 0 ? false : null;
      const a = scoreAnswer(r.generation, target(r), { prompt: r.prompt }).correct === hand;
      const s = scoreStrict(r.generation, target(r)).correct === hand;
      const key = `${r.suite} / ${r.model}`;
      const g = groups.get(key) ?? { n: 0, answer: 0, strict: 0 };
      g.n++;
      g.answer += Number(a);
      g.strict += Number(s);
      groups.set(key, g);
      answer += Number(a);
      strict += Number(s);
    }
    const pct = (k: number, n: number) => `${((100 * k) / n).toFixed(1)}%`;
    const lines = [...groups].map(([key, g]) => `${key.padEnd(28)} ${String(g.n).padStart(3)} rows: answer ${pct(g.answer, g.n).padStart(6)}, strict ${pct(g.strict, g.n).padStart(6)}`);
    console.log(`agreement with the hand scores, ${rows.length} rows: answer ${answer} (${pct(answer, rows.length)}), strict ${strict} (${pct(strict, rows.length)})\n${lines.join('\n')}`);
    expect(rows.length).toBe(495);
    expect(answer / rows.length).toBeGreaterThanOrEqual(0.95);
    // The figures the page and the README quote are these.
    expect({ rows: rows.length, answer, strict }).toEqual(HAND_SCORE_AGREEMENT);
    expect(answer).toBeGreaterThan(strict);
    // No suite or model is left behind by the pooled figure.
    for (const [key, g] of groups) expect(g.answer / g.n, key).toBeGreaterThanOrEqual(0.95);
  });

  it('settles only when no continuation changes either verdict (every prefix of every generation)', () => {
    let settledPrefixes = 0;
    for (const r of rows) {
      const context = { prompt: r.prompt };
      const full = [scoreAnswer(r.generation, target(r), context), scoreStrict(r.generation, target(r))];
      for (let n = 0; n <= r.generation.length; n++) {
        // verdictsSettled, with the answer reading kept for the comparison.
        const prefix = r.generation.slice(0, n);
        const reading = readAnswer(prefix, target(r), context);
        if (!reading.settled || !strictSettled(prefix, target(r))) continue;
        settledPrefixes++;
        const now = [reading, scoreStrict(prefix, target(r))].map(({ correct, extracted }) => ({ correct, extracted }));
        if (JSON.stringify(now) !== JSON.stringify(full)) expect.fail(`settled at ${n} of ${JSON.stringify(r.generation)}: ${JSON.stringify(now)} then ${JSON.stringify(full)}`);
      }
    }
    expect(settledPrefixes).toBeGreaterThan(10_000);
    expect(verdictsSettled(rows[0].generation, target(rows[0]), { prompt: rows[0].prompt })).toBe(true);
  });
});
