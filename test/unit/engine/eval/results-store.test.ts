import { describe, expect, it } from 'vitest';
import { testPlatform } from '../../../support/idb';
import { RESULT_CSV_COLUMNS, resultsFromJson, toItemResult, type EvalItemResult, type EvalRunResult } from '../../../../src/engine/eval/results';
import { ResultsStore } from '../../../../src/engine/eval/results-store';
import { STORES } from '../../../../src/engine/store/schema';
import { WeightStore } from '../../../../src/engine/store';
import type { EvalItem } from '../../../../src/engine/eval/types';
import Papa from 'papaparse';

// Stored results need no GPU: items as the runner records them.
const SETTINGS = { wrapper: 'paper' as const, decoding: 'greedy' as const, maxNewTokens: 4, scoring: 'generation' as const, rankCandidates: true, stopWhenAnswered: false };

function items(n: number, from = 0): EvalItemResult[] {
  return Array.from({ length: n }, (_, j) => {
    const k = from + j;
    const item: EvalItem = {
      id: `short/${k}`,
      suite: 'in_context',
      dataset: k % 3 === 2 ? 'teo' : 'teh',
      format: 'instruction_label',
      prompt: `Question: day ${k}\nAnswer: Yes\nQuestion: night\nAnswer: No\nQuestion: q${k}\nAnswer: \n`,
      target: k % 2 ? 'No' : 'Yes',
      labels: ['Yes', 'No'],
    };
    // Right by both, right by the answer verdict only ("Yes." / "no."), or wrong.
    const generation = [item.target, `${item.target}.`, 'maybe'][k % 3];
    return toItemResult(item, ` ${generation}\nQuestion`, 'generation', { logLikelihoods: [-1.5, -2.25 + (k % 2)], ms: 12 });
  });
}

const header = { model: 'tiny-phi (int8)', adapter: null, seed: 3, settings: SETTINGS, suite: 'in_context', startedAt: '2025-01-02T03:04:05.000Z', durationMs: 0 };

async function open() {
  const store = await WeightStore.open(testPlatform());
  let t = Date.parse('2025-01-02T03:04:05.000Z');
  return { store, results: new ResultsStore(store, () => new Date((t += 1000)).toISOString()) };
}

describe('results store (IndexedDB)', () => {
  it('saves a run a batch at a time as it goes, each batch with the counts, and reads it back in order', async () => {
    const { store, results } = await open();
    const begun = await results.begin(header, { groupId: 'g', modelId: 'tiny', paperModel: 'phi-2', plannedCount: 7 });
    expect(begun).toMatchObject({ status: 'running', itemCount: 0, chunks: 0, total: 0, paperModel: 'phi-2' });
    const all = items(7);
    let summary = begun;
    for (const [from, to] of [
      [0, 4],
      [4, 7],
    ]) {
      summary = await results.append(begun.id, all.slice(from, to), { durationMs: 100 * to, promptTokens: 10 * to, generatedTokens: 3 * to, rates: { decodeMsPerToken: 40 } });
      // After each batch what finished is on disk: a reload now loses nothing of it.
      const read = await results.get(begun.id);
      expect(read.items).toEqual(all.slice(0, to));
      expect(read).toMatchObject({ status: 'running', itemCount: to, durationMs: 100 * to });
    }
    // Counts: k % 3 == 0 right by both, 1 right by the answer verdict only, 2 wrong.
    expect(summary).toMatchObject({ total: 7, correct: 5, answer: 5, strict: 3, reviewed: 0, handScore: 0, chunks: 2, rank: { correct: 7, total: 7 } });
    expect(summary.cells.map((c) => [c.dataset, c.total, c.answer, c.strict])).toEqual([
      ['teh', 5, 5, 3],
      ['teo', 2, 0, 0],
      ['all', 7, 5, 3],
    ]);
    expect(summary.updatedAt > begun.updatedAt).toBe(true);
    const done = await results.finish(begun.id, 'complete');
    expect(done.status).toBe('complete');
    const failed = await results.finish(begun.id, 'failed', { error: 'item short/7 (8 of 9) failed: the GPU was lost', failure: { itemId: 'short/7', index: 7, batchSize: 2, message: 'the GPU was lost' } });
    expect(failed).toMatchObject({ status: 'failed', error: expect.stringMatching(/short\/7/), failure: { index: 7 } });
    store.close();
  });

  it('keeps hand reviews beside the run: counts per cell, in get, CSV and JSON, and cleared again', async () => {
    const { store, results } = await open();
    const run: EvalRunResult = { ...header, items: items(6), durationMs: 5 };
    const saved = await results.save(run, { groupId: 'g', modelId: 'tiny', plannedCount: 6, status: 'complete' });
    await results.review(saved.id, 'short/0', 1);
    await results.review(saved.id, 'short/1', 0.5);
    await results.review(saved.id, 'short/2', 0);
    let summary = await results.review(saved.id, 'short/1', 1); // changed their mind: counts once
    expect(summary).toMatchObject({ reviewed: 3, handScore: 2 });
    expect(summary.cells.map((c) => [c.dataset, c.reviewed, c.handScore])).toEqual([
      ['teh', 2, 2],
      ['teo', 1, 0],
      ['all', 3, 2],
    ]);
    await results.review(saved.id, 'short/5', 0.5);
    summary = await results.review(saved.id, 'short/5', null);
    expect(summary).toMatchObject({ reviewed: 3, handScore: 2 });
    const read = await results.get(saved.id);
    expect(read.items.map((i) => i.review)).toEqual([1, 1, 0, undefined, undefined, undefined]);
    expect((await results.list())[0]).toMatchObject({ reviewed: 3, handScore: 2 });

    const csv = Papa.parse<Record<string, string>>(await results.exportCsv([saved.id]), { header: true, skipEmptyLines: true });
    expect(csv.meta.fields).toEqual([...RESULT_CSV_COLUMNS]);
    expect(csv.data.map((r) => r.hand_review)).toEqual(['1', '1', '0', '', '', '']);
    const json = await results.exportJson([saved.id]);
    expect(resultsFromJson(json)[0].items.map((i) => i.review)).toEqual([1, 1, 0, undefined, undefined, undefined]);
    // An imported file brings its reviews along.
    const [imported] = await results.importJson(json);
    expect(imported).toMatchObject({ reviewed: 3, handScore: 2 });
    expect((await results.get(imported.id)).items.map((i) => i.review)).toEqual([1, 1, 0, undefined, undefined, undefined]);

    await expect(results.review(saved.id, 'short/99', 1)).rejects.toThrow(/has no item "short\/99"/);
    await expect(results.review(saved.id, 'short/0', 0.7 as 1)).rejects.toThrow(/1 \(right\), 0\.5 \(half\) or 0 \(wrong\)/);
    store.close();
  });

  it('lists newest first, deletes a run with all its records, and keeps jobs to resume', async () => {
    const { store, results } = await open();
    const older = await results.save({ ...header, startedAt: '2024-12-31T00:00:00.000Z', adapter: 'flan', items: items(2) }, { groupId: 'g', modelId: 'tiny', plannedCount: 5, status: 'cancelled' });
    const newer = await results.begin(header, { groupId: 'g2', modelId: 'tiny', plannedCount: 3 });
    await results.append(newer.id, items(3), { durationMs: 1 });
    await results.review(newer.id, 'short/0', 1);
    expect((await results.list()).map((s) => [s.id, s.status])).toEqual([
      [newer.id, 'running'],
      [older.id, 'cancelled'],
    ]);
    await results.putJob('g2', { what: 'to resume' });
    expect(await results.getJob('g2')).toEqual({ what: 'to resume' });
    expect(await results.listJobs()).toEqual([{ groupId: 'g2', job: { what: 'to resume' } }]);
    await results.deleteJob('g2');
    expect(await results.getJob('g2')).toBeNull();

    await results.delete(newer.id);
    await expect(results.get(newer.id)).rejects.toThrow(/No saved evaluation/);
    const keys = (await store.db.getAllKeys(STORES.results)) as string[];
    expect(keys.filter((k) => k.includes(newer.id))).toEqual([]);
    expect((await results.list()).map((s) => s.id)).toEqual([older.id]);
    await expect(results.exportCsv([])).rejects.toThrow(/at least one/);
    await expect(results.importJson('{"runs": []}')).rejects.toThrow(/cannot be imported/);
    store.close();
  });

  it('reads runs saved by the first version (one items record, a summary without verdict counts), upgrading them once', async () => {
    const { store, results } = await open();
    // As the first version wrote them: `verdict` was the strict rule's, no `strict` or `answer`.
    const old = items(3).map(({ strict, answer: _answer, verdict: _verdict, ...rest }) => ({ ...rest, verdict: strict }));
    const summary = { id: 'old', groupId: 'g', model: 'm', modelId: null, adapter: null, seed: 1, settings: SETTINGS, suite: 'in_context', startedAt: '2024-01-01T00:00:00.000Z', durationMs: 9, itemCount: 3, plannedCount: 3, correct: 1, status: 'complete', cells: [], rank: { correct: 0, total: 0 } };
    await store.db.put(STORES.results, { id: 'run/old', summary } as never);
    await store.db.put(STORES.results, { id: 'items/old', items: old } as never);
    const [listed] = await results.list();
    expect(listed).toMatchObject({ version: 2, id: 'old', total: 3, answer: 2, strict: 1, correct: 2, itemCount: 3 });
    const read = await results.get('old');
    expect(read.items.map((i) => [i.verdict.correct, i.strict.correct, i.answer.correct])).toEqual([
      [true, true, true],
      [true, false, true],
      [false, false, false],
    ]);
    expect(((await store.db.get(STORES.results, 'run/old')) as unknown as { summary: { version: number } }).summary.version).toBe(2);
    await results.delete('old');
    expect(await store.db.getAllKeys(STORES.results)).toEqual([]);
    store.close();
  });

  it('says a run lost items rather than showing part of it', async () => {
    const { store, results } = await open();
    const run = await results.begin(header, { groupId: 'g', modelId: null, plannedCount: 4 });
    await results.append(run.id, items(4), { durationMs: 1 });
    await store.db.delete(STORES.results, `items/${run.id}/000000`);
    await expect(results.get(run.id)).rejects.toThrow(/has 0 of its 4 items/);
    store.close();
  });
});
