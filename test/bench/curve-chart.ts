/**
 * Loss curves as a standalone SVG, for BENCHMARKS.md: one panel per model with every path's per-step
 * loss (thin) and its running mean (thick), and under it the per-step difference of each path to the
 * first. Written by hand because the app's chart library draws on a canvas, which Node lacks, and a
 * static figure needs nothing more than polylines and a few ticks.
 */

export interface ChartCurve {
  /** The path's name in the legend, e.g. "f32". */
  label: string;
  losses: readonly number[];
}

export interface ChartPanel {
  title: string;
  /** The first curve is the baseline the difference panel is measured against. */
  curves: readonly ChartCurve[];
}

export interface ChartOptions {
  /** Steps in the running mean drawn thick (1 draws only the raw curve). */
  smooth?: number;
  /** A horizontal reference line on the loss panels, e.g. the best reachable loss. */
  floor?: { value: number; label: string };
}

const COLORS = ['#1f6fb4', '#e0701b', '#2a9d4b', '#b23a8f'];
const PANEL_W = 420;
const LOSS_H = 240;
const DIFF_H = 110;
const GAP = 34;
const MARGIN = { left: 56, right: 16, top: 40, bottom: 40 };

/** The running mean of the last `n` values at each step (fewer at the start). */
export function runningMean(values: readonly number[], n: number): number[] {
  const out: number[] = [];
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    sum += values[i];
    if (i >= n) sum -= values[i - n];
    out.push(sum / Math.min(i + 1, n));
  }
  return out;
}

/**
 * About `count` round tick values inside [lo, hi]: a step of 1, 2 or 5 times a power of ten, whichever
 * is nearest (on a log scale) to an even split of the range.
 */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const ratio = raw / power;
  const step = power * (ratio >= Math.sqrt(50) ? 10 : ratio >= Math.sqrt(10) ? 5 : ratio >= Math.sqrt(2) ? 2 : 1);
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

const escapeXml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const fmt = (v: number) => Number(v.toFixed(2)).toString();
const tickLabel = (v: number) => (Math.abs(v) < 1e-12 ? '0' : Number(v.toPrecision(3)).toString());

interface Frame {
  x: number;
  y: number;
  w: number;
  h: number;
  xMax: number;
  yLo: number;
  yHi: number;
}

function px(f: Frame, step: number, value: number): [number, number] {
  const x = f.x + ((step - 1) / Math.max(1, f.xMax - 1)) * f.w;
  const y = f.y + f.h - ((value - f.yLo) / (f.yHi - f.yLo || 1)) * f.h;
  return [x, y];
}

function polyline(f: Frame, values: readonly number[], style: string): string {
  const points = values.map((v, i) => px(f, i + 1, v).map(fmt).join(',')).join(' ');
  return `<polyline fill="none" ${style} points="${points}"/>`;
}

function axes(f: Frame, yTitle: string, xTitle: string | null): string[] {
  const out = [`<rect x="${fmt(f.x)}" y="${fmt(f.y)}" width="${fmt(f.w)}" height="${fmt(f.h)}" fill="none" stroke="#999"/>`];
  for (const v of niceTicks(f.yLo, f.yHi, 4)) {
    const [, y] = px(f, 1, v);
    out.push(`<line x1="${fmt(f.x)}" x2="${fmt(f.x + f.w)}" y1="${fmt(y)}" y2="${fmt(y)}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${fmt(f.x - 6)}" y="${fmt(y + 4)}" text-anchor="end">${tickLabel(v)}</text>`);
  }
  for (const s of niceTicks(1, f.xMax, 4).filter((s) => s >= 1)) {
    const [x] = px(f, s, f.yLo);
    out.push(`<line x1="${fmt(x)}" x2="${fmt(x)}" y1="${fmt(f.y + f.h)}" y2="${fmt(f.y + f.h + 4)}" stroke="#999"/>`);
    out.push(`<text x="${fmt(x)}" y="${fmt(f.y + f.h + 16)}" text-anchor="middle">${tickLabel(s)}</text>`);
  }
  out.push(`<text transform="translate(${fmt(f.x - 42)},${fmt(f.y + f.h / 2)}) rotate(-90)" text-anchor="middle">${escapeXml(yTitle)}</text>`);
  if (xTitle) out.push(`<text x="${fmt(f.x + f.w / 2)}" y="${fmt(f.y + f.h + 32)}" text-anchor="middle">${escapeXml(xTitle)}</text>`);
  return out;
}

/** Pads a range so that lines do not sit on the frame. */
function padded(lo: number, hi: number): [number, number] {
  const span = hi - lo || Math.abs(hi) || 1;
  return [lo - span * 0.05, hi + span * 0.05];
}

export function lossCurvesSvg(panels: readonly ChartPanel[], o: ChartOptions = {}): string {
  if (!panels.length) throw new Error('lossCurvesSvg: no panels to draw');
  for (const p of panels) {
    if (!p.curves.length) throw new Error(`lossCurvesSvg: panel "${p.title}" has no curves`);
    const n = p.curves[0].losses.length;
    if (!n || p.curves.some((c) => c.losses.length !== n)) throw new Error(`lossCurvesSvg: the curves of "${p.title}" must have the same, non-zero number of steps`);
    if (p.curves.some((c) => c.losses.some((l) => !Number.isFinite(l)))) throw new Error(`lossCurvesSvg: "${p.title}" has a non-finite loss`);
  }
  const smooth = Math.max(1, Math.floor(o.smooth ?? 1));
  const width = MARGIN.left + panels.length * PANEL_W + (panels.length - 1) * (GAP + MARGIN.left) + MARGIN.right;
  const height = MARGIN.top + LOSS_H + GAP + DIFF_H + MARGIN.bottom;
  const body: string[] = [];
  panels.forEach((p, i) => {
    const x = MARGIN.left + i * (PANEL_W + GAP + MARGIN.left);
    const steps = p.curves[0].losses.length;
    const all = p.curves.flatMap((c) => c.losses);
    // The floor only where the losses come near it: far below, it would flatten the curves to a line.
    const [yLo, yHi] = padded(Math.min(...all), Math.max(...all));
    const loss: Frame = { x, y: MARGIN.top, w: PANEL_W, h: LOSS_H, xMax: steps, yLo, yHi };
    body.push(`<text x="${fmt(x)}" y="${MARGIN.top - 10}" font-weight="bold">${escapeXml(p.title)}</text>`);
    body.push(...axes(loss, 'loss (nats)', null));
    if (o.floor && o.floor.value >= yLo && o.floor.value <= yHi) {
      const [, y] = px(loss, 1, o.floor.value);
      body.push(`<line x1="${fmt(x)}" x2="${fmt(x + PANEL_W)}" y1="${fmt(y)}" y2="${fmt(y)}" stroke="#777" stroke-dasharray="2,3"/>`);
      body.push(`<text x="${fmt(x + PANEL_W - 4)}" y="${fmt(y - 4)}" text-anchor="end" fill="#555">${escapeXml(o.floor.label)}</text>`);
    }
    p.curves.forEach((c, k) => {
      const color = COLORS[k % COLORS.length];
      body.push(polyline(loss, c.losses, `stroke="${color}" stroke-opacity="0.35" stroke-width="1"`));
      if (smooth > 1) body.push(polyline(loss, runningMean(c.losses, smooth), `stroke="${color}" stroke-width="2.2"${k ? ' stroke-dasharray="6,3"' : ''}`));
      // The legend sits on the title line, right-aligned, clear of the curves.
      const lx = x + PANEL_W - (p.curves.length - k) * 70;
      body.push(`<rect x="${fmt(lx)}" y="${MARGIN.top - 17}" width="14" height="3" fill="${color}"/>`);
      body.push(`<text x="${fmt(lx + 18)}" y="${MARGIN.top - 12}">${escapeXml(c.label)}</text>`);
    });
    const base = p.curves[0].losses;
    const diffs = p.curves.slice(1).map((c) => c.losses.map((l, s) => l - base[s]));
    const flat = diffs.flat();
    const bound = Math.max(1e-6, ...flat.map(Math.abs));
    const diff: Frame = { x, y: MARGIN.top + LOSS_H + GAP, w: PANEL_W, h: DIFF_H, xMax: steps, yLo: -bound * 1.1, yHi: bound * 1.1 };
    const gapTitle = p.curves.length === 2 ? `${p.curves[1].label} − ${p.curves[0].label}` : `− ${p.curves[0].label}`;
    body.push(...axes(diff, gapTitle, 'step'));
    diffs.forEach((d, k) => body.push(polyline(diff, d, `stroke="${COLORS[(k + 1) % COLORS.length]}" stroke-width="1.2"`)));
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}
