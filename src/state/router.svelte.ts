/** The app's sections, addressed by the URL hash (#model, #data, ...) so links and reloads keep the place. */
export const SECTIONS = ['model', 'data', 'train', 'evaluate', 'demo', 'adapters'] as const;
export type Section = (typeof SECTIONS)[number];

function fromHash(hash: string): Section {
  const name = hash.replace(/^#\/?/, '').split(/[/?]/)[0];
  return (SECTIONS as readonly string[]).includes(name) ? (name as Section) : 'model';
}

export class Router {
  section = $state<Section>(fromHash(globalThis.location?.hash ?? ''));

  constructor() {
    globalThis.addEventListener?.('hashchange', () => {
      this.section = fromHash(location.hash);
    });
  }

  go(section: Section): void {
    if (location.hash !== `#${section}`) location.hash = section;
    this.section = section;
  }
}

export const router = new Router();
