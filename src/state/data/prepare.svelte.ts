import type { ColumnMapping } from '../../engine/data/mapping';
import { SYMBOL_TUNING_PER_CLASS } from '../../shared/symbol-kinds';
import { SYMBOL_KINDS, type SymbolKind } from '../../shared/symbol-kinds';
import { PAPER_TEMPLATE, parseTemplate } from '../../shared/template';
import type { BundledPoolInfo, PreparedSummary, SavedDatasetInfo } from '../../worker/data-api';
import { DEFAULT_MAX_TOKENS, MAX_PER_CLASS, MAX_SYMBOL_PROMPTS, MAX_TRAIN_TOKENS } from '../../shared/data-limits';
import { Comlink, engine } from '../../worker/client';
import { messageOf } from '../errors';
import type { SourceState } from './source.svelte';

/** The app's data folder (public/data), next to index.html whatever the base path. */
export function bundledDataUrl(): string {
  return new URL(`${import.meta.env.BASE_URL}data/`, document.baseURI).href;
}

function wholeNumberError(name: string, v: number | null, min: number, max: number): string | null {
  if (v === null || !Number.isInteger(v) || v < min || v > max) {
    return `${name} must be a whole number from ${min.toLocaleString('en-US')} to ${max.toLocaleString('en-US')}.`;
  }
  return null;
}

/** What the data becomes: instruction-tuning rows or symbol-tuning prompts, then a saved dataset. */
export class PrepareState {
  mode = $state<'instruction' | 'symbol'>('instruction');
  template = $state(PAPER_TEMPLATE);
  maxTokens = $state<number | null>(DEFAULT_MAX_TOKENS);

  /** Symbol tuning: from the open source's labelled rows, or from bundled pools. */
  poolSource = $state<'bundled' | 'source'>('bundled');
  poolIds = $state<string[]>(['sst2', 'rte']);
  /** The task instruction for the user's own labelled rows (optional). */
  sourceInstruction = $state('');
  count = $state<number | null>(200);
  /** The most exemplars per class a prompt gets (fewer where they would not fit the maximum length). */
  perClass = $state<number | null>(SYMBOL_TUNING_PER_CLASS);
  kinds = $state<SymbolKind[]>([...SYMBOL_KINDS]);
  instruction = $state<'none' | 'include' | 'mixed'>('none');
  shapes = $state<'paper' | 'varied'>('varied');
  seed = $state<number | null>(0);

  bundledPools = $state<BundledPoolInfo[] | null>(null);
  poolsError = $state<string | null>(null);

  status = $state<'idle' | 'preparing' | 'done' | 'error'>('idle');
  error = $state<string | null>(null);
  progress = $state<{ done: number; total: number } | null>(null);
  result = $state<PreparedSummary | null>(null);

  saveName = $state('');
  saveStatus = $state<'idle' | 'saving' | 'saved' | 'error'>('idle');
  saveError = $state<string | null>(null);
  lastSaved = $state<SavedDatasetInfo | null>(null);

  /**
   * The data the mode and the pool source last followed: a source and which roles its mapping fills. Another
   * file, or a mapping that turns instruction data into labelled data, chooses again; anything else leaves the
   * user's own choice alone.
   */
  private followed: string | null = null;

  constructor(private readonly source: SourceState) {}

  /**
   * Makes the settings fit the data just loaded: instruction data (an output column) becomes instruction rows;
   * labelled data (a label column, no output) becomes symbol-tuning prompts, from that data rather than the
   * bundled pools (which data without labels cannot replace).
   */
  followSource(sourceId: string, mapping: ColumnMapping): void {
    const key = `${sourceId}:${mapping.output ? 'output' : ''}:${mapping.label ? 'label' : ''}`;
    if (key === this.followed) return;
    this.followed = key;
    this.poolSource = mapping.label ? 'source' : 'bundled';
    if (mapping.output) this.mode = 'instruction';
    else if (mapping.label) this.mode = 'symbol';
  }

  /** Null when the template is valid, else what is wrong with it. */
  readonly templateError = $derived.by(() => {
    try {
      parseTemplate(this.template);
      return null;
    } catch (err) {
      return messageOf(err);
    }
  });

  readonly maxTokensError = $derived(wholeNumberError('The maximum length', this.maxTokens, 2, MAX_TRAIN_TOKENS));

  /** Every reason the current settings cannot be prepared, in the order the page shows the controls. */
  readonly blockers = $derived.by(() => {
    const out: string[] = [];
    if (this.templateError) out.push(this.templateError);
    if (this.maxTokensError) out.push(this.maxTokensError);
    const report = this.source.report;
    if (this.mode === 'instruction' || this.poolSource === 'source') {
      if (!this.source.info) out.push('Upload a file or load a Hub dataset first.');
      else if (!report) out.push('Map the columns first.');
      else if (report.badRowCount > 0 && !report.badRowsDropped) {
        const what = report.badRowCount === 1 ? 'the bad row' : `the ${report.badRowCount} bad rows`;
        out.push(`Drop ${what} in the validation report first (or fix the file and upload it again).`);
      } else if (this.mode === 'instruction' && !report.mapping.output) out.push('Instruction tuning needs an output (response) column: map one, or choose symbol tuning.');
      else if (this.mode === 'symbol' && !report.mapping.label) out.push('Symbol tuning from your data needs a label column: map one, or use the bundled pools.');
    }
    if (this.mode === 'symbol') {
      if (this.poolSource === 'bundled' && this.poolIds.length === 0) out.push('Choose at least one bundled pool.');
      if (this.kinds.length === 0) out.push('Choose at least one kind of symbol.');
      for (const e of [
        wholeNumberError('The number of prompts', this.count, 1, MAX_SYMBOL_PROMPTS),
        wholeNumberError('Exemplars per class', this.perClass, 1, MAX_PER_CLASS),
        wholeNumberError('The seed', this.seed, 0, Number.MAX_SAFE_INTEGER),
      ]) {
        if (e) out.push(e);
      }
    }
    return out;
  });

  async loadBundledPools(): Promise<void> {
    if (this.bundledPools) return;
    try {
      this.bundledPools = await engine().bundledPools(bundledDataUrl());
      this.poolsError = null;
    } catch (err) {
      this.poolsError = `The bundled pools could not be listed: ${messageOf(err)}`;
    }
  }

  togglePool(id: string, on: boolean): void {
    this.poolIds = on ? [...new Set([...this.poolIds, id])] : this.poolIds.filter((p) => p !== id);
  }

  toggleKind(kind: SymbolKind, on: boolean): void {
    // Kept in the generator's order so the same choice always means the same request.
    this.kinds = SYMBOL_KINDS.filter((k) => (k === kind ? on : this.kinds.includes(k)));
  }

  async prepare(): Promise<void> {
    if (this.blockers.length > 0 || this.status === 'preparing') return;
    this.status = 'preparing';
    this.error = null;
    this.progress = null;
    this.saveStatus = 'idle';
    this.saveError = null;
    const onProgress = Comlink.proxy((done: number, total: number) => {
      this.progress = { done, total };
    });
    try {
      const result =
        this.mode === 'instruction'
          ? await engine().prepareInstructionData({ sourceId: this.source.info!.id, template: this.template, maxTokens: this.maxTokens! }, onProgress)
          : await engine().prepareSymbolTuning(
              {
                pools:
                  this.poolSource === 'bundled'
                    ? { kind: 'bundled', ids: [...this.poolIds], dataUrl: bundledDataUrl() }
                    : { kind: 'source', sourceId: this.source.info!.id, instruction: this.sourceInstruction },
                seed: this.seed!,
                count: this.count!,
                perClass: this.perClass!,
                kinds: [...this.kinds],
                instruction: this.instruction,
                shapes: this.shapes,
                template: this.template,
                maxTokens: this.maxTokens!,
              },
              onProgress,
            );
      this.result = result;
      this.saveName = result.suggestedName;
      this.status = 'done';
    } catch (err) {
      this.status = 'error';
      this.error = messageOf(err);
    } finally {
      this.progress = null;
    }
  }

  async save(onSaved: (info: SavedDatasetInfo) => void): Promise<void> {
    if (!this.result || this.saveStatus === 'saving') return;
    this.saveStatus = 'saving';
    this.saveError = null;
    try {
      const info = await engine().saveDataset(this.result.id, this.saveName);
      this.lastSaved = info;
      this.saveStatus = 'saved';
      onSaved(info);
    } catch (err) {
      this.saveStatus = 'error';
      this.saveError = messageOf(err);
    }
  }
}
