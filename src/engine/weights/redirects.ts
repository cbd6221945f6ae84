import type { Platform } from '../platform/types';

/** Redirects followed before a chain counts as endless (browsers and Node's fetch give up after 20). */
export const MAX_REDIRECTS = 20;

/**
 * Why a fetch that follows redirects failed, when redirects are the reason; null when they are not
 * (then it was the network, worth retrying). A redirect loop or an endless chain fails the same way
 * every time, and fetch reports it as a bare network error ("Failed to fetch"), so each download
 * that fails looks here once before it retries: the chain is walked hop by hop with
 * `redirect: 'manual'` and the walk stops at the first URL seen twice. A browser hides where a
 * redirect points from the page (an "opaque redirect"); then all that can be said is that the URL
 * redirects and the redirect could not be followed.
 */
export async function diagnoseRedirects(platform: Pick<Platform, 'fetch'>, url: string, signal?: AbortSignal): Promise<string | null> {
  const seen = [url];
  let at = url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    let res: Response;
    try {
      res = await platform.fetch(at, { method: 'GET', redirect: 'manual', signal });
    } catch {
      return null; // the network itself: not a redirect problem
    }
    await res.body?.cancel().catch(() => undefined);
    if (res.type === 'opaqueredirect') {
      return `${url} redirects, and the redirect could not be followed (a redirect loop, too many redirects, or a target this page may not reach). Check the link; it will not work by retrying.`;
    }
    const location = res.status >= 300 && res.status < 400 ? res.headers.get('location') : null;
    if (location === null) return null;
    let next: string;
    try {
      next = new URL(location, at).toString();
    } catch {
      return `${at} redirects to "${location.slice(0, 200)}", which is not a URL.`;
    }
    const repeat = seen.indexOf(next);
    if (repeat >= 0) {
      const loop = [...seen.slice(repeat), next].map(shortUrl).join(' → ');
      return `${url} redirects in a loop (${loop}); the server is misconfigured or the link is wrong, so it will not work by retrying.`;
    }
    seen.push(next);
    at = next;
  }
  return `${url} redirects more than ${MAX_REDIRECTS} times in a row; the server is misconfigured or the link is wrong.`;
}

function shortUrl(u: string): string {
  const url = new URL(u);
  const text = `${url.host}${url.pathname}${url.search}`;
  return text.length > 80 ? `${text.slice(0, 77)}…` : text;
}
