/**
 * What the app's charts share: the page's colours, read from its CSS custom properties where the chart
 * is drawn, and the options every chart takes.
 */

export interface ChartColors {
  /** Text: titles, ticks, the legend. */
  fg: string;
  /** Grid lines. */
  grid: string;
  accent: string;
  warn: string;
}

/** The theme's colours where `el` is drawn, with the light theme's as fallbacks. */
export function chartColors(el: Element): ChartColors {
  const style = getComputedStyle(el);
  const read = (name: string, fallback: string) => style.getPropertyValue(name).trim() || fallback;
  return { fg: read('--fg', '#1b1d22'), grid: read('--border', '#d9dce3'), accent: read('--accent', '#3b5bdb'), warn: read('--warn', '#b35c00') };
}

/** Sized by its box (the box sets the height), drawn at once: no animation. */
export const SIZED_BY_BOX = { responsive: true, maintainAspectRatio: false, animation: false } as const;

/** The legend below the chart, in the text colour. */
export function legendBelow(fg: string) {
  return { position: 'bottom', labels: { color: fg, boxWidth: 12 } } as const;
}
