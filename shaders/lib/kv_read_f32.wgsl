// Attention's key and value reads from f32 rows of any head size (training's fresh projections, an f32
// KV cache whose head rows are not whole 16-byte vectors): four scalar loads a vec4, zero past the
// head's end. The kernel declares `k` and `v` as array<KvElem> and has p.head_dim.

alias KvElem = f32;

fn key4(base: u32, c: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  for (var e = 0u; e < 4u; e++) { if (4u * c + e < p.head_dim) { r[e] = k[base + 4u * c + e]; } }
  return r;
}

fn value4(base: u32, c: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  for (var e = 0u; e < 4u; e++) { if (4u * c + e < p.head_dim) { r[e] = v[base + 4u * c + e]; } }
  return r;
}
