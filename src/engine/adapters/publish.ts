import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, type AdapterFiles } from './files';
import { AdapterError } from './peft';

/**
 * Publishing an adapter to the Hugging Face Hub as a model repository (README.md model card,
 * adapter_config.json, adapter_model.safetensors) through the Hub's own client, @huggingface/hub:
 * whoami-v2 to check the token and find its user, repos/create, then one commit (preupload, the large
 * file through the LFS batch API, the commit itself). In a browser the client reports upload progress
 * through XMLHttpRequest; under Node it uses the global fetch. The client is loaded when first needed,
 * so the worker starts without it.
 *
 * The token is the caller's to keep: it is used for these requests only, never stored, and never part
 * of an error message (any echo of it is replaced before an error leaves this module).
 */

export interface PublishOptions {
  hubUrl: string;
  token: string;
  /** "name" (under the token's user) or "owner/name". */
  repo: string;
  private: boolean;
  signal?: AbortSignal;
  onProgress?(p: PublishProgress): void;
}

export interface PublishProgress {
  phase: 'checking-token' | 'creating-repo' | 'hashing' | 'uploading' | 'committing';
  message: string;
  /** 0..1 of the current phase, when known. */
  fraction?: number;
}

export interface PublishResult {
  repo: string;
  /** The repository's page. */
  repoUrl: string;
  /** Its files at main, for share links and imports (…/resolve/main/). */
  folderUrl: string;
  /** False when the repository existed and got a new commit. */
  created: boolean;
  commitUrl: string | null;
}

export class PublishError extends Error {
  constructor(
    message: string,
    readonly status: number | null = null,
  ) {
    super(message);
    this.name = 'PublishError';
  }
}

/** The Hub's rules for a repository name part: letters, digits, '-', '_', '.', at most 96, no '--' or '..', not starting or ending with '-' or '.'. */
const NAME_PART = /^(?!.*(--|\.\.))[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?$/;

/** Checks "name" or "owner/name", saying what is wrong. */
export function checkRepoName(repo: string): { owner: string | null; name: string } {
  const parts = repo.trim().split('/');
  if (parts.length > 2 || !parts.every(Boolean)) throw new AdapterError(`"${repo}" is not a repository name: write "name" or "owner/name".`);
  for (const p of parts) {
    if (!NAME_PART.test(p)) {
      throw new AdapterError(`"${p}" is not allowed in a Hub repository name: use letters, digits, '-', '_' and '.', at most 96, without '--' or '..', not starting or ending with '-' or '.'.`);
    }
  }
  return parts.length === 2 ? { owner: parts[0], name: parts[1] } : { owner: null, name: parts[0] };
}

/** adapter_config.json with base_model_name_or_path set, so PEFT's AutoPeftModel finds the base model on the Hub. */
export function configForHub(config: Uint8Array, baseModel: string): Uint8Array {
  const json = JSON.parse(new TextDecoder().decode(config)) as Record<string, unknown>;
  json.base_model_name_or_path = baseModel;
  return new TextEncoder().encode(JSON.stringify(json, null, 2));
}

function scrub(message: string, token: string): string {
  return token ? message.split(token).join('hf_***') : message;
}

type HubClient = typeof import('@huggingface/hub');

function explain(hub: HubClient, err: unknown, token: string, what: string, repo: string): Error {
  if ((err as Error)?.name === 'AbortError') return err as Error;
  if (err instanceof hub.HubApiError) {
    const detail = scrub(err.message, token);
    if (err.statusCode === 401) return new PublishError(`The Hub refused the token (HTTP 401) while ${what}: it is wrong, expired or revoked. Paste a token from huggingface.co/settings/tokens.`, 401);
    if (err.statusCode === 403) {
      return new PublishError(`The token may not write to ${repo} (HTTP 403) while ${what}: use a token with the "write" role, or a fine-grained one with write access to that namespace. (${detail})`, 403);
    }
    if (err.statusCode === 429) return new PublishError(`The Hub is rate-limiting (HTTP 429) while ${what}; wait a minute and publish again.`, 429);
    return new PublishError(`The Hub answered HTTP ${err.statusCode} while ${what}: ${detail}`, err.statusCode);
  }
  const message = err instanceof Error ? err.message : String(err);
  return new PublishError(`Could not reach the Hub while ${what}: ${scrub(message, token)}. Check the connection (and the Hub address) and try again.`);
}

/** Creates (or reuses) the repository and commits the card and the adapter's two files to main. */
export async function publishAdapter(files: AdapterFiles, card: string, options: PublishOptions): Promise<PublishResult> {
  const token = options.token.trim();
  if (!token) throw new AdapterError('Paste a Hugging Face access token with write access (huggingface.co/settings/tokens).');
  const hubUrl = options.hubUrl.replace(/\/+$/, '');
  const wanted = checkRepoName(options.repo);
  const report = (p: PublishProgress) => options.onProgress?.(p);

  report({ phase: 'checking-token', message: 'Checking the token' });
  const hub: HubClient = await import('@huggingface/hub');
  let owner = wanted.owner;
  try {
    const me = await hub.whoAmI({ accessToken: token, hubUrl });
    owner ??= me.name;
  } catch (err) {
    throw explain(hub, err, token, 'checking the token', options.repo);
  }
  const repo = `${owner}/${wanted.name}`;
  options.signal?.throwIfAborted();

  report({ phase: 'creating-repo', message: `Creating ${repo}` });
  let created = true;
  try {
    await hub.createRepo({ repo: { type: 'model', name: repo }, accessToken: token, hubUrl, visibility: options.private ? 'private' : 'public' });
  } catch (err) {
    // 409: it exists already (published before): the files go into it as a new commit.
    if (err instanceof hub.HubApiError && err.statusCode === 409) created = false;
    else throw explain(hub, err, token, `creating ${repo}`, repo);
  }
  options.signal?.throwIfAborted();

  const blob = (bytes: Uint8Array, type: string) => new Blob([bytes as BlobPart], { type });
  const uploads = [
    { path: 'README.md', content: blob(new TextEncoder().encode(card), 'text/markdown') },
    { path: ADAPTER_CONFIG, content: blob(files[ADAPTER_CONFIG], 'application/json') },
    { path: ADAPTER_WEIGHTS, content: blob(files[ADAPTER_WEIGHTS], 'application/octet-stream') },
  ];
  let commitUrl: string | null = null;
  try {
    const iterator = hub.uploadFilesWithProgress({
      repo: { type: 'model', name: repo },
      accessToken: token,
      hubUrl,
      files: uploads,
      commitTitle: created ? 'Add LoRA adapter' : 'Update LoRA adapter',
      abortSignal: options.signal,
      // The LFS protocol every Hub deployment speaks; Xet is an optimisation the server may offer.
      useXet: false,
    });
    for (;;) {
      const next = await iterator.next();
      if (next.done) {
        commitUrl = next.value?.commit.url ?? null;
        break;
      }
      const e = next.value;
      if (e.event === 'phase') {
        if (e.phase === 'committing') report({ phase: 'committing', message: 'Committing' });
      } else if (e.path === ADAPTER_WEIGHTS || e.state === 'hashing') {
        report({ phase: e.state === 'hashing' ? 'hashing' : 'uploading', message: `${e.state === 'hashing' ? 'Hashing' : 'Uploading'} ${e.path}`, fraction: e.progress });
      }
    }
  } catch (err) {
    throw explain(hub, err, token, `uploading to ${repo}`, repo);
  }
  return { repo, repoUrl: `${hubUrl}/${repo}`, folderUrl: `${hubUrl}/${repo}/resolve/main/`, created, commitUrl };
}
