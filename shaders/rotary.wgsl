// Partial rotary embedding ("rotate half", as GPT-NeoX and Phi-2), in place on q or k [B*T, H*D].
// In each head the first R dims rotate in pairs (i, i + R/2) by angle pos * theta^(-2i/R), where
// pos = past_len + t. The cos/sin table [positions, R/2] is computed in float64 on the CPU, so no
// GPU sin/cos (inaccurate for large arguments) is involved. One file serves both directions: the
// backward applies the transposed rotation, which is the same rotation with sin negated (sin_sign).
// With use_left_pad, sequence b is left-padded by left_pad[b] rows (batched generation): its token t
// sits at pos = past_len + t - left_pad[b], so its real tokens get the positions they would have
// alone; padding rows (pos < 0) take position 0, their values are never attended to.

struct Params {
  rows: u32,      // B*T
  seq: u32,       // T
  heads: u32,
  head_dim: u32,  // D
  half: u32,      // R/2
  past_len: u32,
  sin_sign: f32,  // 1 forward, -1 backward
  grid_x: u32,    // workgroups along x; the rest fold into y
  use_left_pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> cos_sin: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read> left_pad: array<u32>; // [B]; a placeholder unless use_left_pad

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let index = (wid.x + wid.y * p.grid_x) * WG + lid; // one rotated pair per thread
  if (index >= p.rows * p.heads * p.half) { return; }
  let pair = index % p.half;
  let head = (index / p.half) % p.heads;
  let row = index / (p.half * p.heads);
  var pos = p.past_len + row % p.seq;
  if (p.use_left_pad != 0u) {
    let pad = left_pad[row / p.seq];
    pos = select(0u, pos - pad, pos >= pad);
  }

  let cs = cos_sin[pos * p.half + pair];
  let s = cs.y * p.sin_sign;
  let i1 = row * p.heads * p.head_dim + head * p.head_dim + pair;
  let i2 = i1 + p.half;
  let x1 = x[i1];
  let x2 = x[i2];
  x[i1] = x1 * cs.x - x2 * s;
  x[i2] = x2 * cs.x + x1 * s;
}
