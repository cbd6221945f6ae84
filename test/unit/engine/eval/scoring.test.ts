import { describe, expect, it } from 'vitest';
import { scoreByRank } from '../../../../src/engine/eval/scoring';
import { firstBracketedList, isListTarget, normalizeList, scoreStrict as scoreGeneration, stripAnswerPrefixes } from '../../../../src/engine/eval/strict';

// The strict verdict, exactly as documented; answer.test.ts covers the answer verdict.
const ok = (generation: string, target: string) => scoreGeneration(generation, target).correct;

describe('strict rule: label targets', () => {
  it('compares the first line, ignoring what the model writes after it', () => {
    expect(ok('Hate\nQuestion: Label the following tweet...\nAnswer: No Hate', 'Hate')).toBe(true);
    expect(ok(' No Hate \n\nNo Hate', 'No Hate')).toBe(true);
    expect(ok('Not Climate Event\r\nmore', 'Not Climate Event')).toBe(true);
    expect(scoreGeneration('  Zujib\nInput: ...', 'Zujib')).toEqual({ correct: true, extracted: 'Zujib' });
  });

  it('strips leading Output:/Answer:/Symbol:/A: prefixes, also repeated', () => {
    expect(ok('Answer: Hate', 'Hate')).toBe(true);
    expect(ok('Output: Answer: Symbol:  77696\n', '77696')).toBe(true);
    expect(ok('A: A: FOPZ', 'FOPZ')).toBe(true);
    expect(ok('\n\nSymbol:Objective', 'Objective')).toBe(true);
    expect(stripAnswerPrefixes('Output:\n Answer: x')).toBe('x');
    // Only those four, and only at the start, and case-sensitive.
    expect(ok('Label: Hate', 'Hate')).toBe(false);
    expect(ok('answer: Hate', 'Hate')).toBe(false);
    expect(ok('Hate Answer: Hate', 'Hate')).toBe(false);
    // A label that starts with a prefix's letters is not cut ("A:" needs the colon).
    expect(ok('ABCD', 'ABCD')).toBe(true);
  });

  it('counts a label inside an explanation, or with punctuation, as wrong', () => {
    expect(scoreGeneration('The answer is Hate because the tweet insults a group.', 'Hate')).toEqual({
      correct: false,
      extracted: 'The answer is Hate because the tweet insults a group.',
    });
    expect(ok('Hate.', 'Hate')).toBe(false);
    expect(ok('Not Hate', 'Hate')).toBe(false);
    expect(ok('hate', 'Hate')).toBe(false);
  });

  it('counts an empty or blank generation as wrong', () => {
    expect(scoreGeneration('', 'Hate')).toEqual({ correct: false, extracted: '' });
    expect(ok('   \n  \n', 'Hate')).toBe(false);
    expect(ok('Answer:', 'Hate')).toBe(false);
    expect(ok('\nHate', 'Hate')).toBe(true); // leading blank lines go with the whitespace
  });

  it('scores the quoted Turing targets on the first line', () => {
    expect(ok(" '00'\n\nInput: '1'", "'00'")).toBe(true);
    expect(ok("''", "''")).toBe(true);
    expect(ok("'00", "'00'")).toBe(false);
    expect(ok('00', "'00'")).toBe(false);
  });
});

describe('strict rule: list targets', () => {
  it('recognises list targets', () => {
    expect(isListTarget('[4, 1, 5, 9]')).toBe(true);
    expect(isListTarget('[]')).toBe(true);
    expect(isListTarget(' [1] ')).toBe(true);
    expect(isListTarget('[1] [2]')).toBe(false);
    expect(isListTarget("'0'")).toBe(false);
  });

  it('takes the first bracketed list, wherever it starts, with odd spacing inside', () => {
    expect(ok('[4, 1, 5, 9]\n\nInput: [1, 2]\nLabel: [1, 2, 9]', '[4, 1, 5, 9]')).toBe(true);
    expect(ok('[4,1,5,9]', '[4, 1, 5, 9]')).toBe(true);
    expect(ok('[ 4 ,  1,5 ,\t9 ]', '[4, 1, 5, 9]')).toBe(true);
    expect(ok('Label: the list becomes [4, 1, 5, 9].', '[4, 1, 5, 9]')).toBe(true);
    expect(scoreGeneration('Output: [65]\nUser: [1]', '[65]')).toEqual({ correct: true, extracted: '[65]' });
    expect(ok('[ ]', '[]')).toBe(true);
  });

  it('is wrong for another list, an unclosed list, or no list', () => {
    expect(ok('[4, 1, 5]', '[4, 1, 5, 9]')).toBe(false);
    expect(ok('[1, 4, 5, 9]', '[4, 1, 5, 9]')).toBe(false);
    expect(ok('[4, 1, 5, 9', '[4, 1, 5, 9]')).toBe(false);
    expect(ok('4, 1, 5, 9', '[4, 1, 5, 9]')).toBe(false);
    expect(ok('[41, 5, 9]', '[4, 1, 5, 9]')).toBe(false);
    // Only the first list counts, even if the right one follows.
    expect(ok('[1]\n[4, 1, 5, 9]', '[4, 1, 5, 9]')).toBe(false);
    expect(scoreGeneration('', '[1]')).toEqual({ correct: false, extracted: '' });
  });

  it('balances nested brackets and normalises whitespace consistently', () => {
    expect(firstBracketedList('x [[1, 2], [3]] y [4]')).toBe('[[1, 2], [3]]');
    expect(firstBracketedList('[[1]')).toBeNull();
    expect(normalizeList('[ [1 ,2],[ 3 ] ]')).toBe('[[1, 2], [3]]');
    expect(normalizeList('[a  b, c]')).toBe('[a b, c]');
  });
});

describe('rank classification', () => {
  it('picks the candidate with the largest log-likelihood', () => {
    expect(scoreByRank(['Hate', 'No Hate'], [-3.2, -1.5], 'No Hate')).toEqual({ correct: true, predicted: 'No Hate', predictedIndex: 1 });
    expect(scoreByRank(['Hate', 'No Hate'], [-0.1, -1.5], 'No Hate')).toEqual({ correct: false, predicted: 'Hate', predictedIndex: 0 });
    expect(scoreByRank(['a', 'b', 'c'], [-Infinity, -2, -2], 'b').predicted).toBe('b'); // ties go to the earlier one
  });

  it('rejects inputs it cannot rank', () => {
    expect(() => scoreByRank(['a', 'b'], [-1], 'a')).toThrow(/2 labels but 1 log-likelihoods/);
    expect(() => scoreByRank(['a', 'b'], [-1, NaN], 'a')).toThrow(/NaN/);
    expect(() => scoreByRank(['a', 'b'], [-1, -2], 'c')).toThrow(/not among the candidate labels/);
    expect(() => scoreByRank([], [], 'a')).toThrow(/at least one/);
  });
});
