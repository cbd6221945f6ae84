import type { ContrastUpdate, IntruderResult, UpdateCell } from '../../worker/inspect-api';

/**
 * The Inspect view's numbers as CSV (RFC 4180: comma-separated, fields with commas, quotes or line
 * breaks quoted, quotes doubled), one file per chart, with full float precision.
 */

function field(v: string | number | null | undefined): string {
  if (v === null || v === undefined) return '';
  // Text (a generated token) that a spreadsheet would run as a formula gets a leading ' (numbers stay numbers).
  const s = typeof v === 'number' ? (Number.isFinite(v) ? String(v) : '') : /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv(header: string[], rows: Array<Array<string | number | null | undefined>>): string {
  return [header, ...rows].map((r) => r.map(field).join(',')).join('\r\n') + '\r\n';
}

/** One row per module: both adapters' norm and effective rank, and the cosine of their updates. */
export function spectraCsv(cells: readonly UpdateCell[], names: [string, string | null]): string {
  const [a, b] = names;
  const header = ['layer', 'module', `${a} norm`, `${a} effective_rank`, `${a} singular_values`];
  if (b !== null) header.push(`${b} norm`, `${b} effective_rank`, `${b} singular_values`, 'cosine');
  return toCsv(
    header,
    cells.map((c) => {
      const row: Array<string | number | null> = [c.layer, c.target, c.first?.norm ?? null, c.first?.effectiveRank ?? null, c.first?.singularValues.join(' ') ?? null];
      if (b !== null) row.push(c.second?.norm ?? null, c.second?.effectiveRank ?? null, c.second?.singularValues.join(' ') ?? null, c.cosine);
      return row;
    }),
  );
}

/** The singular values of one cell's update(s), by index. */
export function singularValuesCsv(cell: UpdateCell, names: [string, string | null]): string {
  const n = Math.max(cell.first?.singularValues.length ?? 0, cell.second?.singularValues.length ?? 0);
  const header = ['index', names[0]];
  if (names[1] !== null) header.push(names[1]);
  return toCsv(
    header,
    Array.from({ length: n }, (_, i) => {
      const row: Array<number | null> = [i + 1, cell.first?.singularValues[i] ?? null];
      if (names[1] !== null) row.push(cell.second?.singularValues[i] ?? null);
      return row;
    }),
  );
}

/** One row per module: the count, and each fine-tuned top-k vector's largest |cos| with the pre-trained ones. */
export function intrudersCsv(results: readonly IntruderResult[], threshold: number): string {
  const k = Math.max(0, ...results.map((r) => r.maxCosine.length));
  return toCsv(
    ['layer', 'module', 'intruders', 'threshold', ...Array.from({ length: k }, (_, i) => `max_cos_${i + 1}`), ...Array.from({ length: k }, (_, i) => `sigma_tuned_${i + 1}`)],
    results.map((r) => [r.layer, r.target, r.count, threshold, ...r.maxCosine, ...r.tunedValues]),
  );
}

/** One row per generated token of every sample. */
export function contrastCsv(update: ContrastUpdate): string {
  return toCsv(
    ['sample', 'position', 'token_id', 'text', 'score', 'logp_expert', 'logp_amateur'],
    update.samples.flatMap((s, i) => s.tokens.map((t, j) => [i + 1, j + 1, t.token, t.text, t.score, t.logpExpert, t.logpAmateur])),
  );
}
