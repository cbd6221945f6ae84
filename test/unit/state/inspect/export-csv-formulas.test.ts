import Papa from 'papaparse';
import { describe, expect, it } from 'vitest';
import { toCsv } from '../../../../src/state/inspect/export';

describe('CSV exports neutralise formulas', () => {
  it("prefixes text a spreadsheet would run with ', and leaves numbers alone", () => {
    const csv = toCsv(['text', 'score'], [
      ['=HYPERLINK("http://x.example","go")', -1.5],
      ['+1', 2],
      ['@SUM(A1)', 0],
      ['-2\nmore', 3],
      ['plain', -0.25],
    ]);
    const rows = Papa.parse<string[]>(csv.trim()).data.slice(1);
    expect(rows).toEqual([
      [`'=HYPERLINK("http://x.example","go")`, '-1.5'],
      ["'+1", '2'],
      ["'@SUM(A1)", '0'],
      ["'-2\nmore", '3'],
      ['plain', '-0.25'],
    ]);
  });
});
