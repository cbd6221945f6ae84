/**
 * The app's one byte formatter, for the engine's messages and every page alike. Two systems:
 * - 'binary' (the default): KiB, MiB, GiB (1 GiB = 2^30 bytes), for GPU memory and browser storage, as
 *   cards and quotas are counted: "534.4 MiB", "5.20 GiB";
 * - 'decimal': kB, MB, GB (1 GB = 10^9 bytes), for downloads and files, as the Hub and transfer rates
 *   count them: "3.05 GB", "13.4 MB".
 * Below ten units two decimals, then fewer; "–" for what is not a size.
 */
export type ByteUnits = 'binary' | 'decimal';

const UNITS: Record<ByteUnits, { base: number; names: readonly string[] }> = {
  binary: { base: 1024, names: ['KiB', 'MiB', 'GiB', 'TiB'] },
  decimal: { base: 1000, names: ['kB', 'MB', 'GB', 'TB'] },
};

export function formatBytes(bytes: number, units: ByteUnits = 'binary'): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '–';
  const { base, names } = UNITS[units];
  if (bytes < base) return `${bytes} B`;
  let v = bytes / base;
  let u = 0;
  while (v >= base && u < names.length - 1) {
    v /= base;
    u++;
  }
  const decimals = v < 10 ? 2 : units === 'binary' || v < 100 ? 1 : 0;
  return `${v.toFixed(decimals)} ${names[u]}`;
}
