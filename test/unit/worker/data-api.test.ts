import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toTrlJsonl } from '../../../src/engine/data/export';
import { generateSymbolTuningData } from '../../../src/engine/data/symbol-tuning';
import { tokenizeInstructionData } from '../../../src/engine/data/template';
import { PAPER_TEMPLATE, parseTemplate, renderTemplate } from '../../../src/shared/template';
import { loadSymbolTuningPool, parseTaskCatalog, userPool } from '../../../src/engine/data/pools';
import type { Platform } from '../../../src/engine/platform/types';
import { WeightStore } from '../../../src/engine/store/store';
import { loadTokenizer } from '../../../src/engine/tokenizer/index';
import { suggestMapping } from '../../../src/engine/data/sources';
import { dataApi, type DataApi } from '../../../src/worker/data-api';
import { ROWS_PER_CHUNK } from '../../../src/engine/store/datasets';
import { type HfDatasetsServer, startHfDatasetsServer } from '../../support/hf-datasets-server';
import { testPlatform } from '../../support/platform';

const DATA = join(import.meta.dirname, '../../../public/data');
const TOKENIZER = join(import.meta.dirname, '../../../../shared/fixtures/phi2-tokenizer');
const DATA_URL = 'http://app.test/data/';
const HUB = 'http://hub.test';

/** Serves public/data under DATA_URL and the fixture tokenizer under HUB; everything else goes to the network (127.0.0.1). */
function makeFetch(log: string[]): typeof fetch {
  return (async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = String(input instanceof Request ? input.url : input);
    log.push(url);
    if (url.startsWith(DATA_URL)) {
      try {
        return new Response(readFileSync(join(DATA, url.slice(DATA_URL.length)), 'utf8'));
      } catch {
        return new Response('not found', { status: 404 });
      }
    }
    if (url.startsWith(HUB)) {
      const name = url.split('/').pop()!;
      if (name === 'tokenizer.json' || name === 'tokenizer_config.json') return new Response(readFileSync(join(TOKENIZER, name), 'utf8'));
      return new Response('not found', { status: 404 });
    }
    return fetch(input, init);
  }) as typeof fetch;
}

function workspace(): { w: DataApi; platform: Platform; fetched: string[] } {
  const fetched: string[] = [];
  const platform = testPlatform({ fetch: makeFetch(fetched) });
  return { w: dataApi({ platform }), platform, fetched };
}

/** Stores a model record with Phi-2's tokenizer, as a download leaves it; returns the tokenizer's files. */
async function storePhi2Tokenizer(platform: Platform): Promise<Record<string, string>> {
  const files = {
    'tokenizer.json': readFileSync(join(TOKENIZER, 'tokenizer.json'), 'utf8'),
    'tokenizer_config.json': readFileSync(join(TOKENIZER, 'tokenizer_config.json'), 'utf8'),
  };
  const store = await WeightStore.open(platform);
  await store.putModel({ id: 'phi-2-int8', name: 'microsoft/phi-2', complete: false } as Parameters<WeightStore['putModel']>[0]);
  await store.putTokenizer('phi-2-int8', files);
  store.close();
  return files;
}

const csv = (text: string, name = 'reviews.csv') => new File([text], name, { type: 'text/csv' });

// Line 1 header; line 4 has a field too many; line 6 an empty label.
const REVIEWS = [
  'text,label,source',
  'great film,positive,a',
  'dull and long,negative,b',
  'a bad row,negative,c,extra',
  'loved it,positive,d',
  'no label here,,e',
  'awful,negative,f',
  'wonderful cast,positive,g',
  'boring plot,negative,h',
].join('\n');

describe('column mapping suggestions', () => {
  it('picks input, output and label columns by name, and never one column twice', () => {
    expect(suggestMapping(['id', 'system_prompt', 'question', 'response'])).toEqual({ input: 'question', output: 'response' });
    expect(suggestMapping(['text', 'label'])).toEqual({ input: 'text', label: 'label' });
    expect(suggestMapping(['inputs', 'targets', 'symbols'])).toEqual({ input: 'inputs', output: 'targets' });
    expect(suggestMapping(['a', 'b'])).toEqual({ input: 'a', output: 'b' });
    expect(suggestMapping(['only'])).toEqual({ input: 'only' });
    expect(suggestMapping([])).toEqual({ input: '' });
  });
});

describe('uploads, validation and bad rows', () => {
  it('reports every bad row with its line, refuses to prepare until they are dropped, and keeps them for download', async () => {
    const { w } = workspace();
    const info = await w.openUpload(csv(REVIEWS));
    expect(info.origin).toEqual({ kind: 'file', name: 'reviews.csv', bytes: REVIEWS.length, format: 'csv' });
    expect(info.columns).toEqual(['text', 'label', 'source']);
    expect(info.rowsSeen).toBe(8);
    expect(info.unreadableRows).toBe(1);
    expect(info.suggestedMapping).toEqual({ input: 'text', label: 'label' });

    const report = await w.mapSource(info.id, { input: 'text', label: 'label' });
    expect(report.goodRows).toBe(6);
    expect(report.badRowCount).toBe(2);
    expect(report.problems.map((p) => [p.line, p.kind])).toEqual([
      [4, 'field-count'],
      [6, 'empty-text'],
    ]);
    expect(report.problems[0].message).toBe('Expected 3 fields (as in the header), found 4.');
    expect(report.labelCounts).toEqual([
      { label: 'negative', count: 3 },
      { label: 'positive', count: 3 },
    ]);
    expect(report.preview[0]).toEqual({ line: 2, input: 'great film', label: 'positive' });
    expect(report.rowUnit).toBe('line');
    // No tokenizer anywhere: lengths in characters, and no claim about truncation.
    expect(report.lengths.unit).toBe('characters');
    expect(report.lengths.stats.max).toBe('wonderful cast'.length);
    expect(report.lengths.stats.overLimit).toBe(0);

    const request = {
      pools: { kind: 'source' as const, sourceId: info.id },
      seed: 3,
      count: 4,
      perClass: 2,
      kinds: ['word' as const],
      instruction: 'none' as const,
      shapes: 'paper' as const,
      template: PAPER_TEMPLATE,
      maxTokens: 512,
    };
    await expect(w.prepareSymbolTuning(request)).rejects.toThrow('2 rows have problems: drop them in the validation report, or fix the file and upload it again.');

    const bad = await w.badRowsFile(info.id);
    expect(bad.fileName).toBe('reviews.bad-rows.csv');
    expect(await bad.blob.text()).toBe('text,label,source\na bad row,negative,c,extra\nno label here,,e\n');

    const dropped = await w.setBadRowsDropped(info.id, true);
    expect(dropped.badRowsDropped).toBe(true);
    expect(dropped.problems).toHaveLength(2); // still listed: nothing disappears

    const prepared = await w.prepareSymbolTuning(request);
    const expected = generateSymbolTuningData(
      [userPool('upload:reviews', 'reviews', [
        { input: 'great film', label: 'positive' },
        { input: 'dull and long', label: 'negative' },
        { input: 'loved it', label: 'positive' },
        { input: 'awful', label: 'negative' },
        { input: 'wonderful cast', label: 'positive' },
        { input: 'boring plot', label: 'negative' },
      ])],
      { seed: 3, count: 4, perClass: 2, kinds: ['word'], instruction: 'none', shapes: 'paper' },
    ).examples;
    const template = parseTemplate(PAPER_TEMPLATE);
    expect(prepared.examples.map((e) => e.prompt + e.completion)).toEqual(expected.slice(0, 3).map((e) => renderTemplate(template, e)));
    expect(prepared.examples[0].symbols).toEqual(expected[0].symbols);
    expect(prepared.rowCount).toBe(4);
    expect(prepared.truncatedRows).toBeNull();

    // A new mapping is a new set of problems: the decision to drop is asked again.
    const remapped = await w.mapSource(info.id, { input: 'text', label: 'source' });
    expect(remapped.badRowsDropped).toBe(false);
    expect(remapped.badRowCount).toBe(1);
  });

  it('gives clear errors for impossible mappings, settings and stale sources', async () => {
    const { w } = workspace();
    const info = await w.openUpload(csv('q,a\nhi,there\n', 'pairs.csv'));
    await expect(w.mapSource(info.id, { input: 'q', label: 'q' })).rejects.toThrow('The column "q" is mapped as both input and label.');
    await expect(w.mapSource(info.id, { input: 'q', output: 'nope' })).rejects.toThrow('The output column "nope" is not in the file');
    await expect(w.mapSource(info.id, { input: 'q', output: 'a' }, { maxTokens: 4096 })).rejects.toThrow('The maximum length must be a whole number from 2 to 2,048; got 4096.');
    await w.mapSource(info.id, { input: 'q', output: 'a' });
    await expect(w.prepareInstructionData({ sourceId: info.id, template: '### Q: {question}\n### A: {answer}', maxTokens: 512 })).rejects.toThrow(
      'Unknown placeholder {answer}: a template may only use {question} and {response}.',
    );
    await expect(
      w.prepareSymbolTuning({ pools: { kind: 'source', sourceId: info.id }, seed: 1, count: 1, perClass: 1, kinds: ['word'], instruction: 'none', shapes: 'paper', template: PAPER_TEMPLATE, maxTokens: 512 }),
    ).rejects.toThrow('Symbol tuning needs labelled rows: map the label column.');
    const next = await w.openUpload(csv('q,a\nx,y\n', 'other.csv'));
    await expect(w.mapSource(info.id, { input: 'q', output: 'a' })).rejects.toThrow('That upload is no longer open');
    await expect(w.openUpload(new File([new Uint8Array([0xff, 0xfe, 0x41, 0])], 'utf16.csv'))).rejects.toThrow('The file is UTF-16');
    expect(next.columns).toEqual(['q', 'a']);
  });

  it('gives back unreadable JSONL lines as they were', async () => {
    const { w } = workspace();
    const text = '{"question":"a","response":"b"}\n{"question": "broken"\n\n{"question":"c","response":""}\n{"question":"d","response":"e"}\n';
    const info = await w.openUpload(new File([text], 'chat.jsonl'));
    const report = await w.mapSource(info.id, { input: 'question', output: 'response' });
    expect(report.problems.map((p) => [p.line, p.kind])).toEqual([
      [2, 'malformed-json'],
      [4, 'empty-text'],
    ]);
    const bad = await w.badRowsFile(info.id);
    expect(bad.fileName).toBe('chat.bad-rows.jsonl');
    expect(await bad.blob.text()).toBe('{"question": "broken"\n{"question":"c","response":""}\n');
  });
});

describe('token counts', () => {
  it('counts in tokens with a stored model\u2019s tokenizer, and the truncated rows match the engine\u2019s tokenisation', async () => {
    const { w, platform } = workspace();
    const files = await storePhi2Tokenizer(platform);
    expect(await w.tokenizerName()).toBe('microsoft/phi-2 (stored model)');

    const rows = Array.from({ length: 40 }, (_, i) => ({ question: `Question ${i}: ${'why '.repeat(i * 3)}?`, response: `Because ${'so '.repeat(i)}.` }));
    const info = await w.openUpload(new File([rows.map((r) => JSON.stringify(r)).join('\n')], 'qa.jsonl'));
    const report = await w.mapSource(info.id, { input: 'question', output: 'response' }, { maxTokens: 64 });
    const tok = await loadTokenizer(files);
    expect(report.lengths.unit).toBe('tokens');
    expect(report.lengths.stats.max).toBe(tok.encode(`${rows[39].question}\n${rows[39].response}`).length);

    const prepared = await w.prepareInstructionData({ sourceId: info.id, template: PAPER_TEMPLATE, maxTokens: 64 });
    const reference = tokenizeInstructionData(rows, tok, PAPER_TEMPLATE, { maxTokens: 64 });
    expect(reference.truncatedRows).toBeGreaterThan(5);
    expect(reference.truncatedRows).toBeLessThan(40);
    expect(prepared.truncatedRows).toBe(reference.truncatedRows);
    expect(prepared.lengths.stats.overLimit).toBe(reference.truncatedRows);
    expect(prepared.examples[0]).toMatchObject({ prompt: `### Instruct: ${rows[0].question}\n ### Output: `, completion: rows[0].response, cut: false });
  });

  it('downloads Phi-2\u2019s tokenizer files alone, keeps them, and uses them when no model is stored', async () => {
    const { w, fetched } = workspace();
    expect(await w.tokenizerName()).toBeNull();
    expect(await w.downloadTokenizer(HUB)).toBe('Phi-2 (tokenizer files downloaded on this page)');
    expect(fetched.filter((u) => u.startsWith(HUB))).toEqual([
      `${HUB}/microsoft/phi-2/resolve/ef382358ec9e382308935a992d908de099b64c23/tokenizer.json`,
      `${HUB}/microsoft/phi-2/resolve/ef382358ec9e382308935a992d908de099b64c23/tokenizer_config.json`,
    ]);
    const info = await w.openUpload(csv('text,label\nHello world,a\nHi,b\n'));
    const report = await w.mapSource(info.id, { input: 'text', label: 'label' });
    expect(report.lengths.unit).toBe('tokens');
    expect(report.lengths.stats.max).toBe(2); // "Hello world" is two tokens
    await expect(w.downloadTokenizer('http://127.0.0.1:9')).rejects.toThrow(/Could not download tokenizer.json from http:\/\/127.0.0.1:9/);
  });
});

describe('symbol tuning from the bundled pools', () => {
  it('matches the engine\u2019s generator for the same seed, character for character', async () => {
    const { w } = workspace();
    const pools = await w.bundledPools(DATA_URL);
    expect(pools.map((p) => `${p.id}:${p.role}`)).toEqual(['sst2:tuning', 'rte:tuning', 'teh:evaluation', 'teo:evaluation', 'subj:evaluation', 'climate:evaluation']);
    const prepared = await w.prepareSymbolTuning({
      pools: { kind: 'bundled', ids: ['sst2', 'rte'], dataUrl: DATA_URL },
      seed: 1234,
      count: 50,
      perClass: 5,
      kinds: ['integer', 'letters', 'word'],
      instruction: 'none',
      shapes: 'varied',
      template: PAPER_TEMPLATE,
      maxTokens: 512,
    });
    const catalog = parseTaskCatalog(readFileSync(join(DATA, 'tasks.json'), 'utf8'));
    const local = makeFetch([]);
    const sst2 = await loadSymbolTuningPool(local, DATA_URL, catalog, 'sst2');
    const rte = await loadSymbolTuningPool(local, DATA_URL, catalog, 'rte');
    // No tokenizer here: the prompts cannot be measured, so they stay whole and the summary says they are not fitted.
    const template = parseTemplate(PAPER_TEMPLATE);
    const expected = generateSymbolTuningData([sst2, rte], { seed: 1234, count: 50, perClass: 5 });
    expect(prepared.rowCount).toBe(50);
    expect(prepared.symbolFit).toMatchObject({ fitted: false, maxLength: 512, perClass: 5, shortened: 0, dropped: 0 });
    expect(prepared.examples).toHaveLength(3);
    prepared.examples.forEach((e, k) => {
      expect(e.prompt + e.completion).toBe(renderTemplate(template, expected.examples[k]));
      expect(e.completion).toBe(expected.examples[k].response);
      expect(e.pool).toBe(expected.examples[k].source);
    });
    await expect(
      w.prepareSymbolTuning({ pools: { kind: 'bundled', ids: ['nope'], dataUrl: DATA_URL }, seed: 1, count: 1, perClass: 1, kinds: ['word'], instruction: 'none', shapes: 'paper', template: PAPER_TEMPLATE, maxTokens: 512 }),
    ).rejects.toThrow('no bundled pool "nope"');
    await expect(
      w.prepareSymbolTuning({ pools: { kind: 'bundled', ids: ['sst2'], dataUrl: DATA_URL }, seed: 1, count: 1, perClass: 1, kinds: [], instruction: 'none', shapes: 'paper', template: PAPER_TEMPLATE, maxTokens: 512 }),
    ).rejects.toThrow('Choose at least one kind of symbol.');
  });

  it('fits the prompts in tokens once a tokenizer is at hand, and says how many were shortened or dropped', async () => {
    const { w, platform } = workspace();
    const files = await storePhi2Tokenizer(platform);
    const request = { pools: { kind: 'bundled' as const, ids: ['rte'], dataUrl: DATA_URL }, seed: 7, count: 30, perClass: 4, kinds: ['word' as const], instruction: 'none' as const, shapes: 'paper' as const, template: PAPER_TEMPLATE, maxTokens: 512 };
    const prepared = await w.prepareSymbolTuning(request);
    const tok = await loadTokenizer(files);
    const template = parseTemplate(PAPER_TEMPLATE);
    const rte = await loadSymbolTuningPool(makeFetch([]), DATA_URL, parseTaskCatalog(readFileSync(join(DATA, 'tasks.json'), 'utf8')), 'rte');
    const expected = generateSymbolTuningData([rte], { ...request, fit: { maxLength: 512, length: (e) => tok.encode(renderTemplate(template, e)).length } });
    expect(prepared.symbolFit).toEqual({
      fitted: true,
      maxLength: 512,
      perClass: 4,
      shortened: expected.shortened,
      dropped: expected.dropped.length,
      droppedExamples: expected.dropped.map((d) => ({ pool: 'rte', length: d.length })),
      perClassCounts: expected.perClassCounts,
    });
    // Most RTE prompts are too long at 4 per class; none is cut now.
    expect(expected.shortened).toBeGreaterThan(15);
    expect(prepared.truncatedRows).toBe(0);
    expect(prepared.rowCount).toBe(expected.examples.length);
    await expect(w.prepareSymbolTuning({ ...request, maxTokens: 40 })).rejects.toThrow(/None of the 30 prompts fits in 40 tokens, even with one exemplar per class/);
  });
});

describe('saved datasets', () => {
  it('saves in chunks, lists, reads back exactly, renames, exports for TRL and deletes', async () => {
    const { w } = workspace();
    const n = ROWS_PER_CHUNK * 2 + 17;
    const lines = ['question,response', ...Array.from({ length: n }, (_, i) => `"q ${i}, with ""quotes""","r ${i}\u2028"`)];
    const info = await w.openUpload(csv(lines.join('\n'), 'big.csv'));
    await w.mapSource(info.id, { input: 'question', output: 'response' });
    const prepared = await w.prepareInstructionData({ sourceId: info.id, template: 'Q: {question}\nA: {response}', maxTokens: 512 });
    expect(prepared.suggestedName).toBe('big (instruction)');
    const saved = await w.saveDataset(prepared.id, '  Big set  ');
    expect(saved).toMatchObject({ name: 'Big set', kind: 'instruction', rowCount: n, template: 'Q: {question}\nA: {response}', maxTokens: 512, truncatedRows: null });
    await expect(w.saveDataset(prepared.id, 'big SET')).rejects.toThrow('A saved dataset is already called "Big set": choose another name.');
    await expect(w.saveDataset(prepared.id, '   ')).rejects.toThrow('Give the dataset a name.');
    await expect(w.saveDataset('stale', 'x')).rejects.toThrow('That prepared dataset was replaced by a newer one');

    const { info: got, rows } = await w.getDataset(saved.id);
    expect(got).toEqual(saved);
    expect(rows).toHaveLength(n);
    expect(rows[0]).toEqual({ prompt: 'Q: q 0, with "quotes"\nA: ', completion: 'r 0\u2028' });
    expect(rows[n - 1]).toEqual({ prompt: `Q: q ${n - 1}, with "quotes"\nA: `, completion: `r ${n - 1}\u2028` });

    const second = await w.saveDataset(prepared.id, 'Second');
    expect((await w.listDatasets()).map((d) => d.name).sort()).toEqual(['Big set', 'Second']);
    await expect(w.renameDataset(second.id, 'big set')).rejects.toThrow('already called "Big set"');
    const renamed = await w.renameDataset(second.id, 'Copy');
    expect(renamed.name).toBe('Copy');

    const pc = await w.exportDataset(saved.id, 'prompt-completion');
    expect(pc.fileName).toBe('big-set.prompt-completion.jsonl');
    const pcText = await pc.blob.text();
    expect(pcText).toBe(toTrlJsonl(rows.map((r) => ({ question: r.prompt, response: r.completion })), 'prompt-completion', '{question}{response}'));
    const firstLine = JSON.parse(pcText.split('\n')[0]);
    expect(firstLine).toEqual({ prompt: 'Q: q 0, with "quotes"\nA: ', completion: 'r 0\u2028' });
    expect(pcText.split('\n')[0]).toContain('\\u2028'); // Python's splitlines() must not split a row
    const text = await (await w.exportDataset(saved.id, 'text')).blob.text();
    expect(JSON.parse(text.split('\n')[1])).toEqual({ text: 'Q: q 1, with "quotes"\nA: r 1\u2028' });
    expect(text.split('\n')).toHaveLength(n + 1);

    await w.deleteDataset(saved.id);
    expect((await w.listDatasets()).map((d) => d.name)).toEqual(['Copy']);
    await expect(w.getDataset(saved.id)).rejects.toThrow(`No saved dataset with id "${saved.id}"`);
  });

  it('saves nothing when the disk is full, and says what to do', async () => {
    const { w } = workspace();
    const info = await w.openUpload(csv('question,response\na,b\nc,d\n'));
    await w.mapSource(info.id, { input: 'question', output: 'response' });
    const prepared = await w.prepareInstructionData({ sourceId: info.id, template: PAPER_TEMPLATE, maxTokens: 512 });
    const proto = (globalThis as unknown as { IDBObjectStore: { prototype: Record<string, unknown> } }).IDBObjectStore.prototype;
    const put = proto.put as (this: IDBObjectStore, ...args: unknown[]) => IDBRequest;
    proto.put = function (this: IDBObjectStore & { transaction: { _abort(name: string): void } }, ...args: unknown[]) {
      const request = put.apply(this, args);
      if (this.name === 'rows') this.transaction._abort('QuotaExceededError');
      return request;
    };
    try {
      await expect(w.saveDataset(prepared.id, 'Full')).rejects.toThrow(
        "The browser's storage is full, so Full was not saved (nothing was half written). Delete saved datasets or models you no longer need, then save again.",
      );
    } finally {
      proto.put = put;
    }
    expect(await w.listDatasets()).toEqual([]);
  });
});

describe('Hub datasets', () => {
  let server: HfDatasetsServer;
  const orca = Array.from({ length: 230 }, (_, i) => ({
    id: `${i % 3 === 0 ? 'cot' : 'flan'}.${i}`,
    system_prompt: '',
    question: `question ${i}`,
    response: i === 9 ? '' : `response ${i}`,
  }));
  beforeAll(async () => {
    server = await startHfDatasetsServer([
      { dataset: 'Open-Orca/OpenOrca', config: 'default', split: 'train', rows: orca },
      { dataset: 'acme/gated', config: 'default', split: 'train', rows: orca.slice(0, 3), token: 'hf_secret' },
    ]);
  });
  afterAll(() => server.close());

  it('loads a preset page by page with progress, maps it, and reads the cache the second time', async () => {
    const { w } = workspace();
    const progress: number[] = [];
    const request = { jobId: 'j1', preset: 'openorca-cot' as const, dataset: 'Open-Orca/OpenOrca', config: 'default', split: 'train', maxRows: 50, apiBaseUrl: server.baseUrl };
    const info = await w.loadHubDataset(request, (p) => progress.push(p.keptRows));
    expect(info.origin).toEqual({ kind: 'hub', dataset: 'Open-Orca/OpenOrca', config: 'default', split: 'train', preset: 'openorca-cot' });
    expect(info.readableRows).toBe(50);
    expect(info.hub).toMatchObject({ totalRows: 230, pagesFetched: 2, pagesFromCache: 0 });
    expect(progress).toEqual([34, 50]);
    expect(info.suggestedMapping).toEqual({ input: 'question', output: 'response' });
    const report = await w.mapSource(info.id, info.suggestedMapping);
    expect(report.rowUnit).toBe('row');
    expect(report.problems).toEqual([{ line: 10, kind: 'empty-text', column: 'response', message: 'Empty output: column "response" is blank in this row.' }]);
    const bad = await w.badRowsFile(info.id);
    expect(JSON.parse((await bad.blob.text()).trim())).toEqual({ row_idx: 9, row: orca[9] });

    const before = server.requests.length;
    const again = await w.loadHubDataset({ ...request, jobId: 'j2' });
    expect(again.hub).toMatchObject({ pagesFetched: 0, pagesFromCache: 2 });
    expect(server.requests.length).toBe(before);
  });

  it('explains missing and gated datasets, and stops when cancelled', async () => {
    const { w } = workspace();
    const base = { jobId: 'x', preset: null, config: 'default', split: 'train', maxRows: 10, apiBaseUrl: server.baseUrl };
    await expect(w.loadHubDataset({ ...base, dataset: 'acme/missing' })).rejects.toThrow(
      'acme/missing (config "default", split "train") was not found on the Hub: check the dataset name, config and split',
    );
    await expect(w.loadHubDataset({ ...base, dataset: 'acme/gated' })).rejects.toThrow('needs authentication: it is gated or private');
    const gated = await w.loadHubDataset({ ...base, dataset: 'acme/gated', token: 'hf_secret' });
    expect(gated.readableRows).toBe(3);
    await expect(w.loadHubDataset({ ...base, dataset: 'not a name' })).rejects.toThrow('"not a name" is not a Hub dataset id');
    await expect(w.loadHubDataset({ ...base, dataset: 'a/b', maxRows: 0 })).rejects.toThrow('The row limit must be a whole number from 1 to 100,000; got 0.');

    server.script.push({ status: 429, retryAfter: '3600' });
    await expect(w.loadHubDataset({ ...base, dataset: 'Open-Orca/OpenOrca', maxRows: 5 })).rejects.toThrow(
      'rate limited by the Hub (HTTP 429); it asks to wait 3600 s before retrying. Try again later. The pages read so far are cached, so a later load resumes where this one stopped.',
    );

    // Cancel while the loader waits to retry a 503.
    server.script.push({ status: 503, retryAfter: '5' });
    const pending = w.loadHubDataset({ ...base, jobId: 'cancel-me', dataset: 'Open-Orca/OpenOrca', maxRows: 5 }, () => {
      void w.cancelHubLoad('cancel-me');
    });
    const err = await pending.catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).name).toBe('AbortError');
    expect((err as Error).message).toBe('Loading Open-Orca/OpenOrca was cancelled after 0 rows. The pages read are cached, so loading again resumes quickly.');
  });
});
