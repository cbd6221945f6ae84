// out[e] = sum over c of partial[c * count + e], in order c = 0, 1, ...: the second pass of rows.gram.

struct Params {
  count: u32,
  chunks: u32,
  grid_x: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> partial: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let e = (wid.x + wid.y * params.grid_x) * 256u + lid;
  if (e >= params.count) { return; }
  var s = 0.0;
  for (var c = 0u; c < params.chunks; c++) { s += partial[c * params.count + e]; }
  out[e] = s;
}
