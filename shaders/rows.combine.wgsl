// New rows as combinations of old ones: out[i, k] = sum over j of t[i, j] * x[j, k], with t [q, p] small
// (a basis change computed on the CPU) and x [p, n] long rows. One thread per output element; the
// threads of a workgroup share i and read consecutive k, so x's reads coalesce and t's broadcast.

struct Params {
  q: u32,
  p: u32,
  n: u32,
  blocks_k: u32, // workgroups per output row
  grid_x: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> t: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let g = wid.x + wid.y * params.grid_x;
  let i = g / params.blocks_k;
  let k = (g % params.blocks_k) * 256u + lid;
  if (i >= params.q || k >= params.n) { return; }
  var s = 0.0;
  for (var j = 0u; j < params.p; j++) { s += t[i * params.p + j] * x[j * params.n + k]; }
  out[i * params.n + k] = s;
}
