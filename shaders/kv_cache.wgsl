// KV-cache append: this step's k and v [B*T, W] (W = H*D) go to k_cache and v_cache [B, Tmax, W]
// at positions past_len .. past_len+T-1 of each sequence. One word of each cache per thread: a float
// of an f32 cache (its bits), or a pair of an f16 cache (pack2x16float), whose keys are stored in
// rotary-pair order (lib/kv_order.wgsl, prepended with const PACKED: bool) as the fused projection
// writes them; values keep their order.

struct Params {
  count: u32,     // B*T*W words: W per row, W / 2 when PACKED
  seq: u32,       // T
  width: u32,     // W
  kv_rows: u32,   // Tmax
  past_len: u32,
  grid_x: u32,
  head_dim: u32,  // D, even when PACKED
  key_pairs: u32, // rotary pairs per head (PACKED)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> k_cache: array<u32>;
@group(0) @binding(2) var<storage, read_write> v_cache: array<u32>;
@group(0) @binding(3) var<storage, read> k: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let index = (wid.x + wid.y * p.grid_x) * WG + lid;
  if (index >= p.count) { return; }
  let words = select(p.width, p.width / 2u, PACKED); // per row
  let col = index % words;
  let row = index / words;     // b*T + t
  let b = row / p.seq;
  let t = row % p.seq;
  let dst = (b * p.kv_rows + p.past_len + t) * words + col;
  if (PACKED) {
    let s = (2u * col) % p.head_dim; // position within the head row (even)
    let head = row * p.width + 2u * col - s;
    k_cache[dst] = pack2x16float(vec2<f32>(k[head + key_dim(s, p.key_pairs)], k[head + key_dim(s + 1u, p.key_pairs)]));
    v_cache[dst] = pack2x16float(vec2<f32>(v[head + s], v[head + s + 1u]));
  } else {
    k_cache[dst] = bitcast<u32>(k[index]);
    v_cache[dst] = bitcast<u32>(v[index]);
  }
}
