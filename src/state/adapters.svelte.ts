import { PAPER_ADAPTERS } from '../shared/paper-adapters';
import { HUB_MODEL_ID } from '../shared/presets';
import type { AdapterDownloadProgress, AdapterInfo, AdapterListing, AdaptersOverview, AdapterSourcePreview } from '../worker/adapters-api';
import { Comlink, engine } from '../worker/client';
import { router } from './router.svelte';
import { saveBlob } from './download';
import { isCancel, messageOf } from './errors';

/**
 * The Adapters page's state: the stored adapters and which are on the GPU, importing from files, from
 * the Hub or a URL (with a preview before downloading), per-adapter actions, and share links: opening
 * the app with `?adapter=<url>` shows what the link holds and asks before downloading it.
 */

export const HUB_BASE_URL = 'https://huggingface.co';
export { PAPER_ADAPTERS };

export interface DownloadView {
  label: string;
  progress: AdapterDownloadProgress | null;
  notice: string | null;
  cancelling: boolean;
}

export interface ShareLinkView {
  /** As the link carried it. */
  source: string;
  /** 'unseen': only the link is shown; nothing has been fetched from it until the person asks to look. */
  status: 'unseen' | 'inspecting' | 'ready' | 'downloading' | 'done' | 'failed';
  preview: AdapterSourcePreview | null;
  error: string | null;
  adapter: AdapterInfo | null;
  /** Put on the GPU when it arrived (a model was loaded). */
  loaded?: boolean;
  /** The model on the GPU when the preview was read (its fit is against that one); a new model reads it again. */
  modelId?: string | null;
  /** Reading the preview again against a model loaded since. */
  rechecking?: boolean;
}

/** The share box under one adapter: its share link (null when it has no public address), and whether it reached the clipboard. */
export interface SharedView {
  id: string;
  link: string | null;
  copied: boolean;
}

/**
 * Where an adapter lives, in words: the Hugging Face Hub only when the address is huggingface.co's (a mirror
 * or any other server with the Hub's URL layout is named by its own address).
 */
export function whereFrom(url: string, repo: string | null): { hub: boolean; text: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { hub: false, text: url };
  }
  if (u.origin === new URL(HUB_BASE_URL).origin) return { hub: true, text: repo ? `the Hugging Face Hub, repository ${repo}` : `the Hugging Face Hub (${u.host})` };
  return { hub: false, text: `${u.origin}${repo ? `, repository ${repo}` : ''}, not the Hugging Face Hub` };
}

/** Puts text on the clipboard; false where the browser refuses (no permission, the page not focused). */
async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

/** A share link for an adapter at `url`: this app's address with ?adapter=. */
export function shareLinkFor(url: string, base: string = `${location.origin}${location.pathname}`): string {
  return `${base}?adapter=${encodeURIComponent(url)}#adapters`;
}

export class AdaptersState {
  overview = $state<AdaptersOverview | null>(null);
  error = $state<string | null>(null);
  notice = $state<string | null>(null);

  importing = $state(false);
  importError = $state<string | null>(null);

  source = $state('');
  hubBaseUrl = $state(HUB_BASE_URL);
  preview = $state<AdapterSourcePreview | null>(null);
  previewing = $state(false);
  previewError = $state<string | null>(null);
  download = $state<DownloadView | null>(null);
  downloadError = $state<string | null>(null);

  /** Per adapter: the action running on it, and the last failure. */
  pending = $state<Record<string, string>>({});
  rowError = $state<Record<string, string>>({});

  share = $state<ShareLinkView | null>(null);
  sharing = $state<SharedView | null>(null);
  /** The base model's Hub id each adapter's exports name, as edited on the page (else the worker's suggestion). */
  exportBase = $state<Record<string, string>>({});

  constructor() {
    // A share link is read once, when the app opens; the page then shows where it points, and nothing
    // is fetched from it until the person has seen that and asks to look.
    const link = typeof location === 'undefined' ? null : new URLSearchParams(location.search).get('adapter');
    if (link) {
      this.share = { source: link, status: 'unseen', preview: null, error: null, adapter: null };
      queueMicrotask(() => {
        router.go('adapters');
        void this.refresh();
      });
    }
  }

  readonly busy = $derived(this.importing || this.download !== null);

  async refresh(): Promise<void> {
    try {
      this.overview = await engine().listAdapters();
      this.error = null;
    } catch (err) {
      this.error = messageOf(err);
      return;
    }
    // A model loaded (or unloaded) since a shared adapter was read: read it again, so its card says whether it fits.
    const share = this.share;
    const model = this.overview.model?.id ?? null;
    if (share?.status === 'ready' && share.modelId !== undefined && share.modelId !== model && !share.rechecking) void this.recheckShare(model);
  }

  /** The Hub id exports of this adapter name as its base model ('' when none is known and none was given). */
  exportBaseOf(x: Pick<AdapterListing, 'id' | 'exportBaseModel' | 'baseModel'>): string {
    return this.exportBase[x.id] ?? x.exportBaseModel ?? x.baseModel ?? '';
  }

  setExportBase(id: string, value: string): void {
    this.exportBase = { ...this.exportBase, [id]: value.trim() };
  }

  /**
   * Share…: an adapter with a public address (a Hub repository, an https URL it came from) gets its share link,
   * copied to the clipboard at once; one without gets the box that says how to give it one. Again: closes it.
   */
  async shareAdapter(x: Pick<AdapterListing, 'id' | 'sourceUrl'>): Promise<void> {
    if (this.sharing?.id === x.id) {
      this.sharing = null;
      return;
    }
    if (!x.sourceUrl) {
      this.sharing = { id: x.id, link: null, copied: false };
      return;
    }
    const link = shareLinkFor(x.sourceUrl);
    this.sharing = { id: x.id, link, copied: false };
    const copied = await copyText(link);
    if (this.sharing?.id === x.id) this.sharing = { id: x.id, link, copied };
  }

  async importFiles(files: File[]): Promise<void> {
    if (!files.length) return;
    this.importing = true;
    this.importError = null;
    this.notice = null;
    try {
      const info = await engine().importAdapterFiles(files);
      this.notice = `Imported "${info.name}".`;
      await this.refresh();
    } catch (err) {
      this.importError = messageOf(err);
    } finally {
      this.importing = false;
    }
  }

  async inspect(source = this.source): Promise<void> {
    this.previewing = true;
    this.preview = null;
    this.previewError = null;
    try {
      this.preview = await engine().inspectAdapterSource(source, this.hubBaseUrl);
    } catch (err) {
      this.previewError = messageOf(err);
    } finally {
      this.previewing = false;
    }
  }

  /** Downloads into the store; with a model on the GPU, also loads it and makes it active. */
  async fetchAdapter(source: string, label: string): Promise<AdapterInfo | null> {
    if (this.download) return null;
    this.download = { label, progress: null, notice: null, cancelling: false };
    this.downloadError = null;
    this.notice = null;
    try {
      const load = this.overview?.model !== null && this.overview?.model !== undefined;
      const info = await engine().downloadAdapter(
        source,
        Comlink.proxy((p: AdapterDownloadProgress) => {
          if (this.download) this.download = { ...this.download, progress: p, notice: p.notice ?? this.download.notice };
        }),
        { hubBaseUrl: this.hubBaseUrl, load },
      );
      this.notice = `"${info.name}" is stored${load ? ', loaded beside the model and active' : ''}.`;
      this.preview = null;
      await this.refresh();
      return info;
    } catch (err) {
      this.downloadError = isCancel(err) ? 'Stopped: nothing of it was kept.' : messageOf(err);
      // A download cut short keeps what arrived: the list of unfinished downloads shows it.
      await this.refresh();
      return null;
    } finally {
      this.download = null;
    }
  }

  async cancelDownload(): Promise<void> {
    if (this.download) this.download = { ...this.download, cancelling: true };
    await engine().cancelAdapterDownload();
  }

  /** Forgets an unfinished download (its URL as listed), or every one (null). */
  async clearPartial(url: string | null): Promise<void> {
    try {
      await engine().clearPartialDownload(url);
    } catch (err) {
      this.error = messageOf(err);
    }
    await this.refresh();
  }

  private async act(id: string, label: string, task: () => Promise<unknown>): Promise<boolean> {
    this.pending = { ...this.pending, [id]: label };
    const { [id]: _gone, ...rest } = this.rowError;
    this.rowError = rest;
    try {
      await task();
      return true;
    } catch (err) {
      this.rowError = { ...this.rowError, [id]: messageOf(err) };
      return false;
    } finally {
      const { [id]: _done, ...others } = this.pending;
      this.pending = others;
      await this.refresh();
    }
  }

  load(id: string): Promise<boolean> {
    return this.act(id, 'Loading onto the GPU…', () => engine().loadAdapter(id));
  }

  unload(id: string): Promise<boolean> {
    return this.act(id, 'Unloading…', () => engine().unloadAdapter(id));
  }

  setActive(id: string | null): Promise<boolean> {
    return this.act(id ?? 'base', 'Switching…', () => engine().setActiveAdapter(id));
  }

  merge(id: string): Promise<boolean> {
    return this.act(id, 'Merging into the weights…', async () => {
      const r = await engine().mergeAdapterIntoModel(id);
      this.notice = `Merged ${r.modules} modules of "${id}" into the loaded ${r.weightMode} weights. Load the model again on the Model page to undo.`;
    });
  }

  rename(id: string, name: string): Promise<boolean> {
    return this.act(id, 'Renaming…', () => engine().renameAdapter(id, name));
  }

  delete(id: string): Promise<boolean> {
    return this.act(id, 'Deleting…', () => engine().deleteAdapter(id));
  }

  /** PEFT files or a .zip; adapter_config.json names the base model's Hub id given on the page, where it is one. */
  exportAs(id: string, format: 'files' | 'zip'): Promise<boolean> {
    const x = this.overview?.adapters.find((y) => y.id === id);
    const base = x ? this.exportBaseOf(x) : '';
    return this.act(id, 'Preparing the download…', async () => {
      const files = await engine().exportAdapter(id, format, HUB_MODEL_ID.test(base) ? { baseModel: base } : {});
      for (const f of files) saveBlob(f.blob, f.fileName);
    });
  }

  /** The adapter as a GGUF LoRA adapter for llama.cpp and Ollama, downloaded. */
  exportGguf(id: string, type: 'f32' | 'f16'): Promise<boolean> {
    return this.act(id, `Writing the ${type.toUpperCase()} GGUF file…`, async () => {
      const f = await engine().exportAdapterGguf(id, type);
      saveBlob(f.blob, f.fileName);
    });
  }

  // ---- share links

  async inspectShare(): Promise<void> {
    const share = this.share;
    if (!share) return;
    this.share = { ...share, status: 'inspecting', error: null };
    await this.refresh();
    const modelId = this.overview?.model?.id ?? null;
    try {
      const preview = await engine().inspectAdapterSource(share.source, this.hubBaseUrl);
      this.share = { ...share, status: 'ready', preview, error: null, modelId };
    } catch (err) {
      this.share = { ...share, status: 'failed', preview: null, error: messageOf(err) };
    }
  }

  /** The shared adapter read again against the model now loaded; the card keeps the last reading meanwhile. */
  private async recheckShare(modelId: string | null): Promise<void> {
    const share = this.share;
    if (!share) return;
    this.share = { ...share, rechecking: true };
    try {
      const preview = await engine().inspectAdapterSource(share.source, this.hubBaseUrl);
      if (this.share?.source === share.source && this.share.status === 'ready') this.share = { ...this.share, preview, modelId, rechecking: false };
    } catch (err) {
      if (this.share?.source === share.source && this.share.status === 'ready') this.share = { ...this.share, error: messageOf(err), modelId, rechecking: false };
    }
  }

  async confirmShare(): Promise<void> {
    const share = this.share;
    if (!share?.preview) return;
    this.share = { ...share, status: 'downloading' };
    const adapter = await this.fetchAdapter(share.preview.url, share.preview.label);
    // The card says how it went; the import panel need not say it again.
    this.notice = null;
    this.share = adapter
      ? { ...share, status: 'done', adapter, loaded: this.overview?.adapters.find((x) => x.id === adapter.id)?.loaded ?? false }
      : { ...share, status: 'failed', error: this.downloadError };
    if (adapter) this.forgetShareParam();
  }

  dismissShare(): void {
    this.share = null;
    this.forgetShareParam();
  }

  /** A reload should not ask again. */
  private forgetShareParam(): void {
    const url = new URL(location.href);
    if (!url.searchParams.has('adapter')) return;
    url.searchParams.delete('adapter');
    history.replaceState(history.state, '', url);
  }
}

export const adaptersState = new AdaptersState();
