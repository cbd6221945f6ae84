/**
 * The browser's download of what a page made: a click on a temporary link. The pages' one way to hand
 * the user a file (adapters, exports, charts, rows of a dataset).
 */

/** Starts a download of a URL (a Blob URL the caller keeps), as a click on a link would. */
export function startDownload(url: string, fileName: string): void {
  const a = document.createElement('a');
  a.href = url;
  a.download = fileName;
  a.rel = 'noopener';
  document.body.append(a);
  a.click();
  a.remove();
}

/** Saves a Blob under a file name; its URL is released once the browser has had time to read it. */
export function saveBlob(blob: Blob, fileName: string): void {
  const url = URL.createObjectURL(blob);
  startDownload(url, fileName);
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
