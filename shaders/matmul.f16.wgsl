// Weight access for f16 weights, prepended to a matmul body (matmul.fwd, matmul.gemv, matmul.bwd).
// The body declares `weight` (array<u32>: [N, K] IEEE halves packed two to a word along K, the
// lower-indexed element in the low half) and `p.K`, the row length. unpack2x16float needs no
// shader-f16 feature. `scales` is never touched, so the pipeline's layout leaves it out.
// K need only be even, so a row's last quad may hold two elements; its missing half reads as zero
// rather than as the start of the next row.

// W[n, 4*quad .. 4*quad + 3]; the caller guarantees 4*quad < K.
fn weight_quad(n: u32, quad: u32) -> vec4<f32> {
  let word = n * (p.K >> 1u) + 2u * quad;
  let lo = unpack2x16float(weight[word]);
  var hi = vec2<f32>(0.0);
  if (4u * quad + 2u < p.K) { hi = unpack2x16float(weight[word + 1u]); }
  return vec4<f32>(lo, hi);
}

fn row_scale(n: u32) -> f32 {
  return 1.0;
}
