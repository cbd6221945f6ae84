/** Numbers as the Train and Adapters pages show them. GPU memory in binary units (GiB), as cards are sold. */

import { formatBytes } from '../../shared/bytes';

export function formatMemory(bytes: number): string {
  return formatBytes(bytes);
}

/** "45 s", "3 min 20 s", "1 h 05 min"; "–" while unknown. */
export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '–';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

export function int(n: number): string {
  return n.toLocaleString('en-US');
}

/** A loss or norm with 4 significant digits; "–" for NaN (a skipped step). */
export function num(v: number | null | undefined, digits = 4): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toPrecision(digits);
}

export function dateTime(ms: number): string {
  return new Date(ms).toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'short' });
}

/** Decimal sizes for files and downloads (1 MB = 10^6 bytes), like the Model page and the Hub. */
export function fileSize(bytes: number | null | undefined): string {
  return bytes === null || bytes === undefined ? '–' : formatBytes(bytes, 'decimal');
}

/** A learning rate: 2.50e-5, or 0 before warm-up starts. */
export function rate(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  return v === 0 ? '0' : v.toExponential(2);
}

/** A speed readable at any magnitude: "12,345", "456", "45.6", "0.83", "0.0042"; "–" while unknown. */
export function speed(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v) || v < 0) return '–';
  if (v >= 100) return Math.round(v).toLocaleString('en-US');
  return v.toLocaleString('en-US', { maximumSignificantDigits: 3 });
}
