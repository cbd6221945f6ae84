import { describe, expect, it } from 'vitest';
import { checkMapping, distinctValues, mapRows, MappingError, toInstructionExamples } from '../../../../src/engine/data/mapping';
import { parseUpload } from '../../../../src/engine/data/parse';
import { lengthStats, summarizeDataset, type Tokenizer } from '../../../../src/engine/data/summary';

const jsonl = (...rows: unknown[]) => rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n');

describe('column mapping', () => {
  it('maps instruction columns and keeps line numbers', () => {
    const p = parseUpload(jsonl({ q: 'What?', a: 'That.' }, { q: 'Why?', a: 'Because.' }), { format: 'jsonl' });
    const m = mapRows(p, { input: 'q', output: 'a' });
    expect(m.rows).toEqual([
      { line: 1, input: 'What?', output: 'That.' },
      { line: 2, input: 'Why?', output: 'Because.' },
    ]);
    expect(m.problems).toEqual([]);
    expect(m.badRowCount).toBe(0);
  });

  it('reports every kind of bad value with its line and column, and keeps the good rows', () => {
    const p = parseUpload(
      jsonl(
        { text: 'fine', label: 1 }, // 1
        { label: 0 }, // 2: missing text
        { text: null, label: 0 }, // 3: null text
        { text: '   \t', label: 1 }, // 4: blank text
        { text: { nested: true }, label: 1 }, // 5: not text
        { text: 'ok', label: 7 }, // 6: label outside the set
        { text: 'ok' }, // 7: missing label
        { text: 'x'.repeat(11), label: '0' }, // 8: too long
        '{broken', // 9: parser problem
        { text: '', label: ' ' }, // 10: two problems on one row
        { text: 'also fine', label: ' 0 ' }, // 11: label trimmed
      ),
      { format: 'jsonl' },
    );
    const m = mapRows(p, { input: 'text', label: 'label', labelMap: { '1': 'positive', '0': 'negative' } }, { maxFieldChars: 10 });
    expect(m.rows).toEqual([
      { line: 1, input: 'fine', label: 'positive' },
      { line: 11, input: 'also fine', label: 'negative' },
    ]);
    expect(m.problems.map((x) => [x.line, x.kind, x.column])).toEqual([
      [2, 'missing-field', 'text'],
      [3, 'missing-field', 'text'],
      [4, 'empty-text', 'text'],
      [5, 'not-text', 'text'],
      [6, 'unknown-label', 'label'],
      [7, 'missing-field', 'label'],
      [8, 'too-long', 'text'],
      [9, 'malformed-json', undefined],
      [10, 'empty-text', 'text'],
      [10, 'empty-text', 'label'],
    ]);
    expect(m.problems.find((x) => x.kind === 'unknown-label')!.message).toBe('Label "7" is not in the label set ("0", "1").');
    expect(m.problems.find((x) => x.kind === 'too-long')!.message).toBe('The input in column "text" is 11 characters; the limit is 10.');
    expect(m.badRowCount).toBe(9);
  });

  it('without a label set, every non-empty value is a label', () => {
    const p = parseUpload('sentence,label\nA,SUBJ\nB,OBJ\nC,\n', { format: 'csv' });
    const m = mapRows(p, { input: 'sentence', label: 'label' });
    expect(m.rows.map((r) => r.label)).toEqual(['SUBJ', 'OBJ']);
    expect(m.problems.map((x) => [x.line, x.kind])).toEqual([[4, 'empty-text']]);
  });

  it('turns instruction rows into template examples', () => {
    expect(toInstructionExamples([{ line: 1, input: 'q', output: 'a' }])).toEqual([{ question: 'q', response: 'a' }]);
    expect(() => toInstructionExamples([{ line: 4, input: 'q', label: 'x' }])).toThrow('Row at line 4 has no output: map a response column for instruction data.');
  });

  it('keeps the parsed file intact so the user can map again', () => {
    const p = parseUpload(jsonl({ a: 'x', b: 'y', c: 'z' }), { format: 'jsonl' });
    expect(mapRows(p, { input: 'a', output: 'b' }).rows[0]).toMatchObject({ input: 'x', output: 'y' });
    expect(mapRows(p, { input: 'c', output: 'a' }).rows[0]).toMatchObject({ input: 'z', output: 'x' });
  });

  it('rejects mappings that cannot work, saying what to fix', () => {
    const cols = ['q', 'a', 'l'];
    expect(() => checkMapping(cols, { input: 'nope', output: 'a' })).toThrow('The input column "nope" is not in the file; its columns are: "q", "a", "l".');
    expect(() => checkMapping(cols, { input: 'q' })).toThrow(/output .* or a label column/);
    expect(() => checkMapping(cols, { input: 'q', output: 'q' })).toThrow('The column "q" is mapped as both input and output.');
    expect(() => checkMapping(cols, { input: 'q', label: 'l', labelMap: { '1': 'yes' } })).toThrow(/at least two labels/);
    expect(() => checkMapping(cols, { input: 'q', output: 'a', labelMap: { '1': 'y', '0': 'n' } })).toThrow(/without a label column/);
    expect(() => checkMapping(cols, { input: 'q', label: 'l', labelMap: { '1': 'y', '0': ' ' } })).toThrow(/needs a non-empty name/);
    expect(() => checkMapping(cols, { input: 'q', label: 'l', labelMap: { ' 1': 'y', '0': 'n' } })).toThrow(MappingError);
  });

  it('lists distinct label values by frequency', () => {
    const p = parseUpload('t,l\na,x\nb,y\nc,x\nd, x \ne,\n', { format: 'csv' });
    expect(distinctValues(p, 'l')).toEqual([
      { value: 'x', count: 3 },
      { value: 'y', count: 1 },
    ]);
  });
});

/** Whitespace-separated words: easy to count by hand. */
const wordTokenizer: Tokenizer = { encode: (text) => text.split(/\s+/).filter(Boolean).map((w) => w.length) };

describe('dataset summary', () => {
  const rows = [
    { line: 1, input: 'a b c', label: 'pos' },
    { line: 2, input: 'a', label: 'neg' },
    { line: 3, input: 'a b c d e f g h i j', label: 'pos' },
    { line: 4, input: 'a b', label: 'pos' },
  ];

  it('gives a preview, label counts and token lengths', () => {
    const s = summarizeDataset(rows, { tokenizer: wordTokenizer, previewRows: 2, bins: 5, limit: 3 });
    expect(s.rowCount).toBe(4);
    expect(s.preview).toEqual(rows.slice(0, 2));
    expect(s.labelCounts).toEqual([
      { label: 'pos', count: 3 },
      { label: 'neg', count: 1 },
    ]);
    const t = s.tokenLengths!;
    expect([t.count, t.min, t.max, t.mean, t.median, t.p95, t.overLimit]).toEqual([4, 1, 10, 4, 2, 10, 1]);
    // lengths 3, 1, 10, 2 in bins of width ceil(11 / 5) = 3: [0,3) [3,6) [6,9) [9,12)
    expect(t.histogram).toEqual([
      { from: 0, to: 3, count: 2 },
      { from: 3, to: 6, count: 1 },
      { from: 6, to: 9, count: 0 },
      { from: 9, to: 12, count: 1 },
    ]);
  });

  it('measures input and output together by default, and only a sample when asked', () => {
    const s = summarizeDataset([{ line: 1, input: 'a b', output: 'c d e' }, { line: 2, input: 'x', output: 'y' }], {
      tokenizer: wordTokenizer,
      sampleLimit: 1,
    });
    expect(s.tokenLengths!.count).toBe(1);
    expect(s.tokenLengths!.max).toBe(5);
    expect(s.labelCounts).toEqual([]);
    expect(summarizeDataset(rows).tokenLengths).toBeNull();
  });

  it('histogram bins always cover every length exactly once', () => {
    for (const lengths of [[0], [5], [0, 0, 1], [511, 512, 513, 2000], Array.from({ length: 97 }, (_, i) => (i * 37) % 700)]) {
      for (const bins of [1, 3, 20]) {
        const t = lengthStats(lengths, 512, bins);
        expect(t.histogram.reduce((n, b) => n + b.count, 0)).toBe(lengths.length);
        expect(t.histogram.length).toBeLessThanOrEqual(bins);
        expect(t.histogram[t.histogram.length - 1].to).toBeGreaterThan(t.max);
        for (const len of lengths) {
          const hit = t.histogram.filter((b) => len >= b.from && len < b.to);
          expect(hit.length).toBe(1);
        }
      }
    }
    expect(lengthStats([], 512, 4).histogram).toEqual([]);
    expect(() => lengthStats([1], 512, 0)).toThrow(/bins/);
  });
});
