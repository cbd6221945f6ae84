import { saveBlob } from '../../../state/download';

/** Saves a chart's canvas as PNG on an opaque background (charts draw on transparent canvases). */
export function saveCanvasPng(canvas: HTMLCanvasElement, fileName: string): void {
  const out = document.createElement('canvas');
  out.width = canvas.width;
  out.height = canvas.height;
  const ctx = out.getContext('2d');
  if (!ctx) return;
  ctx.fillStyle = getComputedStyle(canvas).getPropertyValue('--panel').trim() || '#ffffff';
  ctx.fillRect(0, 0, out.width, out.height);
  ctx.drawImage(canvas, 0, 0);
  out.toBlob((blob) => blob && saveBlob(blob, fileName), 'image/png');
}

export function saveCsv(text: string, fileName: string): void {
  saveBlob(new Blob([text], { type: 'text/csv' }), fileName);
}

/** A file name from parts: letters, digits, dots and dashes only. */
export function fileName(...parts: Array<string | number>): string {
  return parts.map((p) => String(p).replace(/[^A-Za-z0-9.-]+/g, '-')).join('_');
}
