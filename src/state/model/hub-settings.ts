import { DEFAULT_HUB_SETTINGS, type HubSettings } from '../../shared/hub';

/** The Hub form's settings, kept in localStorage across visits (nothing is kept while they are the defaults). */
const HUB_SETTINGS_KEY = 'phi2.model.hubSettings';

/** The settings saved by an earlier visit, or the defaults. */
export function storedHubSettings(): HubSettings {
  try {
    const raw = globalThis.localStorage?.getItem(HUB_SETTINGS_KEY);
    if (!raw) return { ...DEFAULT_HUB_SETTINGS };
    const s = JSON.parse(raw) as Partial<HubSettings>;
    return {
      repo: typeof s.repo === 'string' ? s.repo : DEFAULT_HUB_SETTINGS.repo,
      revision: typeof s.revision === 'string' ? s.revision : DEFAULT_HUB_SETTINGS.revision,
      baseUrl: typeof s.baseUrl === 'string' ? s.baseUrl : DEFAULT_HUB_SETTINGS.baseUrl,
    };
  } catch {
    return { ...DEFAULT_HUB_SETTINGS };
  }
}

/** The settings as a download uses them: no surrounding spaces, no trailing slash on the server. */
export function trimmed(s: HubSettings): HubSettings {
  return { repo: s.repo.trim(), revision: s.revision.trim(), baseUrl: s.baseUrl.trim().replace(/\/+$/, '') };
}

/** Whether two settings name the same repository, revision and server once trimmed. */
export function sameHubSettings(a: HubSettings, b: HubSettings): boolean {
  const x = trimmed(a);
  const y = trimmed(b);
  return x.repo === y.repo && x.revision === y.revision && x.baseUrl === y.baseUrl;
}

/** Keeps the settings for the next visit; forgets them when they are the defaults. */
export function saveHubSettings(settings: HubSettings): void {
  try {
    if (sameHubSettings(settings, DEFAULT_HUB_SETTINGS)) globalThis.localStorage?.removeItem(HUB_SETTINGS_KEY);
    else globalThis.localStorage?.setItem(HUB_SETTINGS_KEY, JSON.stringify(settings));
  } catch {
    // storage refused (private mode): the settings last for this visit
  }
}
