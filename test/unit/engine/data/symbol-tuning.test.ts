import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateSymbolTuningData, SYMBOL_TUNING_PREFIXES } from '../../../../src/engine/data/symbol-tuning';
import { SYMBOL_TUNING_PER_CLASS } from '../../../../src/shared/symbol-kinds';
import { tokenizeInstructionData } from '../../../../src/engine/data/template';
import { PAPER_TEMPLATE, parseTemplate, renderTemplate, splitPromptCompletion } from '../../../../src/shared/template';
import { loadTokenizer } from '../../../../src/engine/tokenizer/index';
import { PAPER_TRAINING } from '../../../../src/shared/paper-training';
import { fixtureBytes } from '../../../support/safetensors-fixtures';
import { symbolKindOf, symbolSetOf } from '../../../../src/engine/data/symbols';
import { parseClassificationPrompt } from '../../../../src/engine/eval/paper';
import { renderFewShot } from '../../../../src/engine/data/prompts';
import { type LabeledPool, parsePoolRows, parseTaskCatalog, taskPool, userPool } from '../../../../src/engine/data/pools';

const DATA = join(import.meta.dirname, '../../../../public/data');

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
  const data = generateSymbolTuningData([sst2, rte], { seed: 77, count: 40 }).examples;

  it('is deterministic from the seed, and pinned', () => {
    expect(generateSymbolTuningData([sst2, rte], { seed: 77, count: 40 }).examples).toEqual(data);
    expect(generateSymbolTuningData([sst2, rte], { seed: 78, count: 40 }).examples).not.toEqual(data);
    const digest = createHash('sha256').update(JSON.stringify(data)).digest('hex').slice(0, 16);
    expect(digest).toMatchInlineSnapshot(`"de298a5c2c450df6"`);
  });

  it('gives 4 exemplars per class (the paper\'s "four shots") labelled with two distinct tuning symbols, and the query symbol as response', () => {
    for (const ex of data) {
      const pool = ex.source === 'sst2' ? sst2 : rte;
      const b = blocks(ex.question, ex.shape.inputPrefix, ex.shape.outputPrefix);
      expect(b.length).toBe(9);
      expect(ex.perClass).toBe(4);
      const query = b.pop()!;
      expect(query.label).toBe('');
      const symbols = Object.values(ex.symbols);
      expect(new Set(symbols).size).toBe(2);
      for (const s of symbols) {
        expect(symbolKindOf(s)).not.toBeNull();
        expect(symbolSetOf(s)).toBe('tuning');
        for (const word of Object.values(pool.labelWords)) expect(s.toLowerCase()).not.toBe(word.toLowerCase());
      }
      expect(b.filter((e) => e.label === symbols[0]).length).toBe(4);
      expect(b.filter((e) => e.label === symbols[1]).length).toBe(4);
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
    const many = generateSymbolTuningData([sst2], { seed: 1, count: 400 }).examples;
    const positive = many.filter((d) => d.response === d.symbols['1']).length;
    expect(positive).toBeGreaterThan(160);
    expect(positive).toBeLessThan(240);
  });

  it("produces the paper's evaluation shapes exactly, with or without the instruction", () => {
    const withInstruction = generateSymbolTuningData([teh], { seed: 3, count: 5, shapes: 'paper', instruction: 'include', perClass: 4 }).examples;
    for (const ex of withInstruction) {
      const parsed = parseClassificationPrompt(ex.question, 'instruction_symbol');
      expect(parsed.instruction).toBe(teh.instruction);
      expect(parsed.exemplars.length).toBe(8);
      expect(renderFewShot(ex.shape, parsed.exemplars, parsed.query)).toBe(ex.question);
    }
    const without = generateSymbolTuningData([teh], { seed: 3, count: 5, shapes: 'paper' }).examples;
    for (const ex of without) expect(parseClassificationPrompt(ex.question, 'no_instruction_symbol').exemplars.length).toBe(8);
    const mixed = generateSymbolTuningData([teh], { seed: 3, count: 60, instruction: 'mixed' }).examples;
    const share = mixed.filter((m) => m.shape.instruction !== undefined).length / 60;
    expect(share).toBeGreaterThan(0.25);
    expect(share).toBeLessThan(0.75);
    // A pool without an instruction never gets one.
    expect(generateSymbolTuningData([sst2], { seed: 3, count: 5, instruction: 'include' }).examples.every((m) => m.shape.instruction === undefined)).toBe(true);
  });

  it('keeps held-out evaluation prompts on symbols disjoint from the tuning ones', () => {
    const tuning = generateSymbolTuningData([sst2, rte, teh], { seed: 10, count: 300 }).examples;
    const heldOut = generateSymbolTuningData([sst2, rte, teh], { seed: 10, count: 300, symbolSet: 'evaluation' }).examples;
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
    }).examples;
    expect(Object.keys(ex[0].symbols).sort()).toEqual(['a', 'b', 'c']);
    expect(parseClassificationPrompt(ex[0].question, 'instruction_symbol').exemplars.length).toBe(12);
    expect(() => generateSymbolTuningData([userPool('mine', 'Mine', rows)], { seed: 1, count: 1, perClass: 7 }).examples).toThrow(
      /has 6 usable distinct texts besides the query; 7 exemplars per class are needed/,
    );
    expect(() => generateSymbolTuningData([], { seed: 1, count: 1 }).examples).toThrow(/at least one/);
  });
});

describe('symbol-tuning prompts that fit', () => {
  // Characters as the unit: the generator only needs a length that grows with the text.
  const chars = (limit: number) => ({ maxLength: limit, length: (e: { question: string; response: string }) => e.question.length + e.response.length });

  it('never cuts: a prompt too long gets fewer exemplars per class, the same for every class and in the same order', () => {
    const full = generateSymbolTuningData([rte], { seed: 5, count: 30, perClass: 4 }).examples;
    const lengths = full.map((e) => e.question.length + e.response.length).sort((a, b) => a - b);
    const limit = lengths[Math.floor(lengths.length / 2)]; // half of them are too long at 4 per class
    const fitted = generateSymbolTuningData([rte], { seed: 5, count: 30, perClass: 4, fit: chars(limit) });
    expect(fitted.examples.length + fitted.dropped.length).toBe(30);
    expect(fitted.shortened).toBeGreaterThan(5);
    expect(fitted.shortened).toBe(fitted.examples.filter((e) => e.perClass < 4).length);
    expect(Object.values(fitted.perClassCounts).reduce((a, b) => a + b, 0)).toBe(fitted.examples.length);
    for (const e of fitted.examples) {
      expect(e.question.length + e.response.length).toBeLessThanOrEqual(limit);
      const same = full.find((f) => f.id === e.id)!;
      // Symbols, shape, query and answer are those of the unfitted draw; exemplars a per-class prefix of it.
      expect({ symbols: e.symbols, shape: e.shape, response: e.response }).toEqual({ symbols: same.symbols, shape: same.shape, response: same.response });
      const b = blocks(e.question, e.shape.inputPrefix, e.shape.outputPrefix);
      const all = blocks(same.question, same.shape.inputPrefix, same.shape.outputPrefix);
      const query = all.pop()!;
      expect(b.pop()).toEqual(query);
      for (const symbol of Object.values(e.symbols)) expect(b.filter((x) => x.label === symbol).length).toBe(e.perClass);
      const rank = new Map<string, number>();
      const seen: Record<string, number> = {};
      for (const x of all) rank.set(x.text, (seen[x.label] = (seen[x.label] ?? -1) + 1));
      expect(b).toEqual(all.filter((x) => rank.get(x.text)! < e.perClass));
      // As many as fit: one more exemplar per class would not have.
      if (e.perClass < 4) {
        const longer = renderFewShot(e.shape, all.filter((x) => rank.get(x.text)! <= e.perClass), query.text);
        expect(longer.length + e.response.length).toBeGreaterThan(limit);
      }
    }
  });

  it('drops and reports a prompt that does not fit even with one exemplar per class', () => {
    const one = generateSymbolTuningData([rte], { seed: 6, count: 40, perClass: 1 }).examples.map((e) => e.question.length + e.response.length);
    const limit = Math.min(...one) + 1;
    const fitted = generateSymbolTuningData([rte], { seed: 6, count: 40, perClass: 3, fit: chars(limit) });
    expect(fitted.dropped.length).toBeGreaterThan(0);
    expect(fitted.examples.length).toBe(40 - fitted.dropped.length);
    for (const d of fitted.dropped) {
      expect(d.source).toBe('rte');
      expect(d.length).toBeGreaterThan(limit);
      expect(fitted.examples.map((e) => e.id)).not.toContain(d.id);
    }
    expect(fitted.examples.every((e) => e.perClass === 1)).toBe(true);
  });
});

describe('symbol-tuning prompts from every bundled pool, with the real Phi-2 tokenizer', () => {
  const pools = [...Object.keys(catalog.symbolTuningPools), ...Object.keys(catalog.classification)];

  it('covers every pool in public/data/pools', () => {
    const files = readdirSync(`${DATA}/pools`).filter((f) => f.endsWith('.jsonl'));
    expect(pools.map((id) => bundled(id).id).sort()).toEqual(files.map((f) => f.replace('.jsonl', '')).sort());
  });

  for (const shapes of ['varied', 'paper'] as const) {
    it(`keeps every prompt's query and answer within ${PAPER_TRAINING.maxLength} tokens (${shapes} layout, instructions mixed in)`, async () => {
      const tokenizer = await phi2Tokenizer();
      const template = parseTemplate(PAPER_TEMPLATE);
      const maxTokens = PAPER_TRAINING.maxLength;
      const text = (e: { question: string; response: string }) => renderTemplate(template, e);
      let shortened = 0;
      for (const id of pools) {
        const data = generateSymbolTuningData([bundled(id)], {
          seed: 2024,
          count: 40,
          shapes,
          instruction: 'mixed',
          fit: { maxLength: maxTokens, length: (e) => tokenizer.encode(text(e)).length },
        });
        shortened += data.shortened;
        expect(data.examples.length + data.dropped.length).toBe(40);
        // What training sees: the rows tokenised and cut at the maximum length, as the Train page does.
        const rows = data.examples.map((e) => splitPromptCompletion(template, e));
        const tokenized = tokenizeInstructionData(rows.map((r) => ({ question: r.prompt, response: r.completion })), tokenizer, '{question}{response}', { maxTokens });
        expect(tokenized.truncatedRows, id).toBe(0);
        data.examples.forEach((e, k) => {
          const ids = tokenized.rows[k].input_ids;
          expect(ids.length).toBeLessThanOrEqual(maxTokens);
          // The answer is the end of the text the model trains on, and the query sits right before it.
          const decoded = tokenizer.decode(ids);
          expect(decoded.endsWith(`${e.response}`), `${e.id} ends with its answer`).toBe(true);
          const query = blocks(e.question, e.shape.inputPrefix, e.shape.outputPrefix, e.shape.instruction).pop()!;
          expect(decoded.endsWith(`${query.text}\n${e.shape.outputPrefix}: \n${template.between}${e.response}`), `${e.id} keeps its query`).toBe(true);
          expect(e.perClass).toBeGreaterThanOrEqual(1);
        });
      }
      // RTE's long premises need shortening at 4 per class: the fit did work.
      expect(shortened).toBeGreaterThan(0);
    }, 120_000);
  }
});

function phi2Tokenizer() {
  const text = (name: string) => new TextDecoder().decode(fixtureBytes('phi2-tokenizer', name));
  return loadTokenizer({ 'tokenizer.json': text('tokenizer.json'), 'tokenizer_config.json': text('tokenizer_config.json') });
}

describe('symbol-tuning defaults', () => {
  it('four exemplars per class unless asked otherwise', () => {
    expect(SYMBOL_TUNING_PER_CLASS).toBe(4);
  });
});
