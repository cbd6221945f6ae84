import type { ColumnMapping } from '../../engine/data/mapping';
import type { MappingReport, SourceInfo } from '../../worker/data-api';
import { engine } from '../../worker/client';
import { messageOf } from '../errors';

/** A mapping as the selects hold it: '' means "no column". */
export interface MappingChoice {
  input: string;
  output: string;
  label: string;
}

function toMapping(choice: MappingChoice): ColumnMapping {
  const m: ColumnMapping = { input: choice.input };
  if (choice.output) m.output = choice.output;
  if (choice.label) m.label = choice.label;
  return m;
}

/**
 * The open source (an uploaded file or Hub rows), its column mapping and the validation report. The rows
 * stay in the worker; this holds what the page shows.
 */
export class SourceState {
  /** 'reading': a file is being parsed in the worker. */
  status = $state<'empty' | 'reading' | 'ready' | 'error'>('empty');
  info = $state<SourceInfo | null>(null);
  error = $state<string | null>(null);
  /** File name being read, for the busy message. */
  reading = $state<string | null>(null);

  mapping = $state<MappingChoice>({ input: '', output: '', label: '' });
  mappingStatus = $state<'idle' | 'mapping' | 'done' | 'error'>('idle');
  mappingError = $state<string | null>(null);
  report = $state<MappingReport | null>(null);
  dropBusy = $state(false);
  /** Object URL of the bad rows, once asked for. */
  badRowsLink = $state<{ url: string; fileName: string } | null>(null);

  /** Bumped on every mapping request: an older answer arriving late is ignored. */
  private mapSeq = 0;

  constructor(
    private readonly maxTokens: () => number,
    /** Told of every mapping report (the prepare settings follow what the data holds). */
    private readonly onReport: (info: SourceInfo, report: MappingReport) => void = () => {},
  ) {}

  async openFile(file: File): Promise<void> {
    this.status = 'reading';
    this.reading = file.name;
    this.error = null;
    try {
      // The File goes to the worker as is (structured clone passes a handle, not the bytes).
      this.adopt(await engine().openUpload(file));
    } catch (err) {
      this.status = this.info ? 'ready' : 'error';
      this.error = `Could not read ${file.name}: ${messageOf(err)}`;
    } finally {
      this.reading = null;
    }
  }

  /** Takes a freshly opened source (from a file or the Hub) and maps it with the suggested columns. */
  adopt(info: SourceInfo): void {
    this.info = info;
    this.status = 'ready';
    this.error = null;
    this.report = null;
    this.clearBadRowsLink();
    const s = info.suggestedMapping;
    this.mapping = { input: s.input, output: s.output ?? '', label: s.label ?? '' };
    if (s.input && (s.output || s.label)) void this.applyMapping();
    else {
      this.mappingStatus = 'error';
      this.mappingError = 'Choose which column holds the input, and an output or a label column.';
    }
  }

  async applyMapping(): Promise<void> {
    const info = this.info;
    if (!info) return;
    const seq = ++this.mapSeq;
    this.mappingStatus = 'mapping';
    this.mappingError = null;
    this.clearBadRowsLink();
    try {
      const report = await engine().mapSource(info.id, toMapping(this.mapping), { maxTokens: this.maxTokens() });
      if (seq !== this.mapSeq) return;
      this.report = report;
      this.mappingStatus = 'done';
      this.onReport(info, report);
    } catch (err) {
      if (seq !== this.mapSeq) return;
      this.report = null;
      this.mappingStatus = 'error';
      this.mappingError = messageOf(err);
    }
  }

  async setDropped(dropped: boolean): Promise<void> {
    if (!this.info || !this.report) return;
    this.dropBusy = true;
    try {
      this.report = await engine().setBadRowsDropped(this.info.id, dropped);
    } catch (err) {
      this.mappingError = messageOf(err);
    } finally {
      this.dropBusy = false;
    }
  }

  async prepareBadRowsLink(): Promise<void> {
    if (!this.info) return;
    try {
      const { fileName, blob } = await engine().badRowsFile(this.info.id);
      this.clearBadRowsLink();
      this.badRowsLink = { url: URL.createObjectURL(blob), fileName };
    } catch (err) {
      this.mappingError = messageOf(err);
    }
  }

  private clearBadRowsLink(): void {
    if (this.badRowsLink) URL.revokeObjectURL(this.badRowsLink.url);
    this.badRowsLink = null;
  }
}
