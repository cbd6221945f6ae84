/**
 * The sampling procedure of shaders/sampling.wgsl on the CPU, in float64, by sorting: pi orders the
 * row by (logit descending, index ascending), the same order as the shader's u32 keys. Besides the
 * token it reports how close the two float decisions came to flipping (top-p's cut and the
 * inverse-CDF walk), so tests can avoid near-ties that f32 rounding may legitimately decide otherwise.
 */

export interface SampleOptionsRef {
  temperature: number;
  topK: number;
  topP: number;
}

export interface SampleRef {
  id: number;
  /** The kept set P, in pi order. */
  kept: number[];
  /** Smallest |cumulative weight - target| / total over top-p's cut (Infinity when not used). */
  cutMargin: number;
  /** Smallest |cumulative weight - u * total| / total over the walk (Infinity when greedy). */
  walkMargin: number;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The shader's order_key: larger floats give larger u32 keys. */
export function orderKey(x: number): number {
  f32[0] = x;
  const b = u32[0];
  return b & 0x80000000 ? ~b >>> 0 : (b | 0x80000000) >>> 0;
}

export function sampleRef(row: ArrayLike<number>, u: number, options: SampleOptionsRef): SampleRef {
  const n = row.length;
  const keys = Array.from(row, orderKey);
  const pi = Array.from({ length: n }, (_, i) => i).sort((a, b) => keys[b] - keys[a] || a - b);
  const temperature = Math.fround(options.temperature);
  if (temperature <= 0 || options.topK === 1) return { id: pi[0], kept: [pi[0]], cutMargin: Infinity, walkMargin: Infinity };

  const xmax = row[pi[0]];
  const w = Array.from(row, (x) => Math.exp((x - xmax) / temperature));
  const k = options.topK > 0 && options.topK < n ? options.topK : n;
  const inK = pi.slice(0, k);
  const sumK = inK.reduce((s, i) => s + w[i], 0);

  let kept = inK;
  let cutMargin = Infinity;
  const topP = Math.fround(options.topP);
  if (topP < 1) {
    const target = topP * sumK;
    let cum = 0;
    let cut = inK.length - 1;
    for (let j = 0; j < inK.length; j++) {
      cum += w[inK[j]];
      cutMargin = Math.min(cutMargin, Math.abs(cum - target) / sumK);
      if (cum >= target) {
        cut = j;
        break;
      }
    }
    kept = inK.slice(0, cut + 1);
  }

  const byIndex = [...kept].sort((a, b) => a - b);
  const total = byIndex.reduce((s, i) => s + w[i], 0);
  const target = Math.fround(u) * total;
  let cum = 0;
  let id = byIndex[byIndex.length - 1];
  let walkMargin = Infinity;
  let found = false;
  for (const i of byIndex) {
    cum += w[i];
    walkMargin = Math.min(walkMargin, Math.abs(cum - target) / total);
    if (!found && cum > target) {
      id = i;
      found = true;
    }
  }
  return { id, kept, cutMargin, walkMargin };
}
