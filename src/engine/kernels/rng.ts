import rngWgsl from '../../../shaders/lib/rng.wgsl?raw';
import type { ReplayWord } from '../gpu/encoder';

/**
 * The CPU twin of shaders/lib/rng.wgsl: counter-based random numbers for dropout masks. Kernels that
 * drop prepend RNG_WGSL to their shader source (WGSL has no includes).
 */
export const RNG_WGSL = rngWgsl;

export function pcgHash(v: number): number {
  const state = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

export function rngU32(seed: number, salt: number, index: number): number {
  return pcgHash((index ^ pcgHash((salt ^ pcgHash(seed)) >>> 0)) >>> 0);
}

/** floor(p * 2^32), clamped: an element is kept when its hash is at least this. */
export function dropThreshold(p: number): number {
  if (!(p >= 0 && p < 1)) throw new Error(`dropout probability must be in [0, 1), got ${p}`);
  return Math.min(0xffffffff, Math.floor(p * 2 ** 32));
}

/**
 * A dropout seed's word in a captured pass: the replay's `seed` (a training step records its passes
 * once and replays them with each micro-batch's seed; see KernelEncoder.capture).
 */
export const REPLAY_SEED: ReplayWord = (value) => value('seed');

export function rngKeep(seed: number, salt: number, index: number, threshold: number): boolean {
  return rngU32(seed, salt, index) >= threshold;
}
