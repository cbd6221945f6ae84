// Weight access for f16 weights, prepended to a matmul body (matmul.fwd, projection.in, matmul.bwd);
// it reads no binding but `weight`, so every kernel can declare its own scales.
// The kernel declares `weight` (array<u32>: rows of IEEE halves packed two to a word along K, the
// lower-indexed element in the low half). unpack2x16float needs no shader-f16 feature. There are no
// scales (HAS_SCALES): kernels skip reading them.
// K need only be even, so a row's last quad may hold two elements; its missing half reads as zero
// rather than as the start of the next row.

const HAS_SCALES = false;

// Words of one row of `k_len` elements.
fn row_words(k_len: u32) -> u32 {
  return k_len >> 1u;
}

// W[row, 4*quad .. 4*quad + 3] of the row whose first word is `base`; the caller guarantees 4*quad < k_len.
fn weight_quad_at(base: u32, quad: u32, k_len: u32) -> vec4<f32> {
  let word = base + 2u * quad;
  let lo = unpack2x16float(weight[word]);
  var hi = vec2<f32>(0.0);
  if (4u * quad + 2u < k_len) { hi = unpack2x16float(weight[word + 1u]); }
  return vec4<f32>(lo, hi);
}
