import { type PaperPromptRow, type PaperReference, parsePaperPrompts, parsePaperResults } from './paper';
import { type LabeledPool, parsePoolRows, parseTaskCatalog, type TaskCatalog, taskPool } from './tasks';

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

async function fetchText(fetchFn: typeof fetch, url: string): Promise<string> {
  let response: Response;
  try {
    response = await fetchFn(url);
  } catch (err) {
    throw new Error(`Could not load ${url}: ${(err as Error).message}`);
  }
  if (!response.ok) throw new Error(`Could not load ${url}: HTTP ${response.status}`);
  return response.text();
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

/** A symbol-tuning pool (sst2, rte) or an evaluation pool used as tuning data, by id. */
export async function loadSymbolTuningPool(fetchFn: typeof fetch, baseUrl: string, catalog: TaskCatalog, id: string): Promise<LabeledPool> {
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  const info = catalog.symbolTuningPools[id];
  const task = catalog.classification[id];
  if (!info && !task) throw new Error(`no bundled pool "${id}"`);
  if (task) return taskPool(task, parsePoolRows(await fetchText(fetchFn, new URL(task.pool, base).href), task.pool));
  const rows = parsePoolRows(await fetchText(fetchFn, new URL(info.pool, base).href), info.pool);
  // Symbol tuning replaces the label words anyway; flipped words are never used for these pools.
  const classes = Object.keys(info.labels);
  const flipped = Object.fromEntries(classes.map((c, k) => [c, info.labels[classes[(k + 1) % classes.length]]]));
  return taskPool({ id, name: info.name, pool: info.pool, instruction: '', labels: info.labels, flippedLabels: flipped }, rows);
}
