import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Papa from 'papaparse';
import { describe, expect, it } from 'vitest';
import { parsePaperResults } from '../../../../src/engine/eval/paper';
import {
  accuracyTable,
  accuracyTableToCsv,
  compareWithPaper,
  modelInput,
  toItemResult,
  type EvalItemResult,
  type EvalRunResult,
  RESULT_CSV_COLUMNS,
  resultsFromJson,
  resultsToCsv,
  resultsToJson,
} from '../../../../src/engine/eval/results';
import { scoreVerdicts } from '../../../../src/engine/eval/scoring';

const DATA = join(import.meta.dirname, '../../../../public/data');
const ic = { id: 'x', suite: 'in_context' as const, dataset: 'teh', format: 'instruction_label', prompt: 'Question: q\nAnswer: \n', target: 'Hate', labels: ['No Hate', 'Hate'] };

function item(suite: EvalItemResult['suite'], dataset: string, format: string, n: number, generation: string, target: string): EvalItemResult {
  const prompt = `Question: "quoted", comma\nAnswer: \n`;
  const { strict, answer } = scoreVerdicts(generation, target, { prompt });
  return { id: `gen/${suite}/${dataset}/${format}/${n}`, suite, dataset, format, prompt, target, generation, verdict: answer, strict, answer };
}

const run: EvalRunResult = {
  model: 'phi-2',
  adapter: 'flan r64',
  seed: 7,
  settings: { wrapper: 'paper', decoding: 'greedy', maxNewTokens: 50, scoring: 'generation', precision: 'int8', count: 2 },
  suite: 'in_context',
  items: [
    item('in_context', 'teh', 'instruction_label', 0, 'Hate\nQuestion: x', 'Hate'),
    item('in_context', 'teh', 'instruction_label', 1, 'Hate', 'No Hate'),
    { ...item('in_context', 'teo', 'instruction_label', 0, 'Offensive.', 'Offensive'), review: 0.5 },
    item('in_context', 'teo', 'instruction_label', 1, '=1+1, "tricky"\r\nline', 'Not Offensive'),
    item('bigbench', 'turing', '3_shot', 0, "'00'", "'00'"),
  ],
  startedAt: '2025-01-02T03:04:05.000Z',
  durationMs: 1234,
};
const wrong = { correct: false, extracted: '' };
const base: EvalRunResult = { ...run, adapter: null, items: run.items.map((i) => ({ ...i, verdict: wrong, strict: wrong, answer: wrong })) };

describe('accuracy tables', () => {
  it('count per model, adapter, suite, dataset and format, with pooled "all" rows', () => {
    const rows = accuracyTable([run, base]);
    const pick = (adapter: string | null, dataset: string, format = 'instruction_label') =>
      rows.find((r) => r.adapter === adapter && r.dataset === dataset && r.format === format)!;
    expect(pick('flan r64', 'teh')).toMatchObject({ correct: 1, total: 2, accuracy: 0.5, answer: 1, strict: 1, reviewed: 0, handScore: 0 });
    // "Offensive." is right by the answer verdict, wrong by the strict one; its hand review is a half.
    expect(pick('flan r64', 'teo')).toMatchObject({ correct: 1, total: 2, answer: 1, strict: 0, reviewed: 1, handScore: 0.5 });
    expect(pick('flan r64', 'all')).toMatchObject({ correct: 2, total: 4, accuracy: 0.5, answer: 2, strict: 1, reviewed: 1, handScore: 0.5 });
    expect(pick('flan r64', 'turing', '3_shot')).toMatchObject({ correct: 1, total: 1, suite: 'bigbench' });
    expect(pick(null, 'teh')).toMatchObject({ correct: 0, total: 2 });
    expect(rows.length).toBe(2 * (3 + 2));
  });

  it("put the paper's hand-scored numbers beside each row, pooled the same way", () => {
    const reference = parsePaperResults(readFileSync(`${DATA}/paper/results.json`, 'utf8'));
    const compared = compareWithPaper(accuracyTable([run]), reference);
    const teh = compared.find((r) => r.dataset === 'teh')!;
    expect(teh.paper.map((p) => [p.model, p.correct, p.total])).toEqual([
      ['phi-2', 2, 25],
      ['flan-phi-2', 21, 25],
      ['flan-phi-2-symbol', 16, 25],
      ['mistral-7b-instruct', 20, 25],
      ['gpt-3.5', 21, 25],
    ]);
    // "all" pools exactly the datasets this run covered: teh + teo.
    const all = compared.find((r) => r.dataset === 'all' && r.suite === 'in_context')!;
    expect(all.paper.find((p) => p.model === 'flan-phi-2')).toEqual({ model: 'flan-phi-2', correct: 21 + 14, total: 50, accuracy: 0.7 });
    expect(compared.find((r) => r.dataset === 'turing')!.paper.find((p) => p.model === 'phi-2')).toMatchObject({ correct: 6, total: 30 });
    // A combination the paper did not run gets no number.
    const user = compareWithPaper(accuracyTable([{ ...run, items: [item('user', 'mine', 'flipped', 0, 'a', 'a')] }]), reference);
    expect(user.every((r) => r.paper.length === 0)).toBe(true);

    const csv = Papa.parse<string[]>(accuracyTableToCsv(compared, ['phi-2', 'gpt-3.5']).trim(), { header: false }).data;
    expect(csv[0]).toEqual(['model', 'adapter', 'suite', 'dataset', 'format', 'correct', 'total', 'accuracy', 'answer', 'strict', 'reviewed', 'hand_score', 'paper_phi-2', 'paper_gpt-3.5']);
    expect(csv.find((r) => r[3] === 'teh')).toEqual(['phi-2', 'flan r64', 'in_context', 'teh', 'instruction_label', '1', '2', '0.5000', '1', '1', '0', '0', '0.0800', '0.8400']);
    expect(csv.find((r) => r[3] === 'teo')!.slice(5, 12)).toEqual(['1', '2', '0.5000', '1', '0', '1', '0.5']);
  });
});

describe('result export', () => {
  it('writes CSV that reads back to the same cells, quotes, commas and newlines included', () => {
    const csv = resultsToCsv([run]);
    const parsed = Papa.parse<Record<string, string>>(csv, { header: true, skipEmptyLines: true });
    expect(parsed.errors).toEqual([]);
    expect(parsed.meta.fields).toEqual([...RESULT_CSV_COLUMNS]);
    expect(parsed.data.length).toBe(5);
    const tricky = parsed.data[3];
    // A formula-like cell comes back with the leading ' that keeps a spreadsheet from running it.
    expect(tricky.generation).toBe("'=1+1, \"tricky\"\r\nline");
    expect(tricky.prompt).toBe(run.items[3].prompt);
    expect(tricky.correct).toBe('false');
    expect(parsed.data[0]).toMatchObject({ model: 'phi-2', adapter: 'flan r64', seed: '7', id: 'gen/in_context/teh/instruction_label/0', correct: 'true', extracted: 'Hate', hand_review: '' });
    expect(parsed.data[2]).toMatchObject({ correct: 'true', answer: 'true', strict: 'false', hand_review: '0.5', extracted: 'Offensive', strict_extracted: 'Offensive.' });
  });

  it('writes JSON that reads back identically, and refuses other files', () => {
    expect(resultsFromJson(resultsToJson([run, base]))).toEqual([run, base]);
    expect(JSON.parse(resultsToJson([run])).version).toBe(2);
    expect(() => resultsFromJson('{"runs": []}')).toThrow(/not an evaluation results file/);
    expect(() => resultsFromJson(JSON.stringify({ format: 'phi2-lora-eval-results', version: 1, runs: [{ model: 'x', items: [{ id: 'a' }] }] }))).toThrow(
      /without id, target or verdict/,
    );
  });

  it('reads files of the first version, giving their items both verdicts and counting the answer one', () => {
    // Version 1 kept only the strict verdict, as `verdict`; a rank-scored run keeps its rank verdict.
    const old = (i: EvalItemResult) => ({ id: i.id, suite: i.suite, dataset: i.dataset, format: i.format, prompt: i.prompt, target: i.target, generation: i.generation, verdict: i.strict });
    const v1 = JSON.stringify({ format: 'phi2-lora-eval-results', version: 1, runs: [{ ...run, items: run.items.map(old) }] });
    const [read] = resultsFromJson(v1);
    expect(read.items.map((i) => [i.verdict, i.strict, i.answer])).toEqual(run.items.map((i) => [i.answer, i.strict, i.answer]));
    const rank = { ...ic, generation: 'Hate', verdict: { correct: false, extracted: 'No Hate' }, logLikelihoods: [-0.5, -2] };
    const [ranked] = resultsFromJson(JSON.stringify({ format: 'phi2-lora-eval-results', version: 1, runs: [{ ...run, settings: { ...run.settings, scoring: 'rank' }, items: [rank] }] }));
    expect(ranked.items[0]).toMatchObject({ verdict: rank.verdict, answer: { correct: true, extracted: 'Hate' }, strict: { correct: true, extracted: 'Hate' } });
    // A hand review that is not 1, 0.5 or 0 is dropped rather than counted.
    const [odd] = resultsFromJson(resultsToJson([{ ...run, items: [{ ...run.items[0], review: 2 as 1 }] }]));
    expect(odd.items[0].review).toBeUndefined();
  });
});

describe('runner helpers', () => {
  it("wrap the prompt the paper's way or not at all", () => {
    expect(modelInput(ic, 'paper')).toBe('Instruct: Question: q\nAnswer: \n\nOutput:');
    expect(modelInput(ic, 'none')).toBe(ic.prompt);
  });

  it('score by generation or by rank', () => {
    const right = { correct: true, extracted: 'Hate' };
    expect(toItemResult(ic, 'Answer: Hate\n', 'generation', { ms: 12 })).toEqual({ ...ic, generation: 'Answer: Hate\n', verdict: right, strict: right, answer: right, ms: 12 });
    // The answer verdict counts by default; the strict one is kept beside it.
    expect(toItemResult(ic, ' hate.', 'generation')).toMatchObject({ verdict: right, answer: right, strict: { correct: false, extracted: 'hate.' } });
    const ranked = toItemResult(ic, '', 'rank', { logLikelihoods: [-0.5, -2] });
    expect(ranked.verdict).toEqual({ correct: false, extracted: 'No Hate' });
    expect(ranked.answer).toEqual({ correct: false, extracted: '' });
    expect(ranked.logLikelihoods).toEqual([-0.5, -2]);
    expect(() => toItemResult(ic, '', 'rank')).toThrow(/needs the candidates' log-likelihoods/);
    expect(() => toItemResult({ ...ic, labels: undefined }, '', 'rank', { logLikelihoods: [0] })).toThrow(/no candidate labels/);
  });
});
