import { describe, expect, it } from 'vitest';
import { checkUploadSize, detectFormat, parseUpload } from '../../../../src/engine/data/parse';
import { UploadError } from '../../../../src/engine/data/problems';
import { decodeUtf8, findInvalidUtf8Lines } from '../../../../src/engine/data/utf8';

const utf8 = (s: string) => new TextEncoder().encode(s);

/** Joins byte chunks (strings are UTF-8 encoded), so tests can plant invalid bytes at known places. */
function bytes(...parts: Array<string | number[]>): Uint8Array {
  const chunks = parts.map((p) => (typeof p === 'string' ? utf8(p) : Uint8Array.from(p)));
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

describe('format detection', () => {
  it('uses the extension first', () => {
    expect(detectFormat('a.JSONL', '[')).toBe('jsonl');
    expect(detectFormat('a.ndjson', '')).toBe('jsonl');
    expect(detectFormat('a.json', '{')).toBe('json');
    expect(detectFormat('a.csv', 'x\ty')).toBe('csv');
    expect(detectFormat('a.tsv', 'x,y')).toBe('tsv');
  });
  it('falls back to the content', () => {
    expect(detectFormat(undefined, '  [{"a":1}]')).toBe('json');
    expect(detectFormat('data.txt', '{"a":1}\n')).toBe('jsonl');
    expect(detectFormat(undefined, 'text\tlabel\nhi, there\t1')).toBe('tsv');
    expect(detectFormat(undefined, 'text,label\n"a\tb",1')).toBe('csv');
  });
});

describe('JSONL', () => {
  it('reads rows with their line numbers, skipping blank lines and CRLF', () => {
    const p = parseUpload('{"q":"a","r":"b"}\r\n\n{"q":"c","extra":1}\n', { fileName: 'x.jsonl' });
    expect(p.format).toBe('jsonl');
    expect(p.columns).toEqual(['q', 'r', 'extra']);
    expect(p.records.map((r) => [r.line, r.endLine, r.values])).toEqual([
      [1, 1, { q: 'a', r: 'b' }],
      [3, 3, { q: 'c', extra: 1 }],
    ]);
    expect(p.problems).toEqual([]);
    expect(p.rowsSeen).toBe(2);
  });

  it('reports a malformed line and a non-object line, and keeps every other row', () => {
    const text = ['{"q":"1"}', '{"q": "2",}', '["not", "an object"]', '42', '{"q":"5"}'].join('\n');
    const p = parseUpload(text, { format: 'jsonl' });
    expect(p.records.map((r) => r.values.q)).toEqual(['1', '5']);
    expect(p.problems.map((x) => [x.line, x.kind])).toEqual([
      [2, 'malformed-json'],
      [3, 'not-an-object'],
      [4, 'not-an-object'],
    ]);
    expect(p.problems[0].message).toMatch(/^Malformed JSON: /);
    expect(p.problems[0].excerpt).toBe('{"q": "2",}');
    expect(p.problems[1].message).toContain('found an array');
    expect(p.problems[2].message).toContain('found a number');
    expect(p.rowsSeen).toBe(5);
  });

  it('reads a JSON array saved as .jsonl as JSON', () => {
    const p = parseUpload('[\n  {"q": "a"},\n  {"q": "b"}\n]\n', { fileName: 'x.jsonl' });
    expect(p.format).toBe('json');
    expect(p.records.map((r) => [r.line, r.values.q])).toEqual([
      [2, 'a'],
      [3, 'b'],
    ]);
  });

  it('refuses one pretty-printed JSON object and points at its array field', () => {
    expect(() => parseUpload('{\n "data": [{"q": "a"}]\n}', { fileName: 'x.jsonl' })).toThrow(/field "data" holds an array/);
  });

  it('stops at the row limit and says so', () => {
    const p = parseUpload(['{"a":1}', '{"a":2}', 'bad', '{"a":4}'].join('\n'), { format: 'jsonl', maxRows: 3 });
    expect(p.records.length).toBe(2);
    expect(p.problems.length).toBe(1);
    expect(p.rowsSeen).toBe(3);
    expect(p.fileProblems).toEqual(['The file has more than 3 rows; only the first 3 were read.']);
  });
});

describe('JSON array', () => {
  it('reads pretty-printed objects with start and end lines', () => {
    const text = '[\n  {\n    "q": "a, [b]",\n    "r": "}"\n  },\n  {"q": "c\\"d"}\n]';
    const p = parseUpload(text, { fileName: 'x.json' });
    expect(p.records.map((r) => [r.line, r.endLine, r.values])).toEqual([
      [2, 5, { q: 'a, [b]', r: '}' }],
      [6, 6, { q: 'c"d' }],
    ]);
    expect(p.fileProblems).toEqual([]);
  });

  it('keeps the good elements around a malformed one', () => {
    const text = '[\n{"q": "a"},\n{"q": a},\n{"q": "c"},\n7\n]';
    const p = parseUpload(text, { format: 'json' });
    expect(p.records.map((r) => r.values.q)).toEqual(['a', 'c']);
    expect(p.problems.map((x) => [x.line, x.kind])).toEqual([
      [3, 'malformed-json'],
      [5, 'not-an-object'],
    ]);
  });

  it('reports empty elements, an unclosed array and text after it', () => {
    const p1 = parseUpload('[{"q":"a"},,{"q":"b"},]', { format: 'json' });
    expect(p1.records.map((r) => r.values.q)).toEqual(['a', 'b']);
    expect(p1.problems.map((x) => x.kind)).toEqual(['malformed-json']);
    expect(p1.problems[0].message).toContain('empty element');

    const p2 = parseUpload('[{"q":"a"},\n{"q":"b"', { format: 'json' });
    expect(p2.records.map((r) => r.values.q)).toEqual(['a']);
    expect(p2.problems.map((x) => [x.line, x.kind])).toEqual([[2, 'malformed-json']]);

    const p3 = parseUpload('[{"q":"a"},\n', { format: 'json' });
    expect(p3.records.length).toBe(1);
    expect(p3.fileProblems[0]).toContain('not closed');

    const p4 = parseUpload('[{"q":"a"}]\n\noops', { format: 'json' });
    expect(p4.fileProblems).toEqual(['Line 3: text after the closing "]" was ignored.']);
  });

  it('refuses a file that is not an array', () => {
    expect(() => parseUpload('{"q": 1}', { format: 'json' })).toThrow(UploadError);
    expect(() => parseUpload('"hello"', { format: 'json' })).toThrow(/must be an array/);
  });

  it('stops at the row limit', () => {
    const p = parseUpload('[{"a":1},{"a":2},{"a":3}]', { format: 'json', maxRows: 2 });
    expect(p.records.length).toBe(2);
    expect(p.fileProblems[0]).toContain('more than 2 rows');
  });
});

describe('CSV and TSV', () => {
  it('reads quoted fields with commas, quotes and newlines, with the right line numbers', () => {
    const text = 'question,answer\r\n"a, b","say ""hi"""\r\n"multi\r\nline",x\r\nlast,y';
    const p = parseUpload(text, { fileName: 'x.csv' });
    expect(p.columns).toEqual(['question', 'answer']);
    expect(p.records.map((r) => [r.line, r.endLine, r.values])).toEqual([
      [2, 2, { question: 'a, b', answer: 'say "hi"' }],
      [3, 4, { question: 'multi\r\nline', answer: 'x' }],
      [5, 5, { question: 'last', answer: 'y' }],
    ]);
  });

  it('reports rows with too many or too few fields, keeping the rest', () => {
    const p = parseUpload('t,l\na,1\nb,2,3\n\nc\nd,4\n', { format: 'csv' });
    expect(p.records.map((r) => [r.line, r.values.t])).toEqual([
      [2, 'a'],
      [6, 'd'],
    ]);
    expect(p.problems.map((x) => [x.line, x.kind, x.message])).toEqual([
      [3, 'field-count', 'Expected 2 fields (as in the header), found 3.'],
      [5, 'field-count', 'Expected 2 fields (as in the header), found 1.'],
    ]);
  });

  it('reports a quote that never closes, and text after a closing quote', () => {
    const p = parseUpload('t,l\na,1\n"open,2\nc,3\n', { format: 'csv' });
    expect(p.records.map((r) => r.values.t)).toEqual(['a']);
    expect(p.problems.map((x) => [x.line, x.kind, x.message])).toEqual([
      [3, 'csv-quotes', 'A quoted field opened on this line never closes, and lines 3-4 were read as one field.'],
    ]);
    const q = parseUpload('t,l\n"ab"c,1\nx,2\n', { format: 'csv' });
    expect(q.problems.map((x) => x.message)).toEqual([
      'A quoted field has text after its closing quote (inside quotes, write a quote as ""), so it never closes, and lines 2-3 were read as one field.',
    ]);
  });

  it('repairs empty and duplicate header names and says so', () => {
    const p = parseUpload('text,,text\na,b,c\n', { format: 'csv' });
    expect(p.columns).toEqual(['text', 'column_2', 'text_2']);
    expect(p.fileProblems.length).toBe(2);
    expect(p.records[0].values).toEqual({ text: 'a', column_2: 'b', text_2: 'c' });
  });

  it('reads TSV with commas inside fields and drops a UTF-8 BOM', () => {
    const p = parseUpload(bytes([0xef, 0xbb, 0xbf], 'sentence\tlabel\nYes, it is.\tOBJ\n'), { fileName: 'x.tsv' });
    expect(p.format).toBe('tsv');
    expect(p.columns).toEqual(['sentence', 'label']);
    expect(p.records[0].values).toEqual({ sentence: 'Yes, it is.', label: 'OBJ' });
  });

  it('needs a header', () => {
    expect(() => parseUpload('\n\n', { format: 'csv' })).toThrow(/needs a header row/);
  });

  it('stops at the row limit', () => {
    const p = parseUpload('a\n1\n2\n3\n4\n', { format: 'csv', maxRows: 2 });
    expect(p.records.map((r) => r.values.a)).toEqual(['1', '2']);
    expect(p.fileProblems[0]).toContain('more than 2 rows');
  });
});

describe('encoding and size', () => {
  it('reports rows with invalid UTF-8 by line and byte, and keeps the others', () => {
    const file = bytes('{"q":"ok"}\n{"q":"caf', [0xe9], '"}\n{"q":"fine ', [0xe2, 0x82, 0xac], '"}\n');
    const p = parseUpload(file, { fileName: 'x.jsonl' });
    expect(p.records.map((r) => r.values.q)).toEqual(['ok', 'fine €']);
    expect(p.problems).toEqual([
      { line: 2, kind: 'invalid-utf8', message: 'Invalid UTF-8: line 2 has a byte sequence that is not UTF-8 at byte 10 of the line.' },
    ]);
  });

  it('rejects a multi-line CSV record when any of its lines has bad bytes', () => {
    const file = bytes('t,l\n"first\nsec', [0xc0, 0xaf], 'ond",1\nthird,2\n');
    const p = parseUpload(file, { format: 'csv' });
    expect(p.records.map((r) => r.values.t)).toEqual(['third']);
    expect(p.problems.map((x) => [x.line, x.kind])).toEqual([[2, 'invalid-utf8']]);
    expect(p.problems[0].message).toContain('line 3');
  });

  it('notes bad bytes in the header as a file problem', () => {
    const p = parseUpload(bytes('te', [0xff], 'xt,l\na,1\n'), { format: 'csv' });
    expect(p.records.length).toBe(1);
    expect(p.fileProblems).toEqual(['Line 1 has bytes that are not UTF-8 (at byte 3).']);
  });

  it('finds exactly the lines TextDecoder rejects, on random bytes', () => {
    let seed = 12345;
    const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    const decoder = new TextDecoder('utf-8', { fatal: true });
    for (let trial = 0; trial < 400; trial++) {
      // Mostly valid text with a few random bytes, so both outcomes and every lead byte occur.
      const parts: number[] = [];
      const n = 1 + (next() % 40);
      for (let i = 0; i < n; i++) {
        const r = next() % 10;
        if (r < 6) parts.push(...utf8(['a', 'é', '€', '😀', '\n', '字'][next() % 6]));
        else parts.push(next() & 0xff);
      }
      const data = Uint8Array.from(parts);
      const lines: Uint8Array[] = [];
      let start = 0;
      for (let i = 0; i <= data.length; i++) {
        if (i === data.length || data[i] === 0x0a) {
          lines.push(data.subarray(start, i));
          start = i + 1;
        }
      }
      const expected = lines.flatMap((l, k) => {
        try {
          decoder.decode(l);
          return [];
        } catch {
          return [k + 1];
        }
      });
      expect(findInvalidUtf8Lines(data).map((x) => x.line)).toEqual(expected);
    }
  });

  it('refuses UTF-16 with a clear message', () => {
    expect(() => decodeUtf8(Uint8Array.from([0xff, 0xfe, 0x41, 0x00]))).toThrow(/UTF-16.*save it as UTF-8/);
  });

  it('refuses files over the size limit before reading them', () => {
    expect(() => checkUploadSize(200 * 1024 * 1024 + 1)).toThrow(/limit is 200 MB/);
    expect(() => checkUploadSize(200 * 1024 * 1024)).not.toThrow();
    expect(() => parseUpload(utf8('{"a":1}\n'), { maxBytes: 4 })).toThrow(UploadError);
  });
});
