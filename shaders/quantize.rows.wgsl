// Per-row symmetric int8 quantisation of activations or output gradients, for the int8 compute path
// (matmul.i8i8.fwd / matmul.i8i8.bwd), and of f16 weight tables (the optional int8 lm_head): one
// workgroup per row,
//   v[c]      = inp[row, c] * col_scale[c]      (col_scale only where given: the backward pass folds
//                                                the weight's per-row scales into the gradient here)
//   scale     = max_c |v[c]| / 127
//   q[row, c] = round_half_away(v[c] / scale), in [-127, 127]; 0 for an all-zero row (scale 0)
// q is packed four to a u32 word along the row (element 4w+j in byte j, two's complement: the weight
// format's packing), the row padded with zeros to a whole word. A row holding a NaN or an infinity
// gets a NaN scale, so everything computed from it is NaN, as it would be in f32: a training step
// with a non-finite gradient is then still recognised and skipped.
// The `requires` directive, lib/row_reduce.wgsl and the input (binding 3 and `input`: f32, or f16
// two to a word) are prepended by quantize.ts.
//
// Cost: two reads of the row (the second from cache) and a quarter of its bytes written; it runs
// once per matmul input, and once for q/k/v/fc1 together, which read the same LayerNorm output.

struct Params {
  rows: u32,
  cols: u32,
  words: u32,          // ceil(cols / 4): the packed row length
  has_col_scale: u32,  // 0: the col_scale slot holds another read-only tensor and is not read
  grid_x: u32,         // workgroups along x; rows past it fold into y
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> q: array<u32>;
@group(0) @binding(2) var<storage, read_write> scales: array<f32>;
@group(0) @binding(4) var<storage, read> col_scale: array<f32>;

const EXPONENT_MASK = 0x7f800000u;

fn value(base: u32, c: u32) -> f32 {
  if (c >= p.cols) { return 0.0; }
  var v = input(base + c);
  if (p.has_col_scale != 0u) { v *= col_scale[c]; }
  return v;
}

// Round half away from zero, as the weights were quantised (weight-formats.ts), then clamp.
fn quantize(v: f32, inv: f32) -> i32 {
  let x = v * inv;
  return clamp(i32(sign(x) * floor(abs(x) + 0.5)), -127, 127);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * p.grid_x;
  if (row >= p.rows) { return; } // uniform per workgroup: the reductions' barriers stay uniform
  let base = row * p.cols;

  var amax = 0.0;
  var non_finite = 0u;
  for (var c = lid; c < p.cols; c += WG) {
    let v = value(base, c);
    // Tested on the bits: compilers may assume floats are finite and fold isNan-style comparisons.
    non_finite |= u32((bitcast<u32>(v) & EXPONENT_MASK) == EXPONENT_MASK);
    amax = max(amax, abs(v));
  }
  amax = wg_max(lid, amax);
  let bad = wg_max_u32(lid, non_finite);

  let inv = select(0.0, 127.0 / amax, amax > 0.0);
  for (var w = lid; w < p.words; w += WG) {
    let c = 4u * w;
    let v = vec4<i32>(
      quantize(value(base, c), inv),
      quantize(value(base, c + 1u), inv),
      quantize(value(base, c + 2u), inv),
      quantize(value(base, c + 3u), inv),
    );
    q[row * p.words + w] = pack4xI8(v);
  }
  if (lid == 0u) {
    // A quiet NaN's bits (0x7fc00000) built from the runtime flag: a NaN constant would not compile.
    scales[row] = select(amax / 127.0, bitcast<f32>(EXPONENT_MASK | (bad << 22u)), bad != 0u);
  }
}
