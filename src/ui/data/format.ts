import { formatBytes } from '../../shared/bytes';

/** Number and size formatting for the Data page (English grouping, as elsewhere in the app). */
export function int(n: number): string {
  return n.toLocaleString('en-US');
}

/** Sizes of uploads and exports, in binary units (KiB, MiB) as the upload limit is stated. */
export function bytes(n: number): string {
  return formatBytes(n);
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${int(n)} ${n === 1 ? one : many}`;
}

export function dateTime(ms: number): string {
  return new Date(ms).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}
