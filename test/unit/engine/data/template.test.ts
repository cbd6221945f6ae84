import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PreTrainedTokenizer } from '@huggingface/transformers';
import { describe, expect, it } from 'vitest';
import { toTrlJsonl } from '../../../../src/engine/data/export';
import type { Tokenizer } from '../../../../src/engine/data/summary';
import { IGNORE_INDEX, tokenizeInstructionData } from '../../../../src/engine/data/template';
import { PAPER_TEMPLATE, parseTemplate, renderTemplate, splitPromptCompletion, TemplateError } from '../../../../src/shared/template';

/** One token per character (its code point): boundaries are obvious and nothing merges. */
const charTokenizer: Tokenizer = { encode: (text) => [...text].map((c) => c.codePointAt(0)!) };

describe('instruction template', () => {
  it("renders the paper's template exactly", () => {
    const t = parseTemplate(PAPER_TEMPLATE);
    expect(renderTemplate(t, { question: 'What is 2+2?', response: '4' })).toBe('### Instruct: What is 2+2?\n ### Output: 4');
    expect(splitPromptCompletion(t, { question: 'Q', response: 'R' })).toEqual({ prompt: '### Instruct: Q\n ### Output: ', completion: 'R' });
  });

  it('accepts text after {response}', () => {
    const t = parseTemplate('<q>{question}</q><a>{response}</a>');
    expect(splitPromptCompletion(t, { question: 'x', response: 'y' })).toEqual({ prompt: '<q>x</q><a>', completion: 'y</a>' });
  });

  it('rejects templates with missing, repeated, misplaced or unknown placeholders', () => {
    expect(() => parseTemplate('### Output: {response}')).toThrow('The template needs {question} exactly once; it has it 0 times.');
    expect(() => parseTemplate('{question} {question} {response}')).toThrow(/\{question\} exactly once; it has it 2 times/);
    expect(() => parseTemplate('{question}')).toThrow(/\{response\} exactly once/);
    expect(() => parseTemplate('{response} then {question}')).toThrow(/must come after \{question\}/);
    expect(() => parseTemplate('{question} {answer} {response}')).toThrow('Unknown placeholder {answer}: a template may only use {question} and {response}.');
    expect(() => parseTemplate('{Question}{response}')).toThrow(TemplateError);
  });

  it('tokenises with loss on every token, as the paper did', () => {
    const set = tokenizeInstructionData([{ question: 'hi', response: 'yo' }], charTokenizer);
    const text = '### Instruct: hi\n ### Output: yo';
    expect(set.rows[0].input_ids).toEqual(charTokenizer.encode(text));
    expect(set.rows[0].labels).toEqual(set.rows[0].input_ids);
    expect([set.truncatedRows, set.noLossRows, set.tokens, set.trainedTokens]).toEqual([0, 0, text.length, text.length]);
  });

  it('masks the prompt with -100 for response-only loss', () => {
    const set = tokenizeInstructionData([{ question: 'hi', response: 'yo' }], charTokenizer, PAPER_TEMPLATE, { lossOn: 'response' });
    const promptLength = '### Instruct: hi\n ### Output: '.length;
    const { input_ids, labels } = set.rows[0];
    expect(labels.slice(0, promptLength).every((l) => l === IGNORE_INDEX)).toBe(true);
    expect(labels.slice(promptLength)).toEqual(charTokenizer.encode('yo'));
    expect(input_ids.length).toBe(promptLength + 2);
    expect(set.trainedTokens).toBe(2);
  });

  it('truncates to maxTokens, counts truncated rows and rows left with nothing to learn', () => {
    const examples = [
      { question: 'short', response: 'ok' },
      { question: 'a much longer question than the limit allows', response: 'lost' },
    ];
    const set = tokenizeInstructionData(examples, charTokenizer, '{question}|{response}', { maxTokens: 12, lossOn: 'response' });
    expect(set.rows.map((r) => r.input_ids.length)).toEqual([8, 12]);
    expect(set.truncatedRows).toBe(1);
    expect(set.noLossRows).toBe(1);
    expect(set.rows[1].labels.every((l) => l === IGNORE_INDEX)).toBe(true);
    expect(() => tokenizeInstructionData(examples, charTokenizer, PAPER_TEMPLATE, { maxTokens: 1 })).toThrow(/maxTokens/);
  });

  it('appends the end-of-text token when asked, and it is trained on', () => {
    const set = tokenizeInstructionData([{ question: 'q', response: 'r' }], charTokenizer, '{question}{response}', { eosTokenId: 50256, lossOn: 'response' });
    expect(set.rows[0].input_ids).toEqual([113, 114, 50256]);
    expect(set.rows[0].labels).toEqual([IGNORE_INDEX, 114, 50256]);
  });

  it("with Phi-2's tokenizer, a token merged across the prompt/response boundary is trained on", () => {
    const dir = join(import.meta.dirname, '../../../../../shared/fixtures/phi2-tokenizer');
    const tokenizer = new PreTrainedTokenizer(
      JSON.parse(readFileSync(`${dir}/tokenizer.json`, 'utf8')),
      JSON.parse(readFileSync(`${dir}/tokenizer_config.json`, 'utf8')),
    );
    const phi: Tokenizer = { encode: (text) => tokenizer.encode(text) };
    const full = phi.encode('### Instruct: hi\n ### Output: Hello world');
    const prompt = phi.encode('### Instruct: hi\n ### Output: ');
    // The prompt alone ends in a lone space token that the full text folds into " Hello".
    expect(prompt[prompt.length - 1]).not.toBe(full[prompt.length - 1]);
    const set = tokenizeInstructionData([{ question: 'hi', response: 'Hello world' }], phi, PAPER_TEMPLATE, { lossOn: 'response' });
    const { input_ids, labels } = set.rows[0];
    expect(input_ids).toEqual(full);
    const masked = labels.filter((l) => l === IGNORE_INDEX).length;
    expect(masked).toBe(prompt.length - 1);
    expect(tokenizer.decode(input_ids.slice(masked))).toBe(' Hello world');
  });
});

describe('TRL export', () => {
  const examples = [
    { question: 'Line one\nline "two"', response: 'Answer' },
    { question: 'sep\u2028arator', response: 'x' },
  ];

  it('writes {"text"} rows with the template applied, one JSON object per line', () => {
    const out = toTrlJsonl(examples, 'text');
    const lines = out.split('\n');
    expect(lines.length).toBe(3);
    expect(lines[2]).toBe('');
    expect(JSON.parse(lines[0])).toEqual({ text: '### Instruct: Line one\nline "two"\n ### Output: Answer' });
    expect(lines[1]).toContain('\\u2028');
    expect(JSON.parse(lines[1])).toEqual({ text: '### Instruct: sep\u2028arator\n ### Output: x' });
  });

  it('writes {"prompt","completion"} rows that join to the same text', () => {
    const text = toTrlJsonl(examples, 'text').trim().split('\n').map((l) => JSON.parse(l).text);
    const pc = toTrlJsonl(examples, 'prompt-completion', PAPER_TEMPLATE).trim().split('\n').map((l) => JSON.parse(l));
    expect(pc[0]).toEqual({ prompt: '### Instruct: Line one\nline "two"\n ### Output: ', completion: 'Answer' });
    expect(pc.map((r) => r.prompt + r.completion)).toEqual(text);
    expect(() => toTrlJsonl(examples, 'text', '{question}')).toThrow(TemplateError);
  });
});
