import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadBundledData } from '../../../../src/engine/eval/bundled';
import { DataFormatError, loadSymbolTuningPool, parsePoolRows, parseTaskCatalog, taskPool } from '../../../../src/engine/data/pools';

const DATA = join(import.meta.dirname, '../../../../public/data');

const BASE = 'http://app.test/data/';

/** Serves public/data as the app's static server would, and records what was asked for. */
function staticFetch(requested: string[]): typeof fetch {
  return (async (input: RequestInfo | URL) => {
    const url = String(input);
    requested.push(url);
    if (!url.startsWith(BASE)) return new Response('not here', { status: 404 });
    try {
      return new Response(readFileSync(`${DATA}/${url.slice(BASE.length)}`, 'utf8'));
    } catch {
      return new Response('missing', { status: 404 });
    }
  }) as typeof fetch;
}

describe('bundled data', () => {
  it('loads the catalogue, the four evaluation pools and the paper files', async () => {
    const requested: string[] = [];
    const data = await loadBundledData(staticFetch(requested), 'http://app.test/data');
    expect(Object.keys(data.pools).sort()).toEqual(['climate', 'subj', 'teh', 'teo']);
    expect(Object.values(data.pools).map((p) => p.rows.length).sort((a, b) => a - b)).toEqual([798, 830, 2000, 2000]);
    expect(data.pools.teh.labelWords).toEqual({ '1': 'Hate', '0': 'No Hate' });
    expect(data.pools.teh.instruction).toBe('Label the following tweet based on whether it contains hate speech.');
    expect(data.paperPrompts.length).toBe(730);
    expect(data.paperResults.models).toContain('flan-phi-2');
    expect(requested).toContain('http://app.test/data/pools/climate.jsonl');
    expect(requested).toContain('http://app.test/data/paper/prompts.jsonl');

    const sst2 = await loadSymbolTuningPool(staticFetch([]), BASE, data.catalog, 'sst2');
    expect(sst2.rows.length).toBe(872);
    expect(sst2.instruction).toBeUndefined();
    expect(sst2.labelWords).toEqual({ '1': 'positive', '0': 'negative' });
    await expect(loadSymbolTuningPool(staticFetch([]), BASE, data.catalog, 'nope')).rejects.toThrow(/no bundled pool "nope"/);
  });

  it('says which file failed', async () => {
    const broken = (async (input: RequestInfo | URL) =>
      String(input).endsWith('results.json') ? new Response('gone', { status: 404 }) : staticFetch([])(input)) as typeof fetch;
    await expect(loadBundledData(broken, BASE)).rejects.toThrow('Could not load http://app.test/data/paper/results.json: HTTP 404');
    const offline = (async () => {
      throw new TypeError('Failed to fetch');
    }) as typeof fetch;
    await expect(loadBundledData(offline, BASE)).rejects.toThrow(/Could not load .*tasks\.json: Failed to fetch/);
  });

  it('rejects malformed catalogue and pool files with the place of the problem', () => {
    expect(() => parseTaskCatalog('{"classification": {"x": {"name": "X"}}}')).toThrow(/classification\.x\.labels: expected an object/);
    expect(() =>
      parseTaskCatalog(
        '{"classification": {"x": {"name": "X", "pool": "p", "instruction": "i", "labels": {"1": "a", "0": "b"}, "flipped_labels": {"1": "b", "2": "a"}}}}',
      ),
    ).toThrow(/labels and flipped_labels name different classes/);
    expect(() => parsePoolRows('{"text": "a", "label": 1}\n{"text": 3}', 'pools/x.jsonl')).toThrow('pools/x.jsonl line 2: expected {"text": string, "label": number}');
    const task = parseTaskCatalog(readFileSync(`${DATA}/tasks.json`, 'utf8')).classification.teh;
    expect(() => taskPool(task, [{ text: 'a', label: '2' }])).toThrow(DataFormatError);
  });
});
