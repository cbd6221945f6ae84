// LayerNorm backward: the input gradient only (Phi-2's LayerNorm parameters are frozen under LoRA).
//   xhat = (x - mean) * rstd,  g = dout * weight
//   dinp = rstd * (g - mean(g) - xhat * mean(g * xhat))
// With accumulate = 1 the result is added to dinp: in Phi-2's parallel block the residual's gradient
// is already there, and the attention and MLP branches' gradients arrive summed in dout.

struct Params {
  rows: u32,
  cols: u32,
  accumulate: u32,
  grid_x: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dinp: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read> inp: array<f32>;
@group(0) @binding(4) var<storage, read> weight: array<f32>;
@group(0) @binding(5) var<storage, read> mean: array<f32>;
@group(0) @binding(6) var<storage, read> rstd: array<f32>;

override WG: u32 = 128u; // a power of two

var<workgroup> partial_a: array<f32, WG>;
var<workgroup> partial_b: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * p.grid_x;
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  let mu = mean[row];
  let r = rstd[row];

  var sum_g = 0.0;
  var sum_gx = 0.0;
  for (var c = lid; c < p.cols; c += WG) {
    let g = dout[base + c] * weight[c];
    sum_g += g;
    sum_gx += g * (inp[base + c] - mu) * r;
  }
  partial_a[lid] = sum_g;
  partial_b[lid] = sum_gx;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      partial_a[lid] += partial_a[lid + s];
      partial_b[lid] += partial_b[lid + s];
    }
    workgroupBarrier();
  }
  let n = f32(p.cols);
  let mean_g = partial_a[0] / n;
  let mean_gx = partial_b[0] / n;

  for (var c = lid; c < p.cols; c += WG) {
    let xhat = (inp[base + c] - mu) * r;
    let d = r * (dout[base + c] * weight[c] - mean_g - xhat * mean_gx);
    if (p.accumulate != 0u) { dinp[base + c] += d; } else { dinp[base + c] = d; }
  }
}
