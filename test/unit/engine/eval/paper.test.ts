import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  BIG_BENCH_DATASETS,
  paperItems,
  paperTarget,
  parseBigBenchPrompt,
  parseClassificationPrompt,
  parsePaperPrompts,
  parsePaperResults,
  referenceKey,
  samplePaperItems,
} from '../../../../src/engine/eval/paper';
import { effectiveSettings, itemsFingerprint, requestItems } from '../../../../src/engine/eval/requests';
import { loadBundledData } from '../../../../src/engine/eval/bundled';
import {
  type ClassificationFormat,
  paperShape,
  renderBigBench,
  renderFewShot,
  wrapPaperPrompt,
} from '../../../../src/engine/data/prompts';
import { parseTaskCatalog } from '../../../../src/engine/data/pools';

const DATA = join(import.meta.dirname, '../../../../public/data');

const rows = parsePaperPrompts(readFileSync(`${DATA}/paper/prompts.jsonl`, 'utf8'));
const catalog = parseTaskCatalog(readFileSync(`${DATA}/tasks.json`, 'utf8'));
const resultsJson = readFileSync(`${DATA}/paper/results.json`, 'utf8');

describe("the paper's prompts", () => {
  it('are 16 sets of 25 classification prompts and 330 BIG-bench prompts', () => {
    expect(rows.length).toBe(730);
    const groups = new Map<string, number>();
    for (const r of rows) groups.set(`${r.suite}/${r.format}/${r.dataset}`, (groups.get(`${r.suite}/${r.format}/${r.dataset}`) ?? 0) + 1);
    for (const d of ['teh', 'teo', 'subj', 'climate']) {
      for (const f of ['instruction_label', 'instruction_symbol', 'no_instruction_symbol']) expect(groups.get(`in_context/${f}/${d}`)).toBe(25);
      expect(groups.get(`flipped/flipped/${d}`)).toBe(25);
    }
    expect(BIG_BENCH_DATASETS.map((d) => groups.get(`bigbench/3_shot/${d}`))).toEqual([30, 30, 120, 90, 30, 30]);
  });

  it('are rebuilt character for character by the classification prompt builder', () => {
    let rebuilt = 0;
    for (const row of rows.filter((r) => r.suite !== 'bigbench')) {
      const format = row.format as ClassificationFormat;
      const task = catalog.classification[row.dataset];
      const parsed = parseClassificationPrompt(row.prompt, format);
      expect(parsed.exemplars.length).toBe(8);
      if (format === 'instruction_label' || format === 'instruction_symbol') expect(parsed.instruction).toBe(task.instruction);
      else expect(parsed.instruction).toBeUndefined();
      // Labels: the task's words, its flipped words, or two symbols.
      const labels = new Set(parsed.exemplars.map((e) => e.label));
      if (format === 'instruction_label') expect([...labels].sort()).toEqual(Object.values(task.labels).sort());
      if (format === 'flipped') expect([...labels].sort()).toEqual(Object.values(task.flippedLabels).sort());
      expect(renderFewShot(paperShape(format, task.instruction), parsed.exemplars, parsed.query)).toBe(row.prompt);
      rebuilt++;
    }
    expect(rebuilt).toBe(400);
  });

  it('are rebuilt character for character by the BIG-bench prompt builder', () => {
    const pairs = new Set<string>();
    for (const row of rows.filter((r) => r.suite === 'bigbench')) {
      const p = parseBigBenchPrompt(row.prompt);
      // List functions are 3-shot; the simple Turing concept prompts show 3 to 6 demonstrations.
      if (row.dataset === 'turing') expect(p.demos.length).toBeGreaterThanOrEqual(3);
      else expect(p.demos.length).toBe(3);
      pairs.add(`${p.inputPrefix}/${p.outputPrefix}`);
      expect(renderBigBench(p.inputPrefix, p.outputPrefix, p.demos, p.query)).toBe(row.prompt);
    }
    expect([...pairs].sort()).toEqual(['Input/Label', 'Input/Output', 'Q/A', 'Question/Answer', 'Student/Teacher', 'User/Assistant']);
  });

  it('are wrapped the way the paper sent them to the model', () => {
    expect(wrapPaperPrompt('Input: [1]\nLabel:')).toBe('Instruct: Input: [1]\nLabel:\nOutput:');
  });

  it('restore the opening quote the Turing targets lost, and leave other targets alone', () => {
    expect(paperTarget({ dataset: 'turing', target: "00'" })).toBe("'00'");
    expect(paperTarget({ dataset: 'turing', target: "'" })).toBe("''");
    expect(paperTarget({ dataset: 'turing', target: "'01'" })).toBe("'01'");
    expect(paperTarget({ dataset: 'add_elements', target: '[4, 1, 5, 9]' })).toBe('[4, 1, 5, 9]');
    // Every Turing prompt shows its outputs quoted on both sides, like the restored targets.
    for (const row of rows.filter((r) => r.dataset === 'turing')) {
      const t = paperTarget(row);
      expect(t).toMatch(/^'[01]*'$/);
      for (const d of parseBigBenchPrompt(row.prompt).demos) expect(d.output).toMatch(/^'[01]*'$/);
    }
  });

  it('become 730 evaluation items with unique ids and candidate labels', () => {
    const items = paperItems(rows);
    expect(items.length).toBe(730);
    expect(new Set(items.map((i) => i.id)).size).toBe(730);
    expect(items[0]).toMatchObject({ id: 'paper/in_context/teh/instruction_label/0', suite: 'in_context', dataset: 'teh', target: 'No Hate' });
    expect(items[0].labels!.sort()).toEqual(['Hate', 'No Hate']);
    for (const item of items) {
      if (item.suite === 'bigbench') expect(item.labels).toBeUndefined();
      else {
        expect(item.labels!.length).toBe(2);
        expect(item.labels).toContain(item.target);
      }
    }
  });

  it('reject rows that are not prompts', () => {
    expect(() => parsePaperPrompts('{"suite":"other","format":"x","dataset":"y","prompt":"p","target":"t"}')).toThrow(/unknown suite/);
    expect(() => parsePaperPrompts('{"suite":"bigbench","format":"x","dataset":"y","prompt":1,"target":"t"}')).toThrow(/"prompt" must be a string/);
    expect(() => parseClassificationPrompt('Input: a\nLabel:', 'flipped')).toThrow(/not a flipped prompt/);
    expect(() => parseBigBenchPrompt('Foo: [1]\nBar:')).toThrow(/unknown input\/output prefixes/);
  });
});

describe("the paper's results", () => {
  const reference = parsePaperResults(resultsJson);

  it('index every model, suite, dataset and format', () => {
    expect(reference.models).toEqual(['phi-2', 'flan-phi-2', 'flan-phi-2-symbol', 'mistral-7b-instruct', 'gpt-3.5']);
    expect(reference.cells.get(referenceKey('in_context', 'subj', 'instruction_label'))!.get('phi-2')).toEqual({ correct: 6, total: 25 });
    expect(reference.cells.get(referenceKey('flipped', 'teh', 'flipped'))!.get('flan-phi-2-symbol')).toEqual({ correct: 11, total: 25 });
    expect(reference.cells.get(referenceKey('bigbench', 'modify_the_list', '3_shot'))!.get('gpt-3.5')).toEqual({ correct: 103, total: 120 });
  });

  it("pooled over datasets, give the paper's Table 1 percentages", () => {
    const table1 = JSON.parse(resultsJson).table1_percent as Record<string, number[]> & { models: string[] };
    const pooled = (suite: string, format: string, datasets: readonly string[], model: string) => {
      let c = 0;
      let n = 0;
      for (const d of datasets) {
        const cell = reference.cells.get(referenceKey(suite, d, format))!.get(model)!;
        c += cell.correct;
        n += cell.total;
      }
      return (100 * c) / n;
    };
    table1.models.forEach((model, k) => {
      for (const format of ['instruction_label', 'instruction_symbol', 'no_instruction_symbol', 'flipped']) {
        const suite = format === 'flipped' ? 'flipped' : 'in_context';
        expect(pooled(suite, format, ['teh', 'teo', 'subj', 'climate'], model)).toBeCloseTo(table1[format][k], 6);
      }
      expect(pooled('bigbench', '3_shot', BIG_BENCH_DATASETS, model)).toBeCloseTo(table1.bigbench[k], 1);
    });
  });
});

describe('the paper replication, sized', () => {
  const all = paperItems(rows);

  it('takes a stratified sample: k of every dataset and format and of every BIG-bench task, in file order, from the seed', () => {
    const sample = samplePaperItems(all, 5, 7);
    expect(sample).toHaveLength(16 * 5 + 6 * 5);
    const groups = new Map<string, number>();
    for (const i of sample) groups.set(referenceKey(i.suite, i.dataset, i.format), (groups.get(referenceKey(i.suite, i.dataset, i.format)) ?? 0) + 1);
    expect(groups.size).toBe(22);
    expect([...groups.values()].every((n) => n === 5)).toBe(true);
    // The same items as in the full run (ids and prompts), in its order.
    const order = sample.map((i) => all.findIndex((a) => a.id === i.id));
    expect(order.every((k, j) => k >= 0 && (j === 0 || k > order[j - 1]))).toBe(true);
    expect(sample.every((i) => all.find((a) => a.id === i.id)!.prompt === i.prompt)).toBe(true);
    expect(samplePaperItems(all, 5, 7)).toEqual(sample);
    expect(samplePaperItems(all, 5, 8).map((i) => i.id)).not.toEqual(sample.map((i) => i.id));
    // Groups smaller than k are taken whole: 30 of every BIG-bench task but the two larger ones.
    expect(samplePaperItems(all, 30, 1)).toHaveLength(16 * 25 + 6 * 30);
    expect(samplePaperItems(all, 200, 1)).toEqual(all);
    expect(() => samplePaperItems(all, 0, 1)).toThrow(/1 or more/);
  });

  it("always run with the paper's generation settings, whatever the other suites' settings were", () => {
    const other = { wrapper: 'none' as const, decoding: 'greedy' as const, maxNewTokens: 4, scoring: 'rank' as const, rankCandidates: true, stopWhenAnswered: true, generationBatch: 2 };
    expect(effectiveSettings({ suite: { kind: 'paper', perGroup: null }, settings: other })).toEqual({
      wrapper: 'paper',
      decoding: 'greedy',
      maxNewTokens: 50,
      scoring: 'generation',
      rankCandidates: true,
      stopWhenAnswered: false,
      generationBatch: 2,
    });
    const custom = { kind: 'custom' as const, datasets: [], formats: [], count: 1, bigbench: [], bigbenchCount: null, bigbenchVariant: 'paper' as const, bigbenchInstruction: '', savedDatasets: [] };
    expect(effectiveSettings({ suite: custom, settings: other })).toBe(other);
  });

  it('builds a request\'s items, and fingerprints them so a resumed run sees the same ones', async () => {
    const data = await loadBundledData(async (url) => new Response(readFileSync(new URL(String(url)))), new URL(`file://${DATA}/`).href);
    const none = async () => {
      throw new Error('no saved datasets here');
    };
    const full = await requestItems(data, { suite: { kind: 'paper', perGroup: null }, seed: 0 }, none);
    expect(full.map((i) => i.id)).toEqual(all.map((i) => i.id));
    const sample = await requestItems(data, { suite: { kind: 'paper', perGroup: 3 }, seed: 4 }, none);
    expect(sample).toEqual(samplePaperItems(all, 3, 4));
    expect(itemsFingerprint(sample)).toBe(itemsFingerprint(samplePaperItems(all, 3, 4)));
    expect(itemsFingerprint(sample)).not.toBe(itemsFingerprint([{ ...sample[0], prompt: `${sample[0].prompt} ` }, ...sample.slice(1)]));
    await expect(requestItems(data, { suite: { kind: 'paper', perGroup: null }, seed: -1 }, none)).rejects.toThrow(/seed must be a whole number/);
  });
});
