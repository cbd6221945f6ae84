import { MAX_HUB_ROWS } from '../../shared/data-limits';
import type { HubLoadProgress, HubPresetId } from '../../worker/data-api';
import { Comlink, engine } from '../../worker/client';
import { isCancel, messageOf } from '../errors';
import type { SourceState } from './source.svelte';

/** The Hub's dataset viewer API; the advanced settings can point elsewhere (a mirror, a test server). */
export const DEFAULT_API_BASE_URL = 'https://datasets-server.huggingface.co';
const API_URL_KEY = 'phi2.data.hubApiBaseUrl';

export interface HubPresetChoice {
  id: HubPresetId;
  label: string;
  dataset: string;
  config: string;
  split: string;
  note: string;
}

/** What the presets fill in (the worker adds their row filters). */
export const HUB_PRESET_CHOICES: HubPresetChoice[] = [
  {
    id: 'openorca-cot',
    label: 'OpenOrca, chain-of-thought rows',
    dataset: 'Open-Orca/OpenOrca',
    config: 'default',
    split: 'train',
    note: 'The paper\u2019s instruction-tuning data: only rows whose id starts with "cot" are kept, so more rows are read than kept.',
  },
  {
    id: 'icl-symbol-tuning',
    label: 'Symbol-tuning prompts (tasksource)',
    dataset: 'tasksource/icl-symbol-tuning-instruct',
    config: 'default',
    split: 'train',
    note: 'The paper\u2019s symbol-tuning data: few-shot prompts whose labels are arbitrary symbols.',
  },
];

function storedApiUrl(): string {
  try {
    return globalThis.localStorage?.getItem(API_URL_KEY) || DEFAULT_API_BASE_URL;
  } catch {
    return DEFAULT_API_BASE_URL;
  }
}

/** Loading rows of a public Hugging Face dataset into the open source. */
export class HubState {
  preset = $state<HubPresetId | ''>('openorca-cot');
  dataset = $state(HUB_PRESET_CHOICES[0].dataset);
  config = $state(HUB_PRESET_CHOICES[0].config);
  split = $state(HUB_PRESET_CHOICES[0].split);
  maxRows = $state<number | null>(1000);
  apiBaseUrl = $state(storedApiUrl());
  /** Kept in memory only, never stored. */
  token = $state('');

  status = $state<'idle' | 'loading' | 'done' | 'cancelled' | 'error'>('idle');
  progress = $state<HubLoadProgress | null>(null);
  message = $state<string | null>(null);
  /** The last load failed (or is retrying) because the server could not be reached at all. */
  unreachable = $state(false);
  cacheMessage = $state<string | null>(null);
  private jobId: string | null = null;

  constructor(private readonly source: SourceState) {}

  readonly presetChoice = $derived(HUB_PRESET_CHOICES.find((p) => p.id === this.preset) ?? null);

  choosePreset(id: HubPresetId | ''): void {
    this.preset = id;
    const p = HUB_PRESET_CHOICES.find((c) => c.id === id);
    if (p) {
      this.dataset = p.dataset;
      this.config = p.config;
      this.split = p.split;
    }
  }

  /** Editing the dataset, config or split by hand leaves the preset (its filter would no longer fit). */
  edited(): void {
    const p = this.presetChoice;
    if (p && (p.dataset !== this.dataset.trim() || p.config !== this.config.trim() || p.split !== this.split.trim())) this.preset = '';
  }

  saveApiBaseUrl(): void {
    try {
      const v = this.apiBaseUrl.trim();
      if (v === '' || v === DEFAULT_API_BASE_URL) globalThis.localStorage?.removeItem(API_URL_KEY);
      else globalThis.localStorage?.setItem(API_URL_KEY, v);
    } catch {
      // storage refused (private mode): the setting lasts for this visit
    }
  }

  async load(): Promise<void> {
    if (this.status === 'loading') return;
    const maxRows = this.maxRows;
    if (maxRows === null || !Number.isInteger(maxRows) || maxRows < 1 || maxRows > MAX_HUB_ROWS) {
      this.status = 'error';
      this.message = `The row limit must be a whole number from 1 to ${MAX_HUB_ROWS.toLocaleString('en-US')}.`;
      return;
    }
    let apiBaseUrl = this.apiBaseUrl.trim() || DEFAULT_API_BASE_URL;
    try {
      apiBaseUrl = new URL(apiBaseUrl).href.replace(/\/$/, '');
    } catch {
      this.status = 'error';
      this.message = `The API base URL "${this.apiBaseUrl}" is not a URL (for example ${DEFAULT_API_BASE_URL}).`;
      return;
    }
    const jobId = crypto.randomUUID();
    this.jobId = jobId;
    this.status = 'loading';
    this.message = null;
    this.progress = null;
    this.unreachable = false;
    try {
      const info = await engine().loadHubDataset(
        {
          jobId,
          preset: this.preset || null,
          dataset: this.dataset,
          config: this.config,
          split: this.split,
          maxRows,
          apiBaseUrl,
          token: this.token || undefined,
        },
        Comlink.proxy((p: HubLoadProgress) => {
          if (this.jobId !== jobId) return;
          this.progress = p;
          if (p.unreachable) this.unreachable = true;
        }),
      );
      if (this.jobId !== jobId) return;
      this.status = 'done';
      const h = info.hub;
      this.message =
        `${info.readableRows.toLocaleString('en-US')} rows loaded` +
        (h ? ` (${h.pagesFetched} pages from the Hub, ${h.pagesFromCache} from the cache; the split has ${h.totalRows.toLocaleString('en-US')} rows)` : '') +
        '.';
      this.source.adopt(info);
    } catch (err) {
      if (this.jobId !== jobId) return;
      this.status = isCancel(err) ? 'cancelled' : 'error';
      this.message = messageOf(err);
      this.unreachable = (err as { name?: unknown } | null)?.name === 'HubUnreachableError';
    } finally {
      if (this.jobId === jobId) this.jobId = null;
    }
  }

  async cancel(): Promise<void> {
    if (this.jobId) await engine().cancelHubLoad(this.jobId);
  }

  async clearCache(): Promise<void> {
    try {
      await engine().clearHubCache();
      this.cacheMessage = 'The cache of Hub pages is empty; the next load reads from the Hub.';
    } catch (err) {
      this.cacheMessage = `The cache could not be cleared: ${messageOf(err)}`;
    }
  }
}
