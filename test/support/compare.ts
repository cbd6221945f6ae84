/**
 * Tensor comparison in the style of llm.c's tests: relative error ‖ours − ref‖ / ‖ref‖, the largest
 * absolute difference and where it is, and the first values of both, printed for every tensor checked.
 */
export interface Comparison {
  name: string;
  relError: number;
  maxAbsDiff: number;
  maxAt: number;
  count: number;
}

export function compareTensors(name: string, ours: ArrayLike<number>, ref: ArrayLike<number>, quiet = false): Comparison {
  if (ours.length !== ref.length) throw new Error(`${name}: length ${ours.length} vs reference ${ref.length}`);
  let diff2 = 0;
  let ref2 = 0;
  let maxAbsDiff = 0;
  let maxAt = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = ours[i] - ref[i];
    if (!Number.isFinite(ours[i])) {
      maxAbsDiff = Infinity;
      maxAt = i;
      diff2 = Infinity;
      break;
    }
    diff2 += d * d;
    ref2 += ref[i] * ref[i];
    if (Math.abs(d) > maxAbsDiff) {
      maxAbsDiff = Math.abs(d);
      maxAt = i;
    }
  }
  const relError = ref2 === 0 ? Math.sqrt(diff2) : Math.sqrt(diff2 / ref2);
  if (!quiet) {
    const first = (a: ArrayLike<number>) => Array.from({ length: Math.min(4, a.length) }, (_, i) => a[i].toPrecision(6)).join(', ');
    console.log(
      `${name.padEnd(40)} rel ${relError.toExponential(2)}  max|Δ| ${maxAbsDiff.toExponential(2)} @${maxAt}  ours [${first(ours)}]  ref [${first(ref)}]`,
    );
  }
  return { name, relError, maxAbsDiff, maxAt, count: ref.length };
}

/** Deterministic pseudo-random numbers (mulberry32) so a failing shape can be replayed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomArray(n: number, random: () => number, scale = 1, offset = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (random() * 2 - 1) * scale + offset;
  return a;
}
