import { MAX_ADAPTER_CONFIG_BYTES } from '../adapters/config-json';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, adapterWeightsLimit, decodeAdapter, readAdapterConfigBytes, zipAdapter, type AdapterFiles } from '../adapters/files';
import { adapterZipLimit, downloadAdapter, locateAdapter, locationLabel, locationName, previewAdapter, type AdapterDownloadProgress, type AdapterLocation } from '../adapters/hub';
import { loraModules, loraParameterCount, type LinearShapes, type LoraSettings } from '../../shared/lora';
import { mergeAdapter } from '../model/phi2/merge';
import { AdapterError, NOMINAL_SHAPES, resolveAdapterConfig, type PeftLoraConfig } from '../adapters/peft';
import { configForHub } from '../adapters/publish';
import { AdapterStore, DownloadCache, MAX_ADAPTER_NAME, describeAdapterFiles, type AdapterInfo, type AdapterOrigin, type PartialDownload } from '../adapters/store';
import { unzipAdapter } from '../adapters/zip';
import type { Engine } from '../engine';
import { withModel, type LoadedModel, type Session } from './session';
import { parsePhiConfig } from '../weights/config';
import { HUB_BASE_URL } from '../../shared/hub';
import { hubIdOf } from '../weights/presets';
import { HUB_MODEL_ID } from '../../shared/presets';

/**
 * The adapter library behind the Adapters page: LoRA adapters kept in IndexedDB (from training, from
 * files, from the Hub or any URL), exported as PEFT files or one .zip, loaded onto the GPU beside the
 * model (one of them active), merged into the loaded base weights, renamed and deleted. Every adapter is
 * checked against the model before it is kept or loaded, and a mismatch says what differs.
 *
 * Errors say what happened and what to do. One download runs at a time; cancelDownload stops it and keeps nothing of it. A
 * download cut short otherwise (a reload, a closed tab, a dropped connection) keeps what arrived, so
 * that starting it again resumes; the page lists those and can clear them.
 */

export interface DownloadRequest {
  name?: string;
  hubBaseUrl?: string;
  load?: boolean;
}

export interface ExportedFile {
  fileName: string;
  blob: Blob;
}

export interface AdapterListing extends Omit<AdapterInfo, 'config' | 'checksums'> {
  /** On the GPU beside the model. */
  loaded: boolean;
  /** Whether its shapes fit the loaded model (null: no model loaded), and if not, why. */
  fits: boolean | null;
  fitProblem: string | null;
  /** The URL it came from, for share links (null for trained and uploaded adapters). */
  sourceUrl: string | null;
  /**
   * The Hub id exports name as the base model by default: the adapter's own when it is one, else that of the
   * stored model it names (a model imported from disk is named after its folder), else null.
   */
  exportBaseModel: string | null;
}

export interface AdaptersOverview {
  adapters: AdapterListing[];
  model: { id: string; name: string; weightMode: 'int8' | 'f16' } | null;
  active: string | null;
  /** Adapters merged into the loaded weights, in order. */
  merged: string[];
  /** Downloads cut short (a reload, a dropped connection) with what arrived kept: starting them again resumes. */
  partialDownloads: PartialDownloadInfo[];
}

export type PartialDownloadInfo = Pick<PartialDownload, 'url' | 'received' | 'size' | 'updatedAt'>;

export interface AdapterSourcePreview {
  kind: AdapterLocation['kind'];
  url: string;
  label: string;
  repo: string | null;
  settings: LoraSettings | null;
  baseModel: string | null;
  parameterCount: number | null;
  bytes: number | null;
  /** Against the loaded model: null when none is loaded or the .zip is not read yet. */
  fits: boolean | null;
  fitProblem: string | null;
  /** Already in the store from this URL. */
  storedId: string | null;
}

export interface MergeResult {
  id: string;
  modules: number;
  weightMode: 'int8' | 'f16';
}

/**
 * Why an adapter cannot apply to a model of these shapes (null: it can): its config resolved on the
 * model's module names (layers, r), then its parameter count against what that gives.
 */
function fitOf(config: PeftLoraConfig, parameterCount: number | null, shapes: LinearShapes): string | null {
  let settings: LoraSettings;
  try {
    settings = resolveAdapterConfig(config, shapes, ADAPTER_CONFIG);
  } catch (err) {
    if (err instanceof AdapterError) return err.message;
    throw err;
  }
  if (parameterCount !== null) {
    const want = loraParameterCount(settings, shapes);
    if (want !== parameterCount) {
      return `Its weights hold ${parameterCount.toLocaleString('en-US')} parameters, but r ${settings.r} on this model's layers needs ${want.toLocaleString('en-US')}: it was made for a model of another size.`;
    }
  }
  return null;
}

function storedConfig(info: Pick<AdapterInfo, 'config'>): PeftLoraConfig {
  return readAdapterConfigBytes(new TextEncoder().encode(info.config));
}

function shapesOf(loaded: LoadedModel): LinearShapes {
  return { hidden: loaded.dims.hidden, intermediate: loaded.dims.intermediate, layers: loaded.dims.layers };
}

/** See AdapterListing.exportBaseModel. */
function exportBaseModel(info: Pick<AdapterInfo, 'baseModel' | 'origin'>, models: ReadonlyArray<Parameters<typeof hubIdOf>[0]>): string | null {
  const own = info.baseModel?.replace(/@.*$/, '').trim() ?? '';
  if (HUB_MODEL_ID.test(own)) return own;
  const named = own || (info.origin.kind === 'training' ? (info.origin.training?.model ?? '') : '');
  const model = named ? models.find((m) => m.name === named) : undefined;
  return model ? hubIdOf(model) : null;
}

function sourceUrl(origin: AdapterOrigin): string | null {
  return origin.kind === 'hub' || origin.kind === 'url' ? origin.url : null;
}

function originOf(location: AdapterLocation): AdapterOrigin {
  return location.repo ? { kind: 'hub', repo: location.repo, revision: location.revision ?? 'main', url: location.url } : { kind: 'url', url: location.url };
}

/** Progress at most every PROGRESS_INTERVAL_MS across the worker boundary; notices and a file's end always go. */
const PROGRESS_INTERVAL_MS = 100;
function throttled(report: (p: AdapterDownloadProgress) => void, now: () => number): (p: AdapterDownloadProgress) => void {
  let last = -Infinity;
  return (p) => {
    const t = now();
    if (p.notice || (p.total !== null && p.received === p.total) || t - last >= PROGRESS_INTERVAL_MS) {
      last = t;
      report(p);
    }
  };
}

function fileStem(name: string): string {
  return name.replace(/\.[^.]+$/, '');
}

export class AdapterLibrary {
  private merged = new WeakMap<LoadedModel, string[]>();
  private download: AbortController | null = null;

  constructor(
    private readonly engine: Pick<Engine, 'platform'>,
    private readonly session: Session,
  ) {}

  private async store(): Promise<AdapterStore> {
    return AdapterStore.over(await this.session.store());
  }

  async list(): Promise<AdaptersOverview> {
    const loaded = this.session.loaded;
    const onGpu = new Set(loaded ? this.session.loadedAdapters() : []);
    const models = await (await this.session.store()).listModels().catch(() => []);
    const adapters = (await (await this.store()).list()).map(({ config, checksums: _s, ...info }) => {
      const problem = loaded ? fitOf(storedConfig({ config }), info.parameterCount, shapesOf(loaded)) : null;
      return {
        ...info,
        loaded: onGpu.has(info.id),
        fits: loaded ? problem === null : null,
        fitProblem: problem,
        sourceUrl: sourceUrl(info.origin),
        exportBaseModel: exportBaseModel(info, models),
      };
    });
    let model: AdaptersOverview['model'] = null;
    if (loaded) {
      const manifest = await (await this.session.store()).getModel(loaded.id).catch(() => undefined);
      model = { id: loaded.id, name: manifest?.name ?? loaded.id, weightMode: loaded.weightMode };
    }
    const partialDownloads = (await (await this.downloads()).list()).map(({ url, received, size, updatedAt }) => ({ url, received, size, updatedAt }));
    return { adapters, model, active: loaded ? this.session.activeAdapter : null, merged: loaded ? [...(this.merged.get(loaded) ?? [])] : [], partialDownloads };
  }

  private async downloads(): Promise<DownloadCache> {
    return DownloadCache.over(await this.session.store());
  }

  async clearPartialDownload(url: string | null): Promise<void> {
    const cache = await this.downloads();
    if (url === null) await cache.clearAll();
    else await cache.clear(url);
  }

  /**
   * The shapes that bound an adapter's size before it is read: the largest of Phi-2's, the stored
   * models' and the loaded model's, dimension by dimension. This only keeps bytes within reason; whether
   * the adapter fits the model is checked on its tensors once read, and said precisely.
   */
  private async boundingShapes(): Promise<LinearShapes> {
    const loaded = this.session.loaded;
    const bound = { ...NOMINAL_SHAPES };
    if (loaded) {
      bound.hidden = Math.max(bound.hidden, loaded.dims.hidden);
      bound.intermediate = Math.max(bound.intermediate, loaded.dims.intermediate);
      bound.layers = Math.max(bound.layers, loaded.dims.layers);
    }
    for (const m of await (await this.session.store()).listModels()) {
      try {
        const c = parsePhiConfig(m.config);
        bound.hidden = Math.max(bound.hidden, c.hiddenSize);
        bound.intermediate = Math.max(bound.intermediate, c.intermediateSize);
        bound.layers = Math.max(bound.layers, c.numLayers);
      } catch {
        // a config this version cannot read bounds nothing
      }
    }
    return bound;
  }

  /**
   * Checks files against the loaded model, or when none is loaded against the stored models: an adapter
   * that fits none of them is refused now rather than when someone tries to use it.
   */
  private async check(files: AdapterFiles): Promise<void> {
    const loaded = this.session.loaded;
    if (loaded) {
      try {
        decodeAdapter(files, shapesOf(loaded));
      } catch (err) {
        if (!(err instanceof AdapterError)) throw err;
        const name = (await (await this.session.store()).getModel(loaded.id).catch(() => undefined))?.name ?? loaded.id;
        throw new AdapterError(`This adapter does not fit the loaded model, ${name}: ${err.message}`);
      }
      return;
    }
    const described = describeAdapterFiles(files);
    const config = readAdapterConfigBytes(files[ADAPTER_CONFIG]);
    const models = (await (await this.session.store()).listModels()).filter((m) => m.complete);
    const problems: string[] = [];
    for (const m of models) {
      try {
        const c = parsePhiConfig(m.config);
        const problem = fitOf(config, described.parameterCount, { hidden: c.hiddenSize, intermediate: c.intermediateSize, layers: c.numLayers });
        if (!problem) return;
        problems.push(`${m.name}: ${problem}`);
      } catch {
        // a model whose config this version cannot read says nothing about the adapter
      }
    }
    if (problems.length) throw new AdapterError(`This adapter fits none of the stored models. ${problems.join(' ')}`);
  }

  async importFiles(files: File[], name?: string): Promise<AdapterInfo> {
    const zip = files.find((f) => f.name.toLowerCase().endsWith('.zip'));
    let adapter: AdapterFiles;
    let defaultName: string;
    const shapes = await this.boundingShapes();
    const limitFor = (config: PeftLoraConfig) => adapterWeightsLimit(resolveAdapterConfig(config, shapes, ADAPTER_CONFIG), shapes);
    const tooLarge = (f: File, limit: number, why: string) =>
      new AdapterError(`${f.name} is ${f.size.toLocaleString('en-US')} bytes, more than the ${limit.toLocaleString('en-US')} ${why}: it is not that file of an adapter.`);
    if (zip) {
      if (files.length > 1) throw new AdapterError('Choose either one .zip or the two adapter files, not both.');
      const zipLimit = adapterZipLimit(shapes);
      if (zip.size > zipLimit) throw tooLarge(zip, zipLimit, 'an adapter .zip can be');
      adapter = unzipAdapter(new Uint8Array(await zip.arrayBuffer()), limitFor);
      defaultName = fileStem(zip.name);
    } else {
      const config = files.find((f) => f.name === ADAPTER_CONFIG) ?? (files.length === 2 ? files.find((f) => f.name.endsWith('.json')) : undefined);
      const weights = files.find((f) => f.name === ADAPTER_WEIGHTS) ?? (files.length === 2 ? files.find((f) => f.name.endsWith('.safetensors')) : undefined);
      if (!config || !weights) {
        const names = files.map((f) => f.name).join(', ') || 'nothing';
        throw new AdapterError(
          `A PEFT adapter is ${ADAPTER_CONFIG} with ${ADAPTER_WEIGHTS} (or one .zip of both); got ${names}.` +
            (files.some((f) => f.name.endsWith('.bin')) ? ' adapter_model.bin (a PyTorch pickle) cannot be read here: save the adapter with safe_serialization=True.' : ''),
        );
      }
      // Sizes are checked before the bytes are read: the config's own cap, then what the config allows the weights.
      if (config.size > MAX_ADAPTER_CONFIG_BYTES) throw tooLarge(config, MAX_ADAPTER_CONFIG_BYTES, 'a PEFT adapter config can be');
      const configBytes = new Uint8Array(await config.arrayBuffer());
      const weightsLimit = limitFor(readAdapterConfigBytes(configBytes));
      if (weights.size > weightsLimit) throw tooLarge(weights, weightsLimit, 'its adapter_config.json allows on any model here (every LoRA parameter in F32, and a header)');
      adapter = { [ADAPTER_CONFIG]: configBytes, [ADAPTER_WEIGHTS]: new Uint8Array(await weights.arrayBuffer()) };
      const base = describeAdapterFiles(adapter).baseModel;
      defaultName = base ? `${base.split('/').pop()}-lora` : 'uploaded-adapter';
    }
    await this.check(adapter);
    const store = await this.store();
    return store.put(adapter, { name: await this.freeName(store, name?.trim() || defaultName), origin: { kind: 'upload', files: files.map((f) => f.name) } });
  }

  async export(id: string, format: 'files' | 'zip', options: { baseModel?: string } = {}): Promise<ExportedFile[]> {
    const store = await this.store();
    const info = await store.get(id);
    const files = { ...(await store.files(id)) };
    if (options.baseModel !== undefined) {
      const base = options.baseModel.trim();
      if (!HUB_MODEL_ID.test(base)) throw new AdapterError(`The base model must be a Hub model id, owner/name (such as microsoft/phi-2), not "${base}".`);
      files[ADAPTER_CONFIG] = configForHub(files[ADAPTER_CONFIG], base);
    }
    const blob = (bytes: Uint8Array, type: string) => new Blob([bytes as BlobPart], { type });
    if (format === 'zip') return [{ fileName: `${info.id}.zip`, blob: blob(zipAdapter(files), 'application/zip') }];
    return [
      { fileName: ADAPTER_CONFIG, blob: blob(files[ADAPTER_CONFIG], 'application/json') },
      { fileName: ADAPTER_WEIGHTS, blob: blob(files[ADAPTER_WEIGHTS], 'application/octet-stream') },
    ];
  }

  /** `name`, or "name (2)", "name (3)"… where another stored adapter has it: two imports of one adapter stay apart. */
  private async freeName(store: AdapterStore, name: string): Promise<string> {
    const taken = new Set((await store.list()).map((a) => a.name));
    if (!taken.has(name)) return name;
    for (let n = 2; ; n++) {
      const suffix = ` (${n})`;
      const candidate = `${name.slice(0, MAX_ADAPTER_NAME - suffix.length)}${suffix}`;
      if (!taken.has(candidate)) return candidate;
    }
  }

  private async storedFrom(url: string): Promise<AdapterInfo | null> {
    return (await (await this.store()).list()).find((a) => sourceUrl(a.origin) === url) ?? null;
  }

  async inspect(repoOrUrl: string, hubBaseUrl?: string): Promise<AdapterSourcePreview> {
    const location = locateAdapter(repoOrUrl, { hubBaseUrl });
    const preview = await previewAdapter(this.engine.platform, location);
    const loaded = this.session.loaded;
    let parameterCount: number | null = null;
    let problem: string | null = null;
    if (preview.config && loaded) {
      const shapes = shapesOf(loaded);
      problem = fitOf(preview.config, null, shapes);
      if (!problem) {
        const settings = resolveAdapterConfig(preview.config, shapes, ADAPTER_CONFIG);
        parameterCount = loraParameterCount(settings, shapes);
        // The size says the rest: float32 or float16 values of exactly this many parameters, plus a header.
        // F16 or BF16 values take 2 bytes each, F32 4, and the JSON header well under 512 bytes a tensor.
        const tensors = 2 * loraModules(settings, shapes).length;
        if (preview.bytes !== null && preview.bytes < parameterCount * 2) {
          problem = `The weights file is ${preview.bytes.toLocaleString('en-US')} bytes, too small for the ${parameterCount.toLocaleString('en-US')} parameters r ${settings.r} needs on this model: it was made for a smaller model.`;
        } else if (preview.bytes !== null && preview.bytes > parameterCount * 4 + 512 * tensors + 4096) {
          problem = `The weights file is ${preview.bytes.toLocaleString('en-US')} bytes, more than the ${parameterCount.toLocaleString('en-US')} parameters r ${settings.r} needs on this model can take: it was made for a larger model.`;
        }
      }
    }
    const stored = await this.storedFrom(location.url);
    return {
      kind: location.kind,
      url: location.url,
      label: locationLabel(location),
      repo: location.repo,
      settings: preview.settings,
      baseModel: preview.baseModel,
      parameterCount,
      bytes: preview.bytes,
      fits: preview.config && loaded ? problem === null : null,
      fitProblem: problem,
      storedId: stored?.id ?? null,
    };
  }

  async downloadInto(repoOrUrl: string, onProgress?: (p: AdapterDownloadProgress) => void, request: DownloadRequest = {}): Promise<AdapterInfo> {
    const location = locateAdapter(repoOrUrl, { hubBaseUrl: request.hubBaseUrl ?? HUB_BASE_URL });
    let info = await this.storedFrom(location.url);
    if (!info) {
      if (this.download) throw new AdapterError('Another adapter is downloading; wait for it or cancel it first.');
      const controller = new AbortController();
      this.download = controller;
      try {
        const files = await downloadAdapter(this.engine.platform, location, {
          signal: controller.signal,
          onProgress: onProgress && throttled(onProgress, () => this.engine.platform.now()),
          cache: await this.downloads(),
          shapes: await this.boundingShapes(),
        });
        await this.check(files);
        // Stopped after the last byte arrived: still nothing is kept.
        if (controller.signal.aborted) throw Object.assign(new Error('The download was stopped; nothing of it was kept.'), { name: 'AbortError' });
        const store = await this.store();
        info = await store.put(files, { name: await this.freeName(store, request.name?.trim() || locationName(location)), origin: originOf(location) });
      } finally {
        if (this.download === controller) this.download = null;
      }
    }
    if (request.load) await this.load(info.id);
    return info;
  }

  cancelDownload(): void {
    this.download?.abort();
  }

  async load(id: string): Promise<void> {
    const loaded = this.session.requireModel();
    if (this.merged.get(loaded)?.includes(id)) {
      throw new AdapterError(`"${id}" is merged into the loaded weights already; applying it again would add it twice. Load the model again to undo the merge.`);
    }
    const files = await (await this.store()).files(id);
    this.session.addAdapter(id, files);
    this.session.activeAdapter = id;
  }

  unload(id: string): void {
    this.session.removeAdapter(id);
  }

  setActive(id: string | null): void {
    if (id !== null) this.session.adapter(id);
    this.session.activeAdapter = id;
  }

  async merge(id: string): Promise<MergeResult> {
    const loaded = this.session.requireModel();
    if (!this.session.loadedAdapters().includes(id)) await this.load(id);
    const state = this.session.adapter(id)!;
    const modules = await withModel(loaded.generator, `merging adapter "${id}"`, async () => {
      const n = mergeAdapter(loaded.model.gpu, loaded.model.params, state);
      await loaded.model.gpu.finish();
      return n;
    });
    // Applied unmerged as well it would count twice.
    this.session.removeAdapter(id);
    this.merged.set(loaded, [...(this.merged.get(loaded) ?? []), id]);
    return { id, modules, weightMode: loaded.weightMode };
  }

  async rename(id: string, name: string): Promise<AdapterInfo> {
    return (await this.store()).rename(id, name);
  }

  async delete(id: string): Promise<void> {
    if (this.session.loaded && this.session.loadedAdapters().includes(id)) this.session.removeAdapter(id);
    await (await this.store()).delete(id);
  }
}
