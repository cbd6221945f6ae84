// Attention's key and value reads from f32 rows whose head rows are whole 16-byte vectors (head_dim a
// multiple of 4, bindings 16-byte aligned): one load a vec4, so a head row of 80 is 20 loads of 16
// contiguous bytes. `base` (an element index) is a multiple of 4.

alias KvElem = vec4<f32>;

fn key4(base: u32, c: u32) -> vec4<f32> {
  return k[base / 4u + c];
}

fn value4(base: u32, c: u32) -> vec4<f32> {
  return v[base / 4u + c];
}
