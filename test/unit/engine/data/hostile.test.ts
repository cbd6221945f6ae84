import { describe, expect, it } from 'vitest';
import { distinctValues, mapRows } from '../../../../src/engine/data/mapping';
import { parseUpload, type ParsedUpload } from '../../../../src/engine/data/parse';
import { jsonExcerpt } from '../../../../src/engine/data/problems';

const DEEP = 200_000;
const deepArray = (n: number) => '['.repeat(n) + ']'.repeat(n);

describe('datasets that would overflow the stack', () => {
  it('refuses a JSONL row nested 200,000 deep as a bad row and maps the others', () => {
    const text = ['{"q": "a", "a": "b"}', `{"q": ${deepArray(DEEP)}, "a": "x"}`, '{"q": "c", "a": "d"}'].join('\n');
    const parsed = parseUpload(text, { format: 'jsonl' });
    expect(parsed.records.map((r) => r.line)).toEqual([1, 3]);
    expect(parsed.problems).toMatchObject([{ line: 2, kind: 'too-deep', message: expect.stringMatching(/nested more than 64 levels deep \(at character \d+\)/) }]);
    const mapped = mapRows(parsed, { input: 'q', output: 'a' });
    expect(mapped.rows.map((r) => r.input)).toEqual(['a', 'c']);
    expect(mapped.badRowCount).toBe(1);
    // What a worker sends to the page is cloned structurally: it must not hold the deep value.
    expect(() => structuredClone(mapped)).not.toThrow();
  });

  it('does the same inside a JSON array', () => {
    const text = `[{"q": "a", "a": "b"},\n{"q": {"x": ${deepArray(DEEP)}}, "a": "x"},\n{"q": "c", "a": "d"}]`;
    const parsed = parseUpload(text, { format: 'json' });
    expect(parsed.records.map((r) => r.line)).toEqual([1, 3]);
    expect(parsed.problems).toMatchObject([{ line: 2, kind: 'too-deep' }]);
  });

  it('maps around a deeply nested cell that arrived already parsed (Hub rows), reporting it', () => {
    let deep: unknown = [];
    for (let i = 0; i < DEEP; i++) deep = [deep];
    const parsed: ParsedUpload = {
      format: 'json',
      columns: ['q', 'a'],
      records: [
        { line: 1, endLine: 1, values: { q: 'fine', a: 'yes' } },
        { line: 2, endLine: 2, values: { q: deep, a: 'no' } },
      ],
      problems: [],
      fileProblems: [],
      rowsSeen: 2,
    };
    const mapped = mapRows(parsed, { input: 'q', output: 'a' });
    expect(mapped.rows).toEqual([{ line: 1, input: 'fine', output: 'yes' }]);
    expect(mapped.problems).toMatchObject([{ line: 2, kind: 'not-text', excerpt: expect.stringMatching(/^\[\[\[\[.*…$/) }]);
    expect(mapped.problems[0].excerpt!.length).toBeLessThanOrEqual(201);
  });

  it('writes bounded excerpts of any JSON value', () => {
    expect(jsonExcerpt({ a: [1, 'x', null], b: { c: true } }, 200)).toBe('{"a":[1,"x",null],"b":{"c":true}}');
    expect(jsonExcerpt(Array.from({ length: 100_000 }, (_, i) => i), 20)).toBe('[0,1,2,3,4,5,6,7,8,9…');
  });
});

describe('column names are data, not object keys', () => {
  const NAMES = ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf'];

  it('maps CSV columns named like Object.prototype members', () => {
    const csv = `${NAMES.join(',')}\nq1,a1,l1,x,y\nq2,a2,l2,x,y\n`;
    const parsed = parseUpload(csv, { format: 'csv' });
    expect(parsed.columns).toEqual(NAMES);
    expect(Object.hasOwn(parsed.records[0].values, '__proto__')).toBe(true);
    const mapped = mapRows(parsed, { input: 'constructor', output: 'toString', label: '__proto__' });
    expect(mapped.problems).toEqual([]);
    expect(mapped.rows).toEqual([
      { line: 2, input: 'q1', output: 'a1', label: 'l1' },
      { line: 3, input: 'q2', output: 'a2', label: 'l2' },
    ]);
    expect(distinctValues(parsed, '__proto__')).toEqual([
      { value: 'l1', count: 1 },
      { value: 'l2', count: 1 },
    ]);
  });

  it('maps JSONL keys named so, and reports a row lacking one as missing (not as a function)', () => {
    const text = ['{"constructor": "q1", "toString": "a1"}', '{"toString": "a2"}', '{"constructor": "q3", "__proto__": "p"}'].join('\n');
    const parsed = parseUpload(text, { format: 'jsonl' });
    expect(parsed.columns).toEqual(['constructor', 'toString', '__proto__']);
    const mapped = mapRows(parsed, { input: 'constructor', output: 'toString' });
    expect(mapped.rows).toEqual([{ line: 1, input: 'q1', output: 'a1' }]);
    expect(mapped.problems).toMatchObject([
      { line: 2, kind: 'missing-field', column: 'constructor' },
      { line: 3, kind: 'missing-field', column: 'toString' },
    ]);
    expect(distinctValues(parsed, 'constructor').map((v) => v.value)).toEqual(['q1', 'q3']);
    expect(mapRows(parsed, { input: '__proto__', output: 'constructor' }).rows).toEqual([{ line: 3, input: 'p', output: 'q3' }]);
  });

  it('takes label values named so in a label set', () => {
    const parsed = parseUpload('text,label\nhi,constructor\nho,toString\nhu,valueOf\n', { format: 'csv' });
    const mapped = mapRows(parsed, { input: 'text', label: 'label', labelMap: { constructor: 'a', toString: 'b' } });
    expect(mapped.rows.map((r) => r.label)).toEqual(['a', 'b']);
    expect(mapped.problems).toMatchObject([{ line: 4, kind: 'unknown-label' }]);
  });
});
