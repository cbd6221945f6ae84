import type { Platform } from '../platform/types';
import { checkDatasetName, type PreparedKind, type SavedDatasetInfo, type SymbolTuningFit, type SymbolTuningSettings, type TrainingExample } from '../store/datasets';
import type { LengthMeter, LengthReport } from './lengths';
import { MAX_PER_CLASS, MAX_SYMBOL_PROMPTS, MAX_TRAIN_TOKENS } from '../../shared/data-limits';
import { toInstructionExamples } from './mapping';
import { type LabeledPool, loadSymbolTuningPool, parseTaskCatalog, type TaskCatalog, userPool } from './pools';
import type { SavedDatasets } from './saved';
import { checkInteger, cut, DataInputError, newId, type DataSources } from './sources';
import { generateSymbolTuningData } from './symbol-tuning';
import { SYMBOL_KINDS, type SymbolKind } from './symbols';
import { type InstructionExample, parseTemplate, renderTemplate, splitPromptCompletion } from '../../shared/template';

/**
 * Training data made on the Data page: instruction-tuning rows from the open source with a template
 * applied, or symbol-tuning prompts from the source's labelled rows or the bundled pools (fitted within
 * the maximum length in tokens). One prepared set at a time; saving it hands it to the saved datasets.
 */

export interface BundledPoolInfo {
  id: string;
  name: string;
  /** Class key -> label word. */
  labels: Record<string, string>;
  /** 'tuning' pools are meant for symbol tuning; 'evaluation' pools are the in-context evaluation's. */
  role: 'tuning' | 'evaluation';
  instruction: string | null;
}

export interface InstructionRequest {
  sourceId: string;
  template: string;
  maxTokens: number;
}

export interface SymbolTuningRequest {
  pools: { kind: 'bundled'; ids: string[]; dataUrl: string } | { kind: 'source'; sourceId: string; instruction?: string };
  seed: number;
  count: number;
  perClass: number;
  kinds: SymbolKind[];
  instruction: 'none' | 'include' | 'mixed';
  shapes: 'paper' | 'varied';
  template: string;
  maxTokens: number;
}

export interface PreparedExample extends TrainingExample {
  /** Symbol tuning: the pool it came from, and the label word of each class -> the symbol standing for it. */
  pool?: string;
  symbols?: Record<string, string>;
  /** The text was cut to PREPARED_PREVIEW_CHARS for display (the stored row is whole). */
  cut: boolean;
}

export interface PreparedSummary {
  id: string;
  kind: PreparedKind;
  rowCount: number;
  template: string;
  maxTokens: number;
  description: string;
  suggestedName: string;
  /** The first rows, exactly as the model will see them (prompt + completion). */
  examples: PreparedExample[];
  lengths: LengthReport;
  /** Rows longer than maxTokens (cut at the end when training); null without a tokenizer. */
  truncatedRows: number | null;
  /** Symbol tuning: how the prompts were fitted within maxTokens. */
  symbolFit?: SymbolTuningFit;
}

export const PREPARED_PREVIEW_ROWS = 3;
export const PREPARED_PREVIEW_CHARS = 20_000;
/** Dropped symbol-tuning prompts listed one by one (the rest are counted). */
export const MAX_REPORTED_DROPPED = 20;

interface Prepared {
  summary: PreparedSummary;
  rows: TrainingExample[];
  symbolTuning?: SymbolTuningSettings;
}

export class DataPreparation {
  private prepared: Prepared | null = null;
  private bundled: { dataUrl: string; catalog: Promise<TaskCatalog>; pools: Map<string, Promise<LabeledPool>> } | null = null;

  constructor(
    private readonly platform: Pick<Platform, 'fetch'>,
    private readonly sources: DataSources,
    private readonly lengths: LengthMeter,
    private readonly saved: SavedDatasets,
  ) {}

  async bundledPools(dataUrl: string): Promise<BundledPoolInfo[]> {
    const catalog = await this.bundledData(dataUrl).catalog;
    const tuning = Object.values(catalog.symbolTuningPools).map((p) => ({ id: p.id, name: p.name, labels: p.labels, role: 'tuning' as const, instruction: null }));
    const evaluation = Object.values(catalog.classification).map((t) => ({ id: t.id, name: t.name, labels: t.labels, role: 'evaluation' as const, instruction: t.instruction }));
    return [...tuning, ...evaluation];
  }

  private bundledData(dataUrl: string) {
    const url = new URL(dataUrl.endsWith('/') ? dataUrl : `${dataUrl}/`).href;
    if (this.bundled?.dataUrl !== url) {
      const fetchFn = this.platform.fetch;
      const catalog = (async () => {
        const response = await fetchFn(new URL('tasks.json', url).href).catch((err: Error) => {
          throw new Error(`Could not load the bundled task list from ${url}: ${err.message}`);
        });
        if (!response.ok) throw new Error(`Could not load the bundled task list from ${url}tasks.json: HTTP ${response.status}.`);
        return parseTaskCatalog(await response.text());
      })();
      this.bundled = { dataUrl: url, catalog, pools: new Map() };
      catalog.catch(() => {
        if (this.bundled?.catalog === catalog) this.bundled = null; // let a later call retry
      });
    }
    return this.bundled!;
  }

  private bundledPool(dataUrl: string, id: string): Promise<LabeledPool> {
    const data = this.bundledData(dataUrl);
    let pool = data.pools.get(id);
    if (!pool) {
      pool = data.catalog.then((catalog) => loadSymbolTuningPool(this.platform.fetch, data.dataUrl, catalog, id));
      data.pools.set(id, pool);
      pool.catch(() => data.pools.delete(id));
    }
    return pool;
  }

  async prepareInstructionData(request: InstructionRequest, onProgress?: (done: number, total: number) => void): Promise<PreparedSummary> {
    const source = this.sources.sourceById(request.sourceId);
    const template = parseTemplate(request.template);
    const maxTokens = checkInteger('The maximum length', request.maxTokens, 2, MAX_TRAIN_TOKENS);
    const good = this.sources.usableRows(source);
    if (!source.mapped!.mapping.output) {
      throw new DataInputError('Instruction tuning needs a response: map the output column (or choose symbol tuning for labelled data).');
    }
    const rows = toInstructionExamples(good).map((e) => splitPromptCompletion(template, e));
    const mapping = source.mapped!.mapping;
    const from = this.sources.describeSource(source);
    return this.finishPrepared(
      {
        kind: 'instruction',
        template: request.template,
        maxTokens,
        description: `${from}: ${mapping.input} → ${mapping.output}, ${rows.length.toLocaleString('en-US')} rows`,
        suggestedName: `${this.sources.sourceName(source)} (instruction)`,
      },
      rows,
      undefined,
      onProgress,
    );
  }

  async prepareSymbolTuning(request: SymbolTuningRequest, onProgress?: (done: number, total: number) => void): Promise<PreparedSummary> {
    parseTemplate(request.template);
    const maxTokens = checkInteger('The maximum length', request.maxTokens, 2, MAX_TRAIN_TOKENS);
    const count = checkInteger('The number of prompts', request.count, 1, MAX_SYMBOL_PROMPTS);
    const perClass = checkInteger('Exemplars per class', request.perClass, 1, MAX_PER_CLASS);
    const seed = checkInteger('The seed', request.seed, 0, Number.MAX_SAFE_INTEGER);
    const kinds = request.kinds.filter((k) => SYMBOL_KINDS.includes(k));
    if (kinds.length === 0) throw new DataInputError('Choose at least one kind of symbol.');
    let pools: LabeledPool[];
    let from: string;
    let shortName: string;
    if (request.pools.kind === 'bundled') {
      const { ids, dataUrl } = request.pools;
      if (ids.length === 0) throw new DataInputError('Choose at least one bundled pool.');
      pools = await Promise.all(ids.map((id) => this.bundledPool(dataUrl, id)));
      from = `bundled pools ${ids.join(', ')}`;
      shortName = ids.join('+');
    } else {
      const source = this.sources.sourceById(request.pools.sourceId);
      const good = this.sources.usableRows(source);
      if (!source.mapped!.mapping.label) throw new DataInputError('Symbol tuning needs labelled rows: map the label column.');
      const name = this.sources.sourceName(source);
      pools = [userPool(`upload:${name}`, name, good, { instruction: request.pools.instruction })];
      from = `${this.sources.describeSource(source)}: ${source.mapped!.mapping.input} → ${source.mapped!.mapping.label}`;
      shortName = name;
    }
    // What the prompts are drawn with, as the generator takes it and as the dataset records it.
    const drawn = { seed, count, perClass, kinds, instruction: request.instruction, shapes: request.shapes };
    const settings: SymbolTuningSettings = { pools: pools.map((p) => p.id), ...drawn };
    const template = parseTemplate(request.template);
    // Fit every prompt within the maximum length in tokens by taking fewer exemplars, never by cutting. Without
    // a tokenizer nothing can be measured: the prompts are kept whole, the page says so, and the Train page
    // leaves out any prompt whose answer its maximum length would cut.
    const tok = await this.lengths.tokenizer();
    let measured = 0;
    const fitted = generateSymbolTuningData(pools, {
      ...drawn,
      ...(tok && {
        fit: {
          maxLength: maxTokens,
          length: (e: InstructionExample) => {
            if (onProgress && ++measured % 200 === 0) onProgress(measured, count);
            return tok.tokenizer.encode(renderTemplate(template, e)).length;
          },
        },
      }),
    });
    if (fitted.examples.length === 0) {
      throw new DataInputError(
        `None of the ${count.toLocaleString('en-US')} prompts fits in ${maxTokens} tokens, even with one exemplar per class: ` +
          'raise the maximum length or choose pools with shorter texts.',
      );
    }
    const generated = fitted.examples;
    const rows = generated.map((e) => splitPromptCompletion(template, e));
    const fit: SymbolTuningFit = {
      fitted: tok !== null,
      maxLength: maxTokens,
      perClass,
      shortened: fitted.shortened,
      dropped: fitted.dropped.length,
      droppedExamples: fitted.dropped.slice(0, MAX_REPORTED_DROPPED).map((d) => ({ pool: d.source, length: d.length })),
      perClassCounts: fitted.perClassCounts,
    };
    return this.finishPrepared(
      {
        kind: 'symbol-tuning',
        template: request.template,
        maxTokens,
        description: `symbol tuning from ${from}; ${generated.length.toLocaleString('en-US')} prompts, up to ${perClass} exemplars per class, seed ${seed}`,
        suggestedName: `${shortName} symbol tuning (seed ${seed})`,
      },
      rows,
      { ...settings, fit },
      onProgress,
      generated.slice(0, PREPARED_PREVIEW_ROWS).map((e) => {
        const words = pools.find((p) => p.id === e.source)!.labelWords;
        return { pool: e.source, symbols: Object.fromEntries(Object.entries(e.symbols).map(([c, symbol]) => [words[c] ?? c, symbol])) };
      }),
    );
  }

  private async finishPrepared(
    head: Pick<PreparedSummary, 'kind' | 'template' | 'maxTokens' | 'description' | 'suggestedName'>,
    rows: TrainingExample[],
    symbolTuning: SymbolTuningSettings | undefined,
    onProgress?: (done: number, total: number) => void,
    extras: Array<Pick<PreparedExample, 'pool' | 'symbols'>> = [],
  ): Promise<PreparedSummary> {
    // Every row is counted: the number of truncated rows is a promise about the training set.
    const lengths = await this.lengths.measure(
      rows.length,
      (i) => rows[i].prompt + rows[i].completion,
      head.maxTokens,
      Number.POSITIVE_INFINITY,
      'the whole templated text of each row',
      onProgress,
    );
    const summary: PreparedSummary = {
      ...head,
      id: newId(),
      rowCount: rows.length,
      examples: rows.slice(0, PREPARED_PREVIEW_ROWS).map((r, k) => {
        const whole = r.prompt.length + r.completion.length <= PREPARED_PREVIEW_CHARS;
        // A very long row is shown cut: its start and the start of its completion.
        const prompt = whole ? r.prompt : cut(r.prompt, PREPARED_PREVIEW_CHARS);
        const completion = whole ? r.completion : cut(r.completion, PREPARED_PREVIEW_CHARS / 10);
        return { prompt, completion, cut: !whole, ...extras[k] };
      }),
      lengths,
      truncatedRows: lengths.unit === 'tokens' ? lengths.stats.overLimit : null,
      ...(symbolTuning?.fit ? { symbolFit: symbolTuning.fit } : {}),
    };
    this.prepared = { summary, rows, symbolTuning };
    return summary;
  }

  async saveDataset(preparedId: string, name: string): Promise<SavedDatasetInfo> {
    const prepared = this.prepared;
    if (prepared?.summary.id !== preparedId) throw new DataInputError('That prepared dataset was replaced by a newer one: prepare it again, then save.');
    const s = prepared.summary;
    const now = Date.now();
    const info: SavedDatasetInfo = {
      id: newId(),
      name: checkDatasetName(name),
      kind: s.kind,
      description: s.description,
      rowCount: prepared.rows.length,
      template: s.template,
      maxTokens: s.maxTokens,
      truncatedRows: s.truncatedRows,
      chars: prepared.rows.reduce((a, r) => a + r.prompt.length + r.completion.length, 0),
      createdAt: now,
      updatedAt: now,
      ...(prepared.symbolTuning ? { symbolTuning: prepared.symbolTuning } : {}),
    };
    return this.saved.save(info, prepared.rows);
  }
}
