import { type PaperPromptRow, type PaperReference, parsePaperPrompts, parsePaperResults } from './paper';
import { fetchText, type LabeledPool, parsePoolRows, parseTaskCatalog, type TaskCatalog, taskPool } from '../data/pools';

/**
 * Loads the data bundled with the app (public/data, served next to index.html) through the Platform's
 * fetch: the task catalogue, the four evaluation pools, the paper's prompts and results.
 */
export interface BundledData {
  catalog: TaskCatalog;
  /** Evaluation pools by task id (teh, teo, subj, climate). */
  pools: Record<string, LabeledPool>;
  paperPrompts: PaperPromptRow[];
  paperResults: PaperReference;
}

/** `baseUrl` is the data folder's URL, e.g. new URL('data/', location.href).href. */
export async function loadBundledData(fetchFn: typeof fetch, baseUrl: string): Promise<BundledData> {
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  const at = (path: string) => new URL(path, base).href;
  const catalog = parseTaskCatalog(await fetchText(fetchFn, at('tasks.json')));
  const tasks = Object.values(catalog.classification);
  const [poolTexts, prompts, results] = await Promise.all([
    Promise.all(tasks.map((t) => fetchText(fetchFn, at(t.pool)))),
    fetchText(fetchFn, at('paper/prompts.jsonl')),
    fetchText(fetchFn, at('paper/results.json')),
  ]);
  const pools: Record<string, LabeledPool> = {};
  tasks.forEach((t, k) => (pools[t.id] = taskPool(t, parsePoolRows(poolTexts[k], t.pool))));
  return { catalog, pools, paperPrompts: parsePaperPrompts(prompts), paperResults: parsePaperResults(results) };
}
