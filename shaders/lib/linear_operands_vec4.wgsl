// The operands of a linear body (bindings 1-3) as 16-byte vectors, for rows of whole 16-byte chunks
// from 16-byte boundaries (int8 K % 16 == 0, f16 K % 8 == 0 for the GEMV, K % 16 == 0 for the GEMM):
// weights of every segment, and the activations of segments 0 and 1 ([M, K_s] row-major each).

@group(0) @binding(1) var<storage, read> weight: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> inp: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> inp2: array<vec4<f32>>; // segment 1's activations (inp again with one segment)

// Words 4c..4c+3 of the weight row that starts at word `row` (a multiple of 4).
fn load_w4(row: u32, c: u32, K: u32) -> vec4<u32> {
  return weight[row / 4u + c];
}

// act_s[m, k..k+3], k a multiple of 4.
fn load_x4(s: u32, m: u32, k: u32, K: u32) -> vec4<f32> {
  let i = (m * K + k) / 4u;
  if (s == 0u) { return inp[i]; }
  return inp2[i];
}
