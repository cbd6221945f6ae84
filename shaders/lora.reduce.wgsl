// Second pass of a split LoRA product group (lora.gemm with chunks > 1): C (= or +=) the sum of the
// slices' partial products, added in slice order so the result is deterministic. The gemm pass has
// already applied alpha and any dropout mask (both are linear, so they commute with the sum); the
// group's C lie one after another from c_off.

struct Params {
  count: u32,       // elements of C, all problems of the group
  chunks: u32,
  accumulate: u32,
  grid_x: u32,
  c_off: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> partials: array<f32>; // [chunks][count]

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let o = (wid.x + wid.y * p.grid_x) * 256u + lid;
  if (o >= p.count) { return; }
  var s = 0.0;
  for (var k = 0u; k < p.chunks; k++) { s += partials[k * p.count + o]; }
  if (p.accumulate != 0u) { c[p.c_off + o] += s; } else { c[p.c_off + o] = s; }
}
