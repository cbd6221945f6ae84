// Phi's block input projections in one pass, from h = LN(x) [M, C]:
//   q   = rotary(h Wq^T + bq)            into out at q_offset, [M, C]
//   k   = rotary(h Wk^T + bk), v = h Wv^T + bv   appended to the layer's KV cache at past_len..
//   fc1 = gelu_new(h Wfc1^T + bfc1)      into out at gelu_offset, [M, I]
// as one matmul of N = 3C + I output columns ("slots"), each part with its own epilogue. A weight
// format goes before this file and a body (lib/linear_gemm.wgsl or lib/linear_gemv.wgsl) after it.
//
// Rotary ("rotate half") pairs dims i and i + R/2 of a head (R = 2 * half rotated dims). The bodies
// hand their epilogue two adjacent slots at a time, so within the q and k parts the slots of a head
// are ordered 0, R/2, 1, R/2 + 1, ..., R/2 - 1, R - 1, then R, R + 1, ...: each pair the epilogue
// gets is a rotary pair, rotated with the cos/sin table (float64-made, as rotary.wgsl) at the token's
// position: past_len + t, less the sequence's left padding (padding rows take position 0). Heads and
// the intermediate size are even, so pairs never straddle a part.
//
// The four weights are rows of one buffer (the layer's in_proj), their scales and biases in one
// vectors buffer, at the offsets the uniforms give; keys and values share the layer's cache buffer.
// Prepended: const KV_F16: bool. An f32 cache takes each element as its 32 bits; an f16 cache takes a
// pair as one word (pack2x16float), so its keys are stored in this kernel's slot order, rotary
// partners side by side (lib/kv_order.wgsl, which attention reads them by); values keep theirs.

struct Params {
  M: u32,
  N: u32,          // 3C + I
  K: u32,          // C, the row length
  C: u32,
  I: u32,
  head_dim: u32,
  half: u32,       // rotated pairs per head (R / 2)
  seq: u32,        // T: row m is token m % T of sequence m / T
  past_len: u32,
  kv_rows: u32,    // positions per sequence in the cache
  v_offset: u32,   // where values start in kv, in elements
  use_left_pad: u32,
  gelu_offset: u32, // where gelu starts in out, in floats (q starts at 0)
  pad0: u32,
  pad1: u32,
  pad2: u32,
  w_off: vec4<u32>, // word of row 0 of q, k, v, fc1 in weight
  s_off: vec4<u32>, // element of row 0 of each part's scales (int8) in vectors
  b_off: vec4<u32>, // ... and of its bias
  tiles_m: u32,
  tiles: u32,
  row_groups: u32,
  groups: u32,
  grid_x: u32,
}

// Bindings 1-3 (weights, h, and h again as the unused second segment) are declared by the body.
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read_write> out: array<f32>; // q, then gelu (one workspace buffer)
@group(0) @binding(5) var<storage, read_write> kv: array<u32>; // f32 bits, or f16 pairs (KV_F16)
@group(0) @binding(6) var<storage, read> vectors: array<f32>;
@group(0) @binding(7) var<storage, read> cos_sin: array<vec2<f32>>;
@group(0) @binding(8) var<storage, read> left_pad: array<u32>; // [B]; a placeholder unless use_left_pad

const Q = 0u;
const K_PART = 1u;
const V_PART = 2u;
const FC1 = 3u;

fn part_of(slot: u32) -> u32 {
  return min(slot / p.C, FC1);
}

// The weight row (within its part) that output slot `local` of part `part` computes.
fn part_row(part: u32, local: u32) -> u32 {
  if (part > K_PART) { return local; }
  let j = local % p.head_dim;
  if (j >= 2u * p.half) { return local; }
  return local - j + j / 2u + (j % 2u) * p.half;
}

fn seg_count() -> u32 {
  return 1u;
}

fn seg_k(s: u32) -> u32 {
  return p.K;
}

fn row_word(s: u32, slot: u32) -> u32 {
  let part = part_of(slot);
  return p.w_off[part] + part_row(part, slot - part * p.C) * row_words(p.K);
}

fn affine(part: u32, row: u32, v: f32) -> f32 {
  var scale = 1.0;
  if (HAS_SCALES) { scale = vectors[p.s_off[part] + row]; }
  return v * scale + vectors[p.b_off[part] + row];
}

// Slots `slot` and slot + 1 (slot even) of token row m, from their raw sums.
fn store_pair(m: u32, slot: u32, s: u32, v: vec2<f32>) {
  if (m >= p.M || slot >= p.N) { return; }
  let part = part_of(slot);
  let local = slot - part * p.C;
  let r0 = part_row(part, local);
  let r1 = part_row(part, local + 1u);
  var y = vec2<f32>(affine(part, r0, v.x), affine(part, r1, v.y));
  let b = m / p.seq;
  let t = m % p.seq;
  if (part <= K_PART && local % p.head_dim < 2u * p.half) {
    var pos = p.past_len + t;
    if (p.use_left_pad != 0u) {
      let pad = left_pad[b];
      pos = select(0u, pos - pad, pos >= pad);
    }
    let cs = cos_sin[pos * p.half + (local % p.head_dim) / 2u];
    y = vec2<f32>(y.x * cs.x - y.y * cs.y, y.y * cs.x + y.x * cs.y);
  }
  if (part == Q) {
    out[m * p.C + r0] = y.x;
    out[m * p.C + r1] = y.y;
  } else if (part == FC1) {
    out[p.gelu_offset + m * p.I + r0] = gelu_new(y.x);
    out[p.gelu_offset + m * p.I + r1] = gelu_new(y.y);
  } else {
    // In elements of the cache (floats, or halves for KV_F16); v_offset is even for KV_F16.
    let row = (b * p.kv_rows + p.past_len + t) * p.C + select(0u, p.v_offset, part == V_PART);
    if (KV_F16) {
      kv[(row + local) / 2u] = pack2x16float(y);
    } else {
      kv[row + r0] = bitcast<u32>(y.x);
      kv[row + r1] = bitcast<u32>(y.y);
    }
  }
}
