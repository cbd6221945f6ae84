import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../../../src/engine/random';
import { drawSymbols, randomSymbol, SYMBOL_KINDS, symbolKindOf, symbolSetOf } from '../../../../src/engine/data/symbols';
import { parseClassificationPrompt, parsePaperPrompts } from '../../../../src/engine/eval/paper';
import type { ClassificationFormat } from '../../../../src/engine/data/prompts';

const DATA = join(import.meta.dirname, '../../../../public/data');

describe('seeded random numbers', () => {
  it('are pinned: the same seed gives these numbers on every run and machine', () => {
    const r = SeededRandom.from(42);
    expect([r.nextU32(), r.nextU32(), r.nextU32(), r.int(1, 6), r.int(10000, 99999)]).toEqual([3967159224, 3376317536, 322419761, 3, 90234]);
  });

  it('give independent streams per key, and equal streams for equal keys', () => {
    const take = (r: SeededRandom) => Array.from({ length: 8 }, () => r.nextU32());
    expect(take(SeededRandom.from(1, 'teh', 3))).toEqual(take(SeededRandom.from(1, 'teh', 3)));
    const variants = [
      SeededRandom.from(1, 'teh', 3),
      SeededRandom.from(1, 'teh', 4),
      SeededRandom.from(1, 'teo', 3),
      SeededRandom.from(2, 'teh', 3),
      SeededRandom.from(1, 'te', 'h3'),
      SeededRandom.from(1, 'teh', '3'),
      SeededRandom.from(1),
    ].map((r) => take(r).join());
    expect(new Set(variants).size).toBe(variants.length);
    expect(take(SeededRandom.from(2 ** 40 + 1))).not.toEqual(take(SeededRandom.from(1)));
  });

  it('int() stays in range and is close to uniform', () => {
    const r = SeededRandom.from(9);
    const counts = new Array(7).fill(0);
    const n = 70_000;
    let outside = 0;
    for (let i = 0; i < n; i++) {
      const v = r.int(3, 9);
      if (v < 3 || v > 9 || !Number.isInteger(v)) outside++;
      else counts[v - 3]++;
    }
    expect(outside).toBe(0);
    // Chi-square with 6 degrees of freedom: 22.5 is the 0.999 quantile.
    const chi2 = counts.reduce((s, c) => s + (c - n / 7) ** 2 / (n / 7), 0);
    expect(chi2).toBeLessThan(22.5);
    expect(r.int(5, 5)).toBe(5);
    expect(() => r.int(2, 1)).toThrow();
    expect(() => r.int(0, 2 ** 32)).toThrow(/2\^32/);
  });

  it('shuffle permutes, sampleIndices draws distinct indices', () => {
    const r = SeededRandom.from(5);
    const a = Array.from({ length: 50 }, (_, i) => i);
    const s = r.shuffle([...a]);
    expect([...s].sort((x, y) => x - y)).toEqual(a);
    expect(s).not.toEqual(a);
    for (const [n, k] of [
      [10, 10],
      [1000, 7],
      [1, 1],
      [5, 0],
    ]) {
      const idx = r.sampleIndices(n, k);
      expect(idx.length).toBe(k);
      expect(new Set(idx).size).toBe(k);
      expect(idx.every((i) => i >= 0 && i < n)).toBe(true);
    }
    expect(() => r.sampleIndices(3, 4)).toThrow(/cannot sample/);
  });
});

describe('symbols', () => {
  it('have the three shapes the paper uses', () => {
    const r = SeededRandom.from(3);
    for (let i = 0; i < 300; i++) {
      for (const kind of SYMBOL_KINDS) {
        const s = randomSymbol(r, kind);
        expect(symbolKindOf(s), s).toBe(kind);
      }
    }
    expect(symbolKindOf('77696')).toBe('integer');
    expect(symbolKindOf('FOPZ')).toBe('letters');
    expect(symbolKindOf('Zujib')).toBe('word');
    for (const not of ['09999', '100000', 'FOP', 'FOPZX', 'zujib', 'Zuajb', 'Hate']) expect(symbolKindOf(not), not).toBeNull();
  });

  it("match every symbol in the paper's own prompts", () => {
    const rows = parsePaperPrompts(readFileSync(`${DATA}/paper/prompts.jsonl`, 'utf8'));
    const symbolRows = rows.filter((r) => r.format === 'instruction_symbol' || r.format === 'no_instruction_symbol');
    expect(symbolRows.length).toBe(200);
    const kinds = new Map<string, number>();
    for (const row of symbolRows) {
      const labels = new Set(parseClassificationPrompt(row.prompt, row.format as ClassificationFormat).exemplars.map((e) => e.label));
      expect(labels.size).toBe(2);
      for (const s of labels) {
        const kind = symbolKindOf(s);
        expect(kind, s).not.toBeNull();
        kinds.set(kind!, (kinds.get(kind!) ?? 0) + 1);
      }
    }
    expect([...kinds.keys()].sort()).toEqual(['integer', 'letters', 'word']);
  });

  it('are pinned for a seed', () => {
    expect(drawSymbols(SeededRandom.from(7, 'x'), 6, { set: 'tuning' })).toEqual(['CRGH', 'Qumub', 'Nelok', 'Dagej', 'Laged', 'RNIS']);
    expect(drawSymbols(SeededRandom.from(7, 'x'), 6, { set: 'evaluation' })).toEqual(['Fufuf', '61109', '28394', 'YFKT', '77323', 'MDYY']);
  });

  it('never repeat inside one draw, never equal an avoided word, and mix the kinds evenly', () => {
    const r = SeededRandom.from(11);
    const kinds = new Map<string, number>();
    for (let i = 0; i < 2000; i++) {
      const s = drawSymbols(r, 3, { set: 'evaluation', avoid: ['HATE', 'Kitab'] });
      expect(new Set(s.map((x) => x.toLowerCase())).size).toBe(3);
      for (const x of s) kinds.set(symbolKindOf(x)!, (kinds.get(symbolKindOf(x)!) ?? 0) + 1);
    }
    for (const k of SYMBOL_KINDS) expect(Math.abs(kinds.get(k)! / 6000 - 1 / 3)).toBeLessThan(0.03);
    // An avoided word never comes back, also when only its kind is drawn.
    const onlyLetters = drawSymbols(SeededRandom.from(1), 50, { set: 'tuning', kinds: ['letters'], avoid: ['ABCD'] });
    expect(onlyLetters).not.toContain('ABCD');
    expect(onlyLetters.every((x) => symbolKindOf(x) === 'letters')).toBe(true);
  });

  it('split into disjoint tuning and evaluation sets', () => {
    const tuning = new Set<string>();
    const evaluation = new Set<string>();
    for (let seed = 0; seed < 400; seed++) {
      for (const s of drawSymbols(SeededRandom.from(seed), 10, { set: 'tuning' })) tuning.add(s.toLowerCase());
      for (const s of drawSymbols(SeededRandom.from(seed), 10, { set: 'evaluation' })) evaluation.add(s.toLowerCase());
    }
    expect(tuning.size).toBeGreaterThan(3500);
    expect([...tuning].filter((s) => evaluation.has(s))).toEqual([]);
    // The split is a property of the symbol (case-insensitive), not of the draw, and roughly halves the space.
    expect(symbolSetOf('ABCD')).toBe(symbolSetOf('abcd'));
    let inTuning = 0;
    for (let v = 10000; v < 20000; v++) if (symbolSetOf(String(v)) === 'tuning') inTuning++;
    expect(inTuning / 10000).toBeGreaterThan(0.47);
    expect(inTuning / 10000).toBeLessThan(0.53);
  });
});
