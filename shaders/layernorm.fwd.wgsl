// LayerNorm forward, one workgroup per row (Phi-2: eps 1e-5, biased variance).
// Saves mean and rstd per row for the backward pass. Two-pass variance for accuracy in f32.

struct Params {
  rows: u32,
  cols: u32,
  eps: f32,
  grid_x: u32,   // workgroups along x; rows past 65535 fold into y
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(4) var<storage, read> inp: array<f32>;
@group(0) @binding(5) var<storage, read> weight: array<f32>;
@group(0) @binding(6) var<storage, read> bias: array<f32>;

override WG: u32 = 128u; // a power of two

var<workgroup> partial: array<f32, WG>;

fn workgroup_sum(lid: u32, v: f32) -> f32 {
  partial[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) { partial[lid] += partial[lid + s]; }
    workgroupBarrier();
  }
  let total = partial[0];
  workgroupBarrier();
  return total;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * p.grid_x;
  if (row >= p.rows) { return; } // uniform across the workgroup, so barriers stay uniform
  let base = row * p.cols;
  let n = f32(p.cols);

  var s = 0.0;
  for (var c = lid; c < p.cols; c += WG) { s += inp[base + c]; }
  let mu = workgroup_sum(lid, s) / n;

  var ss = 0.0;
  for (var c = lid; c < p.cols; c += WG) {
    let d = inp[base + c] - mu;
    ss += d * d;
  }
  let r = inverseSqrt(workgroup_sum(lid, ss) / n + p.eps);

  for (var c = lid; c < p.cols; c += WG) {
    out[base + c] = (inp[base + c] - mu) * r * weight[c] + bias[c];
  }
  if (lid == 0u) {
    mean[row] = mu;
    rstd[row] = r;
  }
}
