// Attention's key and value reads from an f16 KV cache without shader-f16: each u32 holds two
// elements (pack2x16float's layout: the first in the low half), unpacked to f32, so a vec4 is two
// 4-byte loads and a head row of 80 reads 160 bytes instead of 320. Head sizes are even; `base` (an
// element index) is even. Past the head's end the second word reads as zero.

alias KvElem = u32;

fn kv_words4(w0: u32, w1: u32) -> vec4<f32> {
  return vec4<f32>(unpack2x16float(w0), unpack2x16float(w1));
}

fn key4(base: u32, c: u32) -> vec4<f32> {
  let w = base / 2u + 2u * c;
  return kv_words4(k[w], select(0u, k[w + 1u], 4u * c + 2u < p.head_dim));
}

fn value4(base: u32, c: u32) -> vec4<f32> {
  let w = base / 2u + 2u * c;
  return kv_words4(v[w], select(0u, v[w + 1u], 4u * c + 2u < p.head_dim));
}
