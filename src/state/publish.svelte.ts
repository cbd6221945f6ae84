import type { AdapterListing } from '../worker/adapters-api';
import { Comlink, engine } from '../worker/client';
import type { PublishProgress, PublishResult } from '../worker/export-api';
import { adaptersState, shareLinkFor } from './adapters.svelte';
import { isCancel, messageOf } from './errors';

/**
 * Publishing an adapter to the Hugging Face Hub from the Adapters page: the form (repository, privacy,
 * base model, the model card to be published), progress, and the result with its share link, copied
 * to the clipboard. The token the user pastes lives in this object's memory only, for this page
 * session: it is not stored, not put in a URL, and not logged; it reaches the worker for the call.
 */

export interface PublishOutcome extends PublishResult {
  shareLink: string;
  /** Whether the share link made it to the clipboard (browsers may refuse). */
  copied: boolean;
}

/** A repository name from an adapter's name: what the Hub allows. */
export function repoNameFor(name: string): string {
  return (
    name
      .replace(/[^A-Za-z0-9._-]+/g, '-')
      .replace(/-{2,}/g, '-')
      .replace(/\.{2,}/g, '.')
      .replace(/^[-.]+|[-.]+$/g, '')
      .slice(0, 96) || 'phi-lora-adapter'
  );
}

/** The Hub id of an adapter's base model when its record has one (owner/name), else Phi-2. */
export function baseModelFor(baseModel: string | null): string {
  const id = baseModel?.replace(/@.*$/, '').trim() ?? '';
  return /^[\w.-]+\/[\w.-]+$/.test(id) ? id : 'microsoft/phi-2';
}

export class PublishState {
  /** The pasted access token: memory only. */
  token = $state('');
  /** The adapter whose form is open. */
  adapterId = $state<string | null>(null);
  repo = $state('');
  isPrivate = $state(false);
  baseModel = $state('microsoft/phi-2');
  card = $state<string | null>(null);
  cardError = $state<string | null>(null);
  status = $state<'idle' | 'publishing' | 'done' | 'failed'>('idle');
  progress = $state<PublishProgress | null>(null);
  outcome = $state<PublishOutcome | null>(null);
  error = $state<string | null>(null);

  open(x: Pick<AdapterListing, 'id' | 'name' | 'baseModel'>): void {
    if (this.adapterId === x.id) {
      this.adapterId = null;
      return;
    }
    this.adapterId = x.id;
    this.repo = repoNameFor(x.name);
    this.baseModel = baseModelFor(x.baseModel);
    this.card = null;
    this.cardError = null;
    this.outcome = null;
    this.error = null;
    this.status = 'idle';
  }

  async showCard(): Promise<void> {
    if (!this.adapterId) return;
    try {
      this.card = await engine().adapterModelCard(this.adapterId, { repo: this.repo, baseModel: this.baseModel });
      this.cardError = null;
    } catch (err) {
      this.cardError = messageOf(err);
    }
  }

  async publish(): Promise<void> {
    const id = this.adapterId;
    if (!id || this.status === 'publishing') return;
    this.status = 'publishing';
    this.error = null;
    this.outcome = null;
    this.progress = null;
    try {
      const result = await engine().publishAdapter(
        id,
        { token: this.token, repo: this.repo, private: this.isPrivate, baseModel: this.baseModel, hubBaseUrl: adaptersState.hubBaseUrl },
        Comlink.proxy((p: PublishProgress) => (this.progress = p)),
      );
      const shareLink = shareLinkFor(result.folderUrl);
      let copied = false;
      try {
        await navigator.clipboard.writeText(shareLink);
        copied = true;
      } catch {
        // Without focus or permission the browser refuses; the link is shown to copy by hand.
      }
      this.outcome = { ...result, shareLink, copied };
      this.status = 'done';
    } catch (err) {
      this.error = isCancel(err) ? 'Publishing was cancelled; nothing was committed.' : messageOf(err);
      this.status = 'failed';
    } finally {
      this.progress = null;
    }
  }

  async cancel(): Promise<void> {
    await engine().cancelPublish();
  }

  /** Forgets the token now (it is forgotten anyway when the page closes). */
  forgetToken(): void {
    this.token = '';
  }
}

export const publishState = new PublishState();
