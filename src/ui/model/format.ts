import { formatBytes as format } from '../../shared/bytes';

/**
 * Numbers as the Model page shows them. Sizes are decimal (1 GB = 10^9 bytes), like download sizes
 * on the Hub and transfer rates in MB/s.
 */

/** Sizes in decimal units, like download sizes on the Hub. */
export function formatBytes(bytes: number): string {
  return format(bytes, 'decimal');
}

export function formatRate(bytesPerSecond: number): string {
  return bytesPerSecond > 0 ? `${formatBytes(bytesPerSecond)}/s` : '–';
}

/** "45 s", "3 min 20 s", "1 h 05 min"; "–" while unknown. */
export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '–';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/** Whole percent, rounded down so that 100% means done. */
export function percent(done: number, total: number | null): string {
  if (!total) return '–';
  return `${Math.floor(Math.min(100, (100 * done) / total))}%`;
}

export function formatInt(n: number): string {
  return n.toLocaleString('en-US');
}

/** A commit hash shortened the way git shows it; branch and tag names unchanged. */
export function shortRevision(revision: string): string {
  return /^[0-9a-f]{40}$/i.test(revision) ? revision.slice(0, 7) : revision;
}
