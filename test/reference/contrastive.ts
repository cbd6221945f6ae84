import { rngU32 } from '../../src/engine/kernels/rng';

/**
 * The contrastive choice of shaders/contrastive.select.wgsl on the CPU: log-softmax of both rows in
 * float64, the plausibility cut p_e >= alpha · max p_e (compared in f32 as the shader does, so the same
 * tokens pass), score = log p_e − log p_a, then the argmax of score (greedy) or of score / t + Gumbel
 * noise from the same counter hash. Greedy keys are computed in f32 as the shader does, so a greedy
 * choice must match exactly (ties to the smallest index); a draw's keys carry f32 logarithms on the
 * GPU, so the reference says how close it came to flipping: the gap between the winner's key and the
 * runner-up's.
 */

export interface ContrastiveRef {
  token: number;
  score: number;
  logpExpert: number;
  logpAmateur: number;
  /** Plausible tokens. */
  kept: number;
  /** Winner's key minus the best other key (Infinity when only one token is plausible). */
  margin: number;
}

function logSumExp(row: ArrayLike<number>): { max: number; lse: number } {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]);
  let s = 0;
  for (let i = 0; i < row.length; i++) s += Math.exp(row[i] - max);
  return { max, lse: max + Math.log(s) };
}

export function contrastiveRef(expert: ArrayLike<number>, amateur: ArrayLike<number>, plausibility: number, temperature: number, seed: number, step: number): ContrastiveRef {
  const e = logSumExp(expert);
  const a = logSumExp(amateur);
  const cut = plausibility > 0 ? Math.fround(Math.fround(e.max) + Math.fround(Math.log(plausibility))) : -Infinity;
  let best = -1;
  let bestKey = -Infinity;
  let second = -Infinity;
  let kept = 0;
  for (let i = 0; i < expert.length; i++) {
    if (expert[i] < cut) continue;
    kept++;
    // Greedy keys are the shader's exactly: one correctly rounded f32 subtraction.
    let key = Math.fround(expert[i] - amateur[i]);
    if (temperature > 0) {
      const u = ((rngU32(seed, step, i) >>> 8) + 0.5) * 2 ** -24;
      key = key / temperature - Math.log(-Math.log(u));
    }
    if (best < 0 || key > bestKey) {
      second = bestKey;
      bestKey = key;
      best = i;
    } else if (key > second) second = key;
  }
  const logpExpert = expert[best] - e.lse;
  const logpAmateur = amateur[best] - a.lse;
  return { token: best, score: logpExpert - logpAmateur, logpExpert, logpAmateur, kept, margin: kept > 1 ? bestKey - second : Infinity };
}
