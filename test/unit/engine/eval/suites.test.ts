import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PoolTooSmallError } from '../../../../src/engine/data/few-shot';
import { symbolKindOf, symbolSetOf } from '../../../../src/engine/data/symbols';
import { parseBigBenchPrompt, parseClassificationPrompt, parsePaperPrompts } from '../../../../src/engine/eval/paper';
import { type ClassificationFormat, paperShape, renderFewShot } from '../../../../src/engine/data/prompts';
import { bigBenchItems, classificationItems, flippedItems, inContextItems } from '../../../../src/engine/eval/suites';
import { type LabeledPool, parsePoolRows, parseTaskCatalog, taskPool, userPool } from '../../../../src/engine/data/pools';
import type { EvalItem } from '../../../../src/engine/eval/types';

const DATA = join(import.meta.dirname, '../../../../public/data');

const catalog = parseTaskCatalog(readFileSync(`${DATA}/tasks.json`, 'utf8'));
const pools: LabeledPool[] = ['teh', 'teo', 'subj', 'climate'].map((id) => {
  const task = catalog.classification[id];
  return taskPool(task, parsePoolRows(readFileSync(`${DATA}/${task.pool}`, 'utf8'), task.pool));
});
const poolById = new Map(pools.map((p) => [p.id, p]));
const paperRows = parsePaperPrompts(readFileSync(`${DATA}/paper/prompts.jsonl`, 'utf8'));

/** Gold class of a pool text (pools hold a few duplicate texts; a duplicate with two labels is ambiguous). */
function goldOf(pool: LabeledPool, text: string): string | undefined {
  const labels = new Set(pool.rows.filter((r) => r.text === text).map((r) => r.label));
  return labels.size === 1 ? [...labels][0] : undefined;
}

function checkClassificationItem(item: EvalItem): void {
  const pool = poolById.get(item.dataset)!;
  const format = item.format as ClassificationFormat;
  const parsed = parseClassificationPrompt(item.prompt, format);
  expect(parsed.exemplars.length).toBe(8);
  // Never the query, no repeated exemplar, 4 per class, labels consistent with the gold classes.
  const texts = parsed.exemplars.map((e) => e.text);
  expect(texts).not.toContain(parsed.query);
  expect(new Set(texts).size).toBe(8);
  const wordOfClass = new Map<string, string>();
  const perClass = new Map<string, number>();
  for (const e of parsed.exemplars) {
    const gold = goldOf(pool, e.text)!;
    expect(gold).toBeDefined();
    perClass.set(gold, (perClass.get(gold) ?? 0) + 1);
    if (wordOfClass.has(gold)) expect(e.label).toBe(wordOfClass.get(gold));
    wordOfClass.set(gold, e.label);
  }
  expect([...perClass.values()]).toEqual([4, 4]);
  const queryGold = goldOf(pool, parsed.query);
  if (queryGold !== undefined) expect(item.target).toBe(wordOfClass.get(queryGold));
  expect(item.labels).toEqual(pool.classes.map((c) => wordOfClass.get(c)));
  if (format === 'instruction_label') expect(wordOfClass).toEqual(new Map(Object.entries(pool.labelWords)));
  if (format === 'flipped') expect(wordOfClass).toEqual(new Map(Object.entries(pool.flippedWords)));
  if (format === 'instruction_symbol' || format === 'no_instruction_symbol' || format === 'no_instruction_symbol_io') {
    const symbols = [...wordOfClass.values()];
    expect(new Set(symbols).size).toBe(2);
    for (const s of symbols) {
      expect(symbolKindOf(s), s).not.toBeNull();
      expect(symbolSetOf(s)).toBe('evaluation');
    }
  }
  // The prompt is exactly the paper's shape for what it contains.
  expect(renderFewShot(paperShape(format, pool.instruction!), parsed.exemplars, parsed.query)).toBe(item.prompt);
}

describe("the appendix's formats and the paper's label words", () => {
  it('render no instruction + symbol as the appendix prints it: Input/Output, with the same query and exemplars', () => {
    const items = classificationItems(pools, { seed: 5, count: 2, formats: ['no_instruction_symbol', 'no_instruction_symbol_io'] });
    for (const item of items) checkClassificationItem(item);
    const io = items.filter((i) => i.format === 'no_instruction_symbol_io');
    expect(io).toHaveLength(4 * 2);
    for (const item of io) {
      expect(item.prompt.startsWith('Input: ')).toBe(true);
      expect(item.prompt.endsWith('\nOutput: \n')).toBe(true);
      expect(item.prompt).not.toContain('Question:');
      expect(item.prompt).not.toContain(poolById.get(item.dataset)!.instruction!);
      // The query is the same as the Question/Answer version's: the formats compare on equal footing.
      const twin = items.find((i) => i.id === item.id.replace('no_instruction_symbol_io', 'no_instruction_symbol'))!;
      expect(parseClassificationPrompt(item.prompt, 'no_instruction_symbol_io').query).toBe(parseClassificationPrompt(twin.prompt, 'no_instruction_symbol').query);
    }
  });

  it("use each dataset's label words exactly as the prompts the paper ran (TEH: No Hate / Hate; flipped: Hate / Not Hate)", () => {
    const ours = classificationItems(pools, { seed: 9, count: 25, formats: ['instruction_label', 'flipped'] });
    for (const pool of pools) {
      for (const format of ['instruction_label', 'flipped'] as const) {
        const words = (rows: Array<{ prompt: string }>) => new Set(rows.flatMap((r) => parseClassificationPrompt(r.prompt, format).exemplars.map((e) => e.label)));
        const paper = words(paperRows.filter((r) => r.dataset === pool.id && r.format === format));
        expect(words(ours.filter((i) => i.dataset === pool.id && i.format === format)), `${pool.id} ${format}`).toEqual(paper);
      }
    }
    expect(poolById.get('teh')!.labelWords).toEqual({ '1': 'Hate', '0': 'No Hate' });
    expect(poolById.get('teh')!.flippedWords).toEqual({ '1': 'Not Hate', '0': 'Hate' });
  });

  it('put an optional instruction line before BIG-bench demonstrations, under ids of their own', () => {
    const line = 'Each input maps to its output by the same rule.';
    const plain = bigBenchItems(paperRows, { seed: 1, count: 2, categories: ['add_elements'] });
    const instructed = bigBenchItems(paperRows, { seed: 1, count: 2, categories: ['add_elements'], instruction: `  ${line} ` });
    expect(instructed.map((i) => i.prompt)).toEqual(plain.map((i) => `${line}\n\n${i.prompt}`));
    expect(instructed.map((i) => i.id)).toEqual(plain.map((i) => i.id.replace(/^paper\//, 'paper+instruction/')));
    expect(instructed.map((i) => i.target)).toEqual(plain.map((i) => i.target));
    const resampled = bigBenchItems(paperRows, { seed: 1, count: 2, categories: ['add_elements'], variant: 'resampled', instruction: line });
    for (const item of resampled) {
      expect(item.id.startsWith('gen+instruction/bigbench/')).toBe(true);
      expect(item.prompt.startsWith(`${line}\n\n`)).toBe(true);
      expect(parseBigBenchPrompt(item.prompt.slice(line.length + 2)).demos.length).toBeGreaterThan(0);
    }
    // Blank (or absent) means none, as the paper's prompts.
    expect(bigBenchItems(paperRows, { seed: 1, count: 2, categories: ['add_elements'], instruction: '  ' })).toEqual(plain);
  });
});

describe('in-context and flipped suites', () => {
  const items = classificationItems(pools, { seed: 2024, count: 6 });

  it('have count items per dataset and format, with unique ids', () => {
    expect(items.length).toBe(4 * 4 * 6);
    expect(new Set(items.map((i) => i.id)).size).toBe(items.length);
    expect(items.filter((i) => i.suite === 'flipped').every((i) => i.format === 'flipped')).toBe(true);
    expect(inContextItems(pools, 1, 2).map((i) => i.format)).not.toContain('flipped');
    expect(flippedItems(pools, 1, 2).every((i) => i.format === 'flipped' && i.suite === 'flipped')).toBe(true);
  });

  it('follow the paper: 8 exemplars, 4 per class, never the query, labels by format', () => {
    for (const item of items) checkClassificationItem(item);
  });

  it('use the same query and exemplars for item n in every format, shuffled separately', () => {
    for (const pool of pools) {
      for (let n = 0; n < 6; n++) {
        const forN = items.filter((i) => i.dataset === pool.id && i.id.endsWith(`/${n}`));
        const parsed = forN.map((i) => parseClassificationPrompt(i.prompt, i.format as ClassificationFormat));
        expect(new Set(parsed.map((p) => p.query)).size).toBe(1);
        expect(new Set(parsed.map((p) => p.exemplars.map((e) => e.text).sort().join('\u0000'))).size).toBe(1);
      }
    }
  });

  it('are deterministic from the seed, and more items never change the first ones', () => {
    expect(classificationItems(pools, { seed: 2024, count: 6 })).toEqual(items);
    const more = classificationItems(pools, { seed: 2024, count: 9 });
    for (const item of items) expect(more.find((m) => m.id === item.id)).toEqual(item);
    const other = classificationItems(pools, { seed: 2025, count: 6 });
    expect(other.filter((o, k) => o.prompt === items[k].prompt).length).toBe(0);
  });

  it('draw queries in proportion to the pool, as the paper did (Climate is mostly positive)', () => {
    const climate = classificationItems([poolById.get('climate')!], { seed: 5, count: 200, formats: ['instruction_label'] });
    const positive = climate.filter((i) => i.target === 'Climate Event').length / climate.length;
    expect(positive).toBeGreaterThan(0.7); // the pool is 646 / 798 = 81% positive
  });

  it("run on a user's dataset with three classes and no instruction", () => {
    const rows = ['red', 'green', 'blue'].flatMap((colour) => Array.from({ length: 6 }, (_, k) => ({ input: `${colour} thing ${k}`, label: colour })));
    const pool = userPool('colours', 'Colours', rows);
    const out = classificationItems([pool], { seed: 1, count: 4, formats: ['no_instruction_symbol', 'flipped'], perClass: 3, suite: 'user' });
    expect(out.length).toBe(8);
    for (const item of out) {
      expect(item.suite).toBe('user');
      const parsed = parseClassificationPrompt(item.prompt, item.format as ClassificationFormat);
      expect(parsed.exemplars.length).toBe(9);
      expect(item.labels!.length).toBe(3);
      const queryColour = parsed.query.split(' ')[0];
      const byColour = new Map(parsed.exemplars.map((e) => [e.text.split(' ')[0], e.label]));
      expect(item.target).toBe(byColour.get(queryColour));
      if (item.format === 'flipped') expect(byColour).toEqual(new Map([['blue', 'green'], ['green', 'red'], ['red', 'blue']]));
    }
    expect(() => classificationItems([pool], { seed: 1, count: 1, formats: ['instruction_label'] })).toThrow(/has no instruction/);
    expect(() => classificationItems([pool], { seed: 1, count: 1, perClass: 6 })).toThrow(PoolTooSmallError);
    expect(() => classificationItems([pool], { seed: 1, count: 0 })).toThrow(/positive integer/);
  });
});

describe('BIG-bench suite', () => {
  const bbRows = paperRows.filter((r) => r.suite === 'bigbench');

  it("uses the paper's prompts verbatim by default", () => {
    const items = bigBenchItems(paperRows, { seed: 0 });
    expect(items.length).toBe(330);
    expect(items.map((i) => i.prompt)).toEqual(
      ['add_elements', 'input_independent', 'modify_the_list', 'remove_elements', 'miscellaneous', 'turing'].flatMap((d) =>
        bbRows.filter((r) => r.dataset === d).map((r) => r.prompt),
      ),
    );
    expect(items.find((i) => i.dataset === 'turing')!.target).toMatch(/^'[01]*'$/);
  });

  it('takes a seeded subset per category, in the paper order', () => {
    const a = bigBenchItems(paperRows, { seed: 3, count: 5, categories: ['modify_the_list', 'turing'] });
    expect(a.length).toBe(10);
    expect(bigBenchItems(paperRows, { seed: 3, count: 5, categories: ['modify_the_list', 'turing'] })).toEqual(a);
    const idx = a.filter((i) => i.dataset === 'modify_the_list').map((i) => Number(i.id.split('/').pop()));
    expect(idx).toEqual([...idx].sort((x, y) => x - y));
    expect(bigBenchItems(paperRows, { seed: 4, count: 5, categories: ['modify_the_list'] }).map((i) => i.id)).not.toEqual(
      a.filter((i) => i.dataset === 'modify_the_list').map((i) => i.id),
    );
    expect(() => bigBenchItems(paperRows, { seed: 1, categories: ['nope' as never] })).toThrow(/unknown BIG-bench category/);
  });

  it('resamples new prompts from the pairs each paper prompt shows', () => {
    const items = bigBenchItems(paperRows, { seed: 8, variant: 'resampled' });
    expect(items.length).toBe(330);
    let changed = 0;
    for (const item of items) {
      const k = Number(item.id.split('/').pop());
      const row = bbRows.filter((r) => r.dataset === item.dataset)[k];
      const original = parseBigBenchPrompt(row.prompt);
      const mine = parseBigBenchPrompt(item.prompt);
      expect([mine.inputPrefix, mine.outputPrefix]).toEqual([original.inputPrefix, original.outputPrefix]);
      const key = (p: { input: string; output: string }) => `${p.input} -> ${p.output}`;
      const before = [...original.demos.map(key), key({ input: original.query, output: item.dataset === 'turing' ? `'${row.target}` : row.target })].sort();
      const after = [...mine.demos.map(key), key({ input: mine.query, output: item.target })].sort();
      expect(after).toEqual(before);
      if (item.prompt !== row.prompt) changed++;
    }
    expect(changed).toBeGreaterThan(250);
  });
});
