// Weight access for int8 weights, prepended to a matmul body (matmul.fwd, matmul.gemv, matmul.bwd).
// The body declares `weight` (array<u32>: [N, K] int8 packed four to a word along K, element 4w+j in
// byte j, two's complement), `scales` (array<f32>: one per row n, W[n, k] = q[n, k] * scales[n]) and
// `p.K`, the row length, a multiple of 4.

// q[n, 4*quad .. 4*quad + 3], not yet scaled. extractBits on an i32 sign-extends each byte.
fn weight_quad(n: u32, quad: u32) -> vec4<f32> {
  let w = bitcast<i32>(weight[n * (p.K >> 2u) + quad]);
  return vec4<f32>(vec4<i32>(extractBits(w, 0u, 8u), extractBits(w, 8u, 8u), extractBits(w, 16u, 8u), extractBits(w, 24u, 8u)));
}

fn row_scale(n: u32) -> f32 {
  return scales[n];
}
