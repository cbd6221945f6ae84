/**
 * Float64 CPU reference of causal multi-head attention with a KV cache and right padding, written
 * the plain way (full score rows, explicit softmax) so that it shares no structure with the tiled
 * GPU kernels it checks.
 *
 * Layouts as in src/engine/kernels/attention.ts: q and out [batch*seq, heads*headDim]; k and v
 * [batch, kvRows, heads*headDim] (kvRows = seq for fresh projections, the cache capacity otherwise);
 * lse [batch, heads, seq]. Query t of sequence b sits at position pastLen + t and sees keys
 * 0..pastLen+t that are also below lengths[b]; a query at or past lengths[b] gives zeros. With
 * leftPad, sequence b starts at row leftPad[b]: it sees no key before that, and a query before it gives zeros.
 */

export interface AttentionRefShape {
  batch: number;
  seq: number;
  heads: number;
  headDim: number;
  pastLen?: number;
  /** Rows per sequence in k and v; defaults to pastLen + seq. */
  kvRows?: number;
  /** Valid positions per sequence (right padding); none means all. */
  lengths?: ArrayLike<number>;
  /** Rows of left padding per sequence; none means 0. */
  leftPad?: ArrayLike<number>;
}

function dims(s: AttentionRefShape) {
  const pastLen = s.pastLen ?? 0;
  const kvLen = pastLen + s.seq;
  const kvRows = s.kvRows ?? kvLen;
  const width = s.heads * s.headDim;
  const validLen = (b: number) => Math.min(kvLen, s.lengths ? s.lengths[b] : kvLen);
  return { pastLen, kvLen, kvRows, width, validLen, scale: 1 / Math.sqrt(s.headDim) };
}

/** The probabilities of one query row (over keys first..first+n-1) and its log-sum-exp, or null for a padded query. */
function softmaxRow(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  s: AttentionRefShape,
  b: number,
  h: number,
  t: number,
): { first: number; p: Float64Array; lse: number } | null {
  const { pastLen, kvRows, width, validLen, scale } = dims(s);
  const pos = pastLen + t;
  const len = validLen(b);
  const first = s.leftPad ? s.leftPad[b] : 0;
  if (pos >= len || pos < first) return null;
  const n = pos + 1 - first;
  const scores = new Float64Array(n);
  const qBase = (b * s.seq + t) * width + h * s.headDim;
  for (let j = 0; j < n; j++) {
    const kBase = (b * kvRows + first + j) * width + h * s.headDim;
    let dot = 0;
    for (let d = 0; d < s.headDim; d++) dot += q[qBase + d] * k[kBase + d];
    scores[j] = dot * scale;
  }
  let max = -Infinity;
  for (const x of scores) max = Math.max(max, x);
  let sum = 0;
  for (let j = 0; j < n; j++) sum += Math.exp(scores[j] - max);
  const lse = max + Math.log(sum);
  return { first, p: scores.map((x) => Math.exp(x - lse)), lse };
}

export function attentionForwardRef(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, s: AttentionRefShape) {
  const { kvRows, width } = dims(s);
  const out = new Float64Array(s.batch * s.seq * width);
  const lse = new Float64Array(s.batch * s.heads * s.seq);
  for (let b = 0; b < s.batch; b++) {
    for (let h = 0; h < s.heads; h++) {
      for (let t = 0; t < s.seq; t++) {
        const row = softmaxRow(q, k, s, b, h, t);
        if (!row) continue;
        lse[(b * s.heads + h) * s.seq + t] = row.lse;
        const oBase = (b * s.seq + t) * width + h * s.headDim;
        row.p.forEach((pj, j) => {
          const vBase = (b * kvRows + row.first + j) * width + h * s.headDim;
          for (let d = 0; d < s.headDim; d++) out[oBase + d] += pj * v[vBase + d];
        });
      }
    }
  }
  return { out, lse };
}

/**
 * Gradients of sum(dout * out) with respect to q, k and v, through the softmax Jacobian written out:
 * dS_j = P_j (dP_j - sum_k P_k dP_k), dP_j = dout . v_j. dk and dv have k's and v's layout.
 */
export function attentionBackwardRef(
  dout: ArrayLike<number>,
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  s: AttentionRefShape,
) {
  const { kvRows, width, scale } = dims(s);
  const dq = new Float64Array(s.batch * s.seq * width);
  const dk = new Float64Array(s.batch * kvRows * width);
  const dv = new Float64Array(s.batch * kvRows * width);
  for (let b = 0; b < s.batch; b++) {
    for (let h = 0; h < s.heads; h++) {
      for (let t = 0; t < s.seq; t++) {
        const row = softmaxRow(q, k, s, b, h, t);
        if (!row) continue;
        const qBase = (b * s.seq + t) * width + h * s.headDim;
        const n = row.p.length;
        const dP = new Float64Array(n);
        for (let j = 0; j < n; j++) {
          const vBase = (b * kvRows + row.first + j) * width + h * s.headDim;
          for (let d = 0; d < s.headDim; d++) dP[j] += dout[qBase + d] * v[vBase + d];
        }
        let expected = 0;
        for (let j = 0; j < n; j++) expected += row.p[j] * dP[j];
        for (let j = 0; j < n; j++) {
          const kvBase = (b * kvRows + row.first + j) * width + h * s.headDim;
          const dS = row.p[j] * (dP[j] - expected) * scale;
          for (let d = 0; d < s.headDim; d++) {
            dv[kvBase + d] += row.p[j] * dout[qBase + d];
            dq[qBase + d] += dS * k[kvBase + d];
            dk[kvBase + d] += dS * q[qBase + d];
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}
