// Attention's key and value reads from an f16 KV cache with shader-f16 (`enable f16;` goes first in
// the module): the same bytes as lib/kv_read_f16.wgsl (a vec2<f16> is one packed word, first element
// low), read as half-precision vectors and widened to f32, which the GPU does in its load path.

alias KvElem = vec2<f16>;

fn key4(base: u32, c: u32) -> vec4<f32> {
  let w = base / 2u + 2u * c;
  return vec4<f32>(vec2<f32>(k[w]), vec2<f32>(select(vec2<f16>(0.0h), k[w + 1u], 4u * c + 2u < p.head_dim)));
}

fn value4(base: u32, c: u32) -> vec4<f32> {
  let w = base / 2u + 2u * c;
  return vec4<f32>(vec2<f32>(v[w]), vec2<f32>(select(vec2<f16>(0.0h), v[w + 1u], 4u * c + 2u < p.head_dim)));
}
