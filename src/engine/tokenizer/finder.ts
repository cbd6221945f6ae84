import type { Platform } from '../platform/types';
import type { UserDataStore } from '../store/datasets';
import { WeightStore } from '../store/store';
import { hubFileUrl } from '../weights/hub';
import { DEFAULT_HUB_SETTINGS } from '../../shared/hub';
import { loadTokenizer, type PhiTokenizer, TOKENIZER_CONFIG_JSON, TOKENIZER_JSON } from './index';

/**
 * Where the Data page gets a tokenizer to count tokens with. The app bundles none: the tokenizer comes
 * with a model stored on the Model page (the import writes the tokenizer files first, so one is there as
 * soon as an import starts), or, before any model, from Phi-2's two tokenizer files alone (about 2 MB),
 * downloaded on request and kept in the user-data database. Without either, lengths are in characters.
 */

export interface NamedTokenizer {
  tokenizer: Pick<PhiTokenizer, 'encode' | 'eosTokenId'>;
  /** For the page: whose tokenizer this is. */
  name: string;
}

/** Key of the separately downloaded tokenizer in the user-data database. */
const DOWNLOADED_KEY = 'microsoft/phi-2';

export class TokenizerFinder {
  private cached: { key: string; value: NamedTokenizer } | null = null;

  constructor(
    private readonly platform: Pick<Platform, 'indexedDB' | 'storage' | 'fetch'>,
    private readonly userData: () => Promise<UserDataStore>,
  ) {}

  /** The best tokenizer at hand, or null. Cheap after the first success: the built tokenizer is kept. */
  async find(): Promise<NamedTokenizer | null> {
    const fromModel = await this.fromStoredModel();
    if (fromModel) return fromModel;
    const files = await (await this.userData()).getTokenizerFiles(DOWNLOADED_KEY);
    if (!files) return null;
    return this.build(`downloaded:${DOWNLOADED_KEY}`, files, 'Phi-2 (tokenizer files downloaded on this page)');
  }

  /** Downloads Phi-2's tokenizer files from the Hub at the pinned revision, checks they load, and keeps them. */
  async download(baseUrl: string = DEFAULT_HUB_SETTINGS.baseUrl): Promise<NamedTokenizer> {
    const settings = { ...DEFAULT_HUB_SETTINGS, baseUrl };
    const files: Record<string, string> = {};
    for (const name of [TOKENIZER_JSON, TOKENIZER_CONFIG_JSON]) {
      const url = hubFileUrl(settings, name);
      let response: Response;
      try {
        response = await this.platform.fetch(url);
      } catch (err) {
        throw new Error(`Could not download ${name} from ${settings.baseUrl} (${(err as Error).message}). Check the connection and try again.`);
      }
      if (!response.ok) throw new Error(`Downloading ${name} failed: ${url} answered HTTP ${response.status}. Try again later.`);
      files[name] = await response.text();
    }
    const built = await this.build(`downloaded:${DOWNLOADED_KEY}`, files, 'Phi-2 (tokenizer files downloaded on this page)', true);
    await (await this.userData()).putTokenizerFiles(DOWNLOADED_KEY, files);
    return built;
  }

  private async fromStoredModel(): Promise<NamedTokenizer | null> {
    let store: WeightStore;
    try {
      store = await WeightStore.open(this.platform);
    } catch {
      return null; // no model store here (or IndexedDB refused): fall back to the other sources
    }
    try {
      const models = (await store.listModels()).sort((a, b) => Number(b.complete) - Number(a.complete) || b.updatedAt - a.updatedAt);
      for (const model of models) {
        const key = `model:${model.id}`;
        if (this.cached?.key === key) return this.cached.value;
        const files = await store.getTokenizer(model.id);
        if (!files) continue;
        try {
          return await this.build(key, files, `${model.name} (stored model)`);
        } catch {
          // a damaged or partial tokenizer: try the next model, then the downloaded files
        }
      }
      return null;
    } finally {
      store.close();
    }
  }

  private async build(key: string, files: Record<string, string>, name: string, fresh = false): Promise<NamedTokenizer> {
    if (!fresh && this.cached?.key === key) return this.cached.value;
    const value = { tokenizer: await loadTokenizer(files), name };
    this.cached = { key, value };
    return value;
  }
}
