import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateSymbolTuningData, SYMBOL_TUNING_PREFIXES } from '../../../src/engine/data/symbol-tuning';
import { symbolKindOf, symbolSetOf } from '../../../src/engine/data/symbols';
import { parseClassificationPrompt } from '../../../src/engine/eval/paper';
import { renderFewShot } from '../../../src/engine/eval/prompts';
import { type LabeledPool, parsePoolRows, parseTaskCatalog, taskPool, userPool } from '../../../src/engine/eval/tasks';

const DATA = join(import.meta.dirname, '../../../public/data');

const catalog = parseTaskCatalog(readFileSync(`${DATA}/tasks.json`, 'utf8'));
function bundled(id: string): LabeledPool {
  const info = catalog.symbolTuningPools[id] ?? catalog.classification[id];
  const task = catalog.classification[id] ?? { ...info, instruction: '', flippedLabels: { '0': info.labels['1'], '1': info.labels['0'] } };
  return taskPool(task, parsePoolRows(readFileSync(`${DATA}/${info.pool}`, 'utf8'), info.pool));
}
const sst2 = bundled('sst2');
const rte = bundled('rte');
const teh = bundled('teh');

/** Splits a generated prompt with any prefix pair into (text, label) blocks, the query last with label ''. */
function blocks(question: string, inP: string, outP: string, instruction?: string): Array<{ text: string; label: string }> {
  const head = `${inP}: ${instruction === undefined ? '' : `${instruction}\n`}`;
  expect(question.startsWith(head)).toBe(true);
  const parts = question.slice(head.length).split(`\n${head}`);
  return parts.map((p, k) => {
    const at = p.lastIndexOf(`\n${outP}: `);
    const label = p.slice(at + outP.length + 3);
    return { text: p.slice(0, at), label: k === parts.length - 1 ? label.replace(/\n$/, '') : label };
  });
}

describe('symbol-tuning generator', () => {
  const data = generateSymbolTuningData([sst2, rte], { seed: 77, count: 40 });

  it('is deterministic from the seed, and pinned', () => {
    expect(generateSymbolTuningData([sst2, rte], { seed: 77, count: 40 })).toEqual(data);
    expect(generateSymbolTuningData([sst2, rte], { seed: 78, count: 40 })).not.toEqual(data);
    const digest = createHash('sha256').update(JSON.stringify(data)).digest('hex').slice(0, 16);
    expect(digest).toMatchInlineSnapshot(`"7ec2dc4ea4d6c4b1"`);
  });

  it('gives 5 exemplars per class labelled with two distinct tuning symbols, and the query symbol as response', () => {
    for (const ex of data) {
      const pool = ex.source === 'sst2' ? sst2 : rte;
      const b = blocks(ex.question, ex.shape.inputPrefix, ex.shape.outputPrefix);
      expect(b.length).toBe(11);
      const query = b.pop()!;
      expect(query.label).toBe('');
      const symbols = Object.values(ex.symbols);
      expect(new Set(symbols).size).toBe(2);
      for (const s of symbols) {
        expect(symbolKindOf(s)).not.toBeNull();
        expect(symbolSetOf(s)).toBe('tuning');
        for (const word of Object.values(pool.labelWords)) expect(s.toLowerCase()).not.toBe(word.toLowerCase());
      }
      expect(b.filter((e) => e.label === symbols[0]).length).toBe(5);
      expect(b.filter((e) => e.label === symbols[1]).length).toBe(5);
      // Each exemplar's symbol is its gold class's symbol; the query is none of the exemplars.
      for (const e of b) {
        const gold = pool.rows.find((r) => r.text === e.text)!.label;
        expect(e.label).toBe(ex.symbols[gold]);
      }
      expect(b.map((e) => e.text)).not.toContain(query.text);
      const queryGold = pool.rows.find((r) => r.text === query.text)!.label;
      expect(ex.response).toBe(ex.symbols[queryGold]);
      expect(ex.question.endsWith(`${ex.shape.outputPrefix}: \n`)).toBe(true);
    }
  });

  it('alternates pools and varies the prefix pairs, avoiding prefixes that occur inside the texts', () => {
    for (const d of data.filter((x) => x.source === 'rte')) expect(d.shape.inputPrefix).not.toBe('Question');
    expect(data.map((d) => d.source).slice(0, 4)).toEqual(['sst2', 'rte', 'sst2', 'rte']);
    const pairs = new Set(data.map((d) => `${d.shape.inputPrefix}/${d.shape.outputPrefix}`));
    expect(pairs.size).toBeGreaterThan(4);
    for (const p of pairs) expect(SYMBOL_TUNING_PREFIXES.map(([a, b]) => `${a}/${b}`)).toContain(p);
    // Balanced queries: each class is the answer about half the time.
    const many = generateSymbolTuningData([sst2], { seed: 1, count: 400 });
    const positive = many.filter((d) => d.response === d.symbols['1']).length;
    expect(positive).toBeGreaterThan(160);
    expect(positive).toBeLessThan(240);
  });

  it("produces the paper's evaluation shapes exactly, with or without the instruction", () => {
    const withInstruction = generateSymbolTuningData([teh], { seed: 3, count: 5, shapes: 'paper', instruction: 'include', perClass: 4 });
    for (const ex of withInstruction) {
      const parsed = parseClassificationPrompt(ex.question, 'instruction_symbol');
      expect(parsed.instruction).toBe(teh.instruction);
      expect(parsed.exemplars.length).toBe(8);
      expect(renderFewShot(ex.shape, parsed.exemplars, parsed.query)).toBe(ex.question);
    }
    const without = generateSymbolTuningData([teh], { seed: 3, count: 5, shapes: 'paper' });
    for (const ex of without) expect(parseClassificationPrompt(ex.question, 'no_instruction_symbol').exemplars.length).toBe(10);
    const mixed = generateSymbolTuningData([teh], { seed: 3, count: 60, instruction: 'mixed' });
    const share = mixed.filter((m) => m.shape.instruction !== undefined).length / 60;
    expect(share).toBeGreaterThan(0.25);
    expect(share).toBeLessThan(0.75);
    // A pool without an instruction never gets one.
    expect(generateSymbolTuningData([sst2], { seed: 3, count: 5, instruction: 'include' }).every((m) => m.shape.instruction === undefined)).toBe(true);
  });

  it('keeps held-out evaluation prompts on symbols disjoint from the tuning ones', () => {
    const tuning = generateSymbolTuningData([sst2, rte, teh], { seed: 10, count: 300 });
    const heldOut = generateSymbolTuningData([sst2, rte, teh], { seed: 10, count: 300, symbolSet: 'evaluation' });
    const tuningSymbols = new Set(tuning.flatMap((t) => Object.values(t.symbols)));
    const heldOutSymbols = heldOut.flatMap((t) => Object.values(t.symbols));
    expect(heldOutSymbols.filter((s) => tuningSymbols.has(s))).toEqual([]);
    expect(heldOutSymbols.every((s) => symbolSetOf(s) === 'evaluation')).toBe(true);
  });

  it("works on a user's upload with more classes, and explains a pool that is too small", () => {
    const rows = ['a', 'b', 'c'].flatMap((c) => Array.from({ length: 7 }, (_, k) => ({ input: `${c}${k}`, label: c })));
    const ex = generateSymbolTuningData([userPool('mine', 'Mine', rows, { instruction: 'Pick a letter.' })], {
      seed: 1,
      count: 3,
      instruction: 'include',
      shapes: 'paper',
    });
    expect(Object.keys(ex[0].symbols).sort()).toEqual(['a', 'b', 'c']);
    expect(parseClassificationPrompt(ex[0].question, 'instruction_symbol').exemplars.length).toBe(15);
    expect(() => generateSymbolTuningData([userPool('mine', 'Mine', rows)], { seed: 1, count: 1, perClass: 7 })).toThrow(
      /has 6 usable distinct texts besides the query; 7 exemplars per class are needed/,
    );
    expect(() => generateSymbolTuningData([], { seed: 1, count: 1 })).toThrow(/at least one/);
  });
});
