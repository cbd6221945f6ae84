import { dropThreshold, rngKeep } from '../../src/engine/kernels/rng';

/** Float64 reference of dropout with the shared hash: the same mask, element for element. */
export function dropoutMaskRef(n: number, p: number, seed: number, salt: number): Uint8Array {
  const threshold = dropThreshold(p);
  return Uint8Array.from({ length: n }, (_, i) => (rngKeep(seed, salt, i, threshold) ? 1 : 0));
}

export function dropoutRef(x: ArrayLike<number>, p: number, seed: number, salt: number): Float64Array {
  const keep = dropoutMaskRef(x.length, p, seed, salt);
  const scale = 1 / (1 - p);
  return Float64Array.from(x, (v, i) => (keep[i] ? v * scale : 0));
}
