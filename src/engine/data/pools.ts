/**
 * The bundled task catalogue (public/data/tasks.json) and labelled pools (public/data/pools/*.jsonl), and
 * the common shape every in-context suite and the symbol-tuning generator draw from: a LabeledPool.
 */

export interface ClassificationTask {
  id: string;
  name: string;
  /** Path of the pool relative to the data folder. */
  pool: string;
  instruction: string;
  /** Class key ("1", "0") -> label word. */
  labels: Record<string, string>;
  flippedLabels: Record<string, string>;
}

export interface SymbolTuningPoolInfo {
  id: string;
  name: string;
  pool: string;
  labels: Record<string, string>;
}

export interface TaskCatalog {
  classification: Record<string, ClassificationTask>;
  symbolTuningPools: Record<string, SymbolTuningPoolInfo>;
}

/**
 * Labelled texts with their class structure. `classes` fixes the class order (it is the order candidate
 * labels are listed in); every row's label is one of them.
 */
export interface LabeledPool {
  id: string;
  name: string;
  /** Task instruction for the instruction formats; absent when there is none. */
  instruction?: string;
  classes: string[];
  /** Class -> the word shown for it in instruction_label prompts. */
  labelWords: Record<string, string>;
  /** Class -> the word shown in flipped-label prompts. */
  flippedWords: Record<string, string>;
  rows: Array<{ text: string; label: string }>;
}

export class DataFormatError extends Error {
  override name = 'DataFormatError';
}

function expectObject(v: unknown, where: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new DataFormatError(`${where}: expected an object`);
  return v as Record<string, unknown>;
}

function expectString(v: unknown, where: string): string {
  if (typeof v !== 'string' || v === '') throw new DataFormatError(`${where}: expected a non-empty string`);
  return v;
}

function expectLabelMap(v: unknown, where: string): Record<string, string> {
  const o = expectObject(v, where);
  const out: Record<string, string> = {};
  for (const [k, word] of Object.entries(o)) out[k] = expectString(word, `${where}.${k}`);
  if (Object.keys(out).length < 2) throw new DataFormatError(`${where}: needs at least two labels`);
  return out;
}

export function parseTaskCatalog(json: string): TaskCatalog {
  const root = expectObject(JSON.parse(json), 'tasks.json');
  const classification: Record<string, ClassificationTask> = {};
  for (const [id, raw] of Object.entries(expectObject(root.classification, 'tasks.json classification'))) {
    const t = expectObject(raw, `tasks.json classification.${id}`);
    const where = `tasks.json classification.${id}`;
    const labels = expectLabelMap(t.labels, `${where}.labels`);
    const flippedLabels = expectLabelMap(t.flipped_labels, `${where}.flipped_labels`);
    if (Object.keys(labels).sort().join() !== Object.keys(flippedLabels).sort().join()) {
      throw new DataFormatError(`${where}: labels and flipped_labels name different classes`);
    }
    classification[id] = {
      id,
      name: expectString(t.name, `${where}.name`),
      pool: expectString(t.pool, `${where}.pool`),
      instruction: expectString(t.instruction, `${where}.instruction`),
      labels,
      flippedLabels,
    };
  }
  const symbolTuningPools: Record<string, SymbolTuningPoolInfo> = {};
  for (const [id, raw] of Object.entries(expectObject(root.symbol_tuning_pools ?? {}, 'tasks.json symbol_tuning_pools'))) {
    const t = expectObject(raw, `tasks.json symbol_tuning_pools.${id}`);
    const where = `tasks.json symbol_tuning_pools.${id}`;
    symbolTuningPools[id] = {
      id,
      name: expectString(t.name, `${where}.name`),
      pool: expectString(t.pool, `${where}.pool`),
      labels: expectLabelMap(t.labels, `${where}.labels`),
    };
  }
  return { classification, symbolTuningPools };
}

/** Parses a pool file: one {"text": str, "label": 1 | 0} per line; labels become class keys "1"/"0". */
export function parsePoolRows(jsonl: string, where: string): Array<{ text: string; label: string }> {
  const rows: Array<{ text: string; label: string }> = [];
  jsonl.split('\n').forEach((line, k) => {
    if (line.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (err) {
      throw new DataFormatError(`${where} line ${k + 1}: ${(err as Error).message}`);
    }
    const o = expectObject(v, `${where} line ${k + 1}`);
    if (typeof o.text !== 'string' || (typeof o.label !== 'number' && typeof o.label !== 'string')) {
      throw new DataFormatError(`${where} line ${k + 1}: expected {"text": string, "label": number}`);
    }
    rows.push({ text: o.text, label: String(o.label) });
  });
  return rows;
}

/** A bundled classification task with its pool, as a LabeledPool. Class order: the task's label order. */
export function taskPool(task: ClassificationTask, rows: Array<{ text: string; label: string }>): LabeledPool {
  const classes = Object.keys(task.labels);
  const pool: LabeledPool = {
    id: task.id,
    name: task.name,
    classes,
    labelWords: { ...task.labels },
    flippedWords: { ...task.flippedLabels },
    rows,
  };
  if (task.instruction) pool.instruction = task.instruction;
  checkPool(pool);
  return pool;
}

/**
 * A user's labelled rows as a LabeledPool. Labels are their own words; "flipped" maps each class to the
 * next one in `classes` order (for two classes, the swap the paper uses).
 */
export function userPool(
  id: string,
  name: string,
  rows: ReadonlyArray<{ input: string; label?: string }>,
  options: { instruction?: string; classes?: string[] } = {},
): LabeledPool {
  const present = new Set<string>();
  const poolRows = rows.map((r, k) => {
    if (r.label === undefined) throw new DataFormatError(`${name}: row ${k + 1} has no label; map a label column first`);
    present.add(r.label);
    return { text: r.input, label: r.label };
  });
  const classes = options.classes ?? [...present].sort();
  const labelWords: Record<string, string> = {};
  const flippedWords: Record<string, string> = {};
  classes.forEach((c, k) => {
    labelWords[c] = c;
    flippedWords[c] = classes[(k + 1) % classes.length];
  });
  const instruction = options.instruction?.trim() ? options.instruction.trim() : undefined;
  const pool: LabeledPool = { id, name, classes, labelWords, flippedWords, rows: poolRows };
  if (instruction) pool.instruction = instruction;
  checkPool(pool);
  return pool;
}

export function checkPool(pool: LabeledPool): void {
  if (pool.classes.length < 2) throw new DataFormatError(`${pool.name}: needs at least two classes, has ${pool.classes.length}`);
  const known = new Set(pool.classes);
  for (const c of pool.classes) {
    if (!pool.labelWords[c] || !pool.flippedWords[c]) throw new DataFormatError(`${pool.name}: class "${c}" has no label word`);
  }
  pool.rows.forEach((r, k) => {
    if (!known.has(r.label)) throw new DataFormatError(`${pool.name}: row ${k + 1} has label "${r.label}", not one of ${pool.classes.join(', ')}`);
  });
}

/** The text at `url`, or an error naming it. */
export async function fetchText(fetchFn: typeof fetch, url: string): Promise<string> {
  let response: Response;
  try {
    response = await fetchFn(url);
  } catch (err) {
    throw new Error(`Could not load ${url}: ${(err as Error).message}`);
  }
  if (!response.ok) throw new Error(`Could not load ${url}: HTTP ${response.status}`);
  return response.text();
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
