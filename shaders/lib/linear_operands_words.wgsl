// The operands of a linear body (bindings 1-3) as 4-byte words, for any row length: weights of every
// segment, and the activations of segments 0 and 1 ([M, K_s] row-major each). Loads past a row's end
// give zeros, so partial chunks add nothing.

@group(0) @binding(1) var<storage, read> weight: array<u32>;
@group(0) @binding(2) var<storage, read> inp: array<f32>;
@group(0) @binding(3) var<storage, read> inp2: array<f32>; // segment 1's activations (inp again with one segment)

// Words 4c..4c+3 of the weight row that starts at word `row`; zero past the row's row_words(K).
fn load_w4(row: u32, c: u32, K: u32) -> vec4<u32> {
  let n = row_words(K);
  var w = vec4<u32>(0u);
  for (var j = 0u; j < 4u; j++) {
    if (4u * c + j < n) { w[j] = weight[row + 4u * c + j]; }
  }
  return w;
}

fn act(s: u32, i: u32) -> f32 {
  if (s == 0u) { return inp[i]; }
  return inp2[i];
}

// act_s[m, k..k+3]; zero past K.
fn load_x4(s: u32, m: u32, k: u32, K: u32) -> vec4<f32> {
  var x = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) {
    if (k + j < K) { x[j] = act(s, m * K + k + j); }
  }
  return x;
}
