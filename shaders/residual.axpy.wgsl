// out (=, or +=) alpha * a element-wise. `accumulate` adds in place on out: residual accumulation
// (alpha = 1, where the product is exact, so this is bit-identical to out + a) and gradient
// accumulation. `scaled_copy` writes alpha * a; `scale_in_place` scales out itself (a single binding,
// since WebGPU forbids binding one buffer range as both written and read).

struct Params {
  n: u32,
  grid_x: u32,
  alpha: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn accumulate(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.grid_x) * WG + lid;
  if (i >= p.n) { return; }
  out[i] += p.alpha * a[i];
}

@compute @workgroup_size(WG)
fn scaled_copy(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.grid_x) * WG + lid;
  if (i >= p.n) { return; }
  out[i] = p.alpha * a[i];
}

@compute @workgroup_size(WG)
fn scale_in_place(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.grid_x) * WG + lid;
  if (i >= p.n) { return; }
  out[i] = p.alpha * out[i];
}
