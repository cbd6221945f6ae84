import type { LabeledPool } from './pools';
import type { SeededRandom } from '../random';

/** One few-shot draw from a labelled pool, before shuffling and labelling (which depend on the format). */
export interface FewShotDraw {
  query: { text: string; label: string };
  /** perClass exemplars of each class, grouped in class order: shuffle before rendering. */
  exemplars: Array<{ text: string; label: string }>;
}

export class PoolTooSmallError extends Error {
  override name = 'PoolTooSmallError';
}

/**
 * Picks a query and `perClass` exemplars of every class. No exemplar is the query or has the query's text,
 * and no two exemplars share a text (pools hold duplicate tweets): the answer is never in the prompt.
 *   query 'uniform':  any row, so classes appear as often as in the pool (the paper's evaluation);
 *   query 'balanced': a uniformly chosen class first, then a row of it (training data without a label prior).
 */
export function drawFewShot(pool: LabeledPool, rng: SeededRandom, perClass: number, query: 'uniform' | 'balanced'): FewShotDraw {
  if (!Number.isInteger(perClass) || perClass < 1) throw new Error(`exemplars per class must be a positive integer, got ${perClass}`);
  const byClass = classIndex(pool);
  let queryIndex: number;
  if (query === 'uniform') {
    queryIndex = rng.int(0, pool.rows.length - 1);
  } else {
    const classes = pool.classes.filter((c) => byClass.get(c)!.length > 0);
    queryIndex = rng.pick(byClass.get(rng.pick(classes))!);
  }
  const q = pool.rows[queryIndex];
  const usedTexts = new Set<string>([q.text]);
  const exemplars: Array<{ text: string; label: string }> = [];
  for (const c of pool.classes) {
    const candidates = byClass.get(c)!;
    const order = lazyPermutation(candidates.length, rng);
    let got = 0;
    for (let k = order(); k >= 0 && got < perClass; k = order()) {
      const row = pool.rows[candidates[k]];
      if (candidates[k] === queryIndex || usedTexts.has(row.text)) continue;
      usedTexts.add(row.text);
      exemplars.push(row);
      got++;
    }
    if (got < perClass) {
      throw new PoolTooSmallError(
        `${pool.name}: class "${pool.labelWords[c]}" has ${got} usable distinct texts besides the query; ${perClass} exemplars per class are needed.`,
      );
    }
  }
  return { query: q, exemplars };
}

const indexCache = new WeakMap<LabeledPool, Map<string, number[]>>();

function classIndex(pool: LabeledPool): Map<string, number[]> {
  let index = indexCache.get(pool);
  if (!index) {
    index = new Map(pool.classes.map((c) => [c, [] as number[]]));
    pool.rows.forEach((r, k) => index!.get(r.label)?.push(k));
    indexCache.set(pool, index);
  }
  return index;
}

/** A random permutation of [0, n) produced one element at a time (sparse Fisher-Yates); -1 when exhausted. */
function lazyPermutation(n: number, rng: SeededRandom): () => number {
  const swapped = new Map<number, number>();
  let i = 0;
  return () => {
    if (i >= n) return -1;
    const j = rng.int(i, n - 1);
    const atJ = swapped.get(j) ?? j;
    swapped.set(j, swapped.get(i) ?? i);
    i++;
    return atJ;
  };
}
