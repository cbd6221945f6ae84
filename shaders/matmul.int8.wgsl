// Weight access for int8 weights, prepended to a matmul body (matmul.fwd, projection.in, matmul.bwd);
// it reads no binding but `weight`, so every kernel can declare its own scales.
// The kernel declares `weight` (array<u32>: rows of int8 packed four to a word along K, element 4w+j in
// byte j, two's complement) and reads one f32 scale per row n from where it keeps them:
// W[n, k] = q[n, k] * scale[n]. Rows are a multiple of 4 long.

const HAS_SCALES = true;

// Words of one row of `k_len` elements.
fn row_words(k_len: u32) -> u32 {
  return k_len >> 2u;
}

// q[row, 4*quad .. 4*quad + 3] of the row whose first word is `base`, not yet scaled. extractBits on
// an i32 sign-extends each byte.
fn weight_quad_at(base: u32, quad: u32, k_len: u32) -> vec4<f32> {
  let w = bitcast<i32>(weight[base + quad]);
  return vec4<f32>(vec4<i32>(extractBits(w, 0u, 8u), extractBits(w, 8u, 8u), extractBits(w, 16u, 8u), extractBits(w, 24u, 8u)));
}
