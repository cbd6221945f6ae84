// KV-cache append: this step's k and v [B*T, W] (W = H*D) go to k_cache and v_cache [B, Tmax, W]
// at positions past_len .. past_len+T-1 of each sequence. One element of each per thread.

struct Params {
  count: u32,     // B*T*W
  seq: u32,       // T
  width: u32,     // W
  kv_rows: u32,   // Tmax
  past_len: u32,
  grid_x: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> k_cache: array<f32>;
@group(0) @binding(2) var<storage, read_write> v_cache: array<f32>;
@group(0) @binding(3) var<storage, read> k: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let index = (wid.x + wid.y * p.grid_x) * WG + lid;
  if (index >= p.count) { return; }
  let col = index % p.width;
  let row = index / p.width;     // b*T + t
  let b = row / p.seq;
  let t = row % p.seq;
  let dst = (b * p.kv_rows + p.past_len + t) * p.width + col;
  k_cache[dst] = k[index];
  v_cache[dst] = v[index];
}
