import { GpuError } from '../gpu/device';
import { StoreError } from '../store';
import { TokenizerError } from '../tokenizer';
import { CheckpointError, HubError, SafetensorsError, WeightsError } from '../weights';
import { SessionError } from './session';

/** Why a long task failed, for the page: what happened and, where it helps, what to do. */
export interface ModelProblem {
  /** The engine's error code ('not-found', 'unauthorized', 'quota', 'network', 'files-incomplete', ...) or 'failed'. */
  code: string;
  /** One line: "Not found on the Hub (HTTP 404)". */
  title: string;
  /** The full explanation, naming the file, repository and numbers involved. */
  message: string;
  /** What to do next, when the message does not already say it. */
  advice?: string;
  /** Storage full: bytes still to store, and bytes free (null when the browser cannot say). */
  neededBytes?: number;
  availableBytes?: number | null;
  /** HTTP status, when there was one. */
  status?: number;
}

/**
 * Turns an engine error into what the page shows; `fallbackTitle` heads errors of no known kind. `task`
 * says what failed, so that the advice fits it: a download resumes, a repository check is just run again.
 */
export function describeProblem(err: unknown, fallbackTitle = 'Something went wrong', task: 'download' | 'check' = 'download'): ModelProblem {
  const message = err instanceof Error ? err.message || err.name : String(err);
  if (err instanceof HubError) {
    const status = err.status;
    const check = task === 'check';
    const later = check ? 'check again' : 'resume: everything stored so far is kept';
    switch (err.code) {
      case 'not-found':
        return { code: err.code, status, title: status === 404 ? 'Not found on the Hub (HTTP 404)' : 'Not a valid Hub location', message, advice: 'Check the repository, revision and base URL under "Advanced".' };
      case 'unauthorized':
        return { code: err.code, status, title: `The repository needs a login (HTTP ${status ?? '401/403'})`, message };
      case 'rate-limited':
        return { code: err.code, status, title: 'The Hub is limiting requests (HTTP 429)', message, advice: `Wait a minute, then ${later}.` };
      case 'unreachable':
        return {
          code: err.code,
          title: 'The Hub cannot be reached',
          message,
          advice: `Check the network connection (or the base URL under "Advanced"), then ${check ? 'check again' : 'try again: everything stored so far is kept'}. Or import the model's files from disk.`,
        };
      case 'network':
        return {
          code: err.code,
          title: 'The connection failed',
          message,
          advice: check ? 'Check the network connection, then check again.' : 'Check the network, then resume: the download continues where it stopped.',
        };
      case 'redirects':
        return { code: err.code, status, title: 'The server redirects in a loop', message, advice: 'Check the repository, revision and base URL under "Advanced".' };
      case 'http':
        return { code: err.code, status, title: `The server answered HTTP ${status ?? 'an error'}`, message, advice: check ? 'Check again later.' : 'Resume later: everything stored so far is kept.' };
      case 'changed':
        return { code: err.code, status, title: 'The file changed on the server', message, advice: 'Resume later, or pin a fixed revision (a commit hash) under "Advanced".' };
      case 'bad-response':
        return {
          code: err.code,
          status,
          title: 'The server sent something unexpected',
          message,
          advice: check ? 'Check again; if it keeps failing, the server may not be a Hub or a mirror of one.' : 'Resume to try again; if it keeps failing, the mirror may not support byte ranges.',
        };
      default:
        return { code: err.code, status, title: check ? 'The repository could not be checked' : 'The download failed', message };
    }
  }
  if (err instanceof StoreError) {
    switch (err.code) {
      case 'quota':
        return { code: err.code, title: 'Browser storage is full', message, neededBytes: err.needed, availableBytes: err.available ?? null };
      case 'unavailable':
        return { code: err.code, title: 'Browser storage is not available', message, advice: 'Private windows and some settings block IndexedDB; use a normal window of this site.' };
      case 'corrupt':
        return { code: err.code, title: 'Stored data is damaged', message };
      case 'missing':
        return { code: err.code, title: 'Stored data is missing', message };
      default:
        return { code: err.code, title: 'Browser storage failed', message };
    }
  }
  if (err instanceof CheckpointError) {
    const titles: Record<string, string> = {
      'unsupported-model': 'Not a supported Phi checkpoint',
      'config-invalid': 'config.json is not usable',
      'files-incomplete': 'Files are missing',
      'tensor-missing': 'A weight is missing',
      'tensor-unexpected': 'The checkpoint has weights Phi does not',
      'tensor-shape': 'A weight has the wrong shape',
      'tensor-dtype': 'A weight has an unsupported type',
      'tensor-values': 'A weight holds invalid numbers',
    };
    return { code: err.code, title: titles[err.code] ?? 'The checkpoint is not usable', message };
  }
  if (err instanceof SafetensorsError) return { code: err.code, title: 'A weights file is damaged or not safetensors', message };
  if (err instanceof WeightsError) return { code: err.code, title: 'The weights could not be read', message };
  if (err instanceof GpuError) return { code: err.code, title: 'No usable GPU', message };
  if (err instanceof TokenizerError) return { code: `tokenizer-${err.code}`, title: 'The stored tokenizer is not usable', message };
  if (err instanceof SessionError) return { code: 'session', title: fallbackTitle, message };
  const name = (err as { name?: string } | null)?.name;
  if (name === 'OperationError' || /out of memory/i.test(message)) {
    return { code: 'gpu-memory', title: 'The GPU ran out of memory', message, advice: 'Close other GPU-heavy tabs and programs, or use the int8 weight mode.' };
  }
  return { code: 'failed', title: fallbackTitle, message };
}
