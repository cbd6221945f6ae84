// Dropout forward: out[i] = keep(i) ? inp[i] / (1 - p) : 0, keep(i) from the shared counter hash
// (lib/rng.wgsl, prepended), a pure function of (seed, salt, i), so the backward pass replays the
// mask instead of storing it. `in_place` overwrites out itself.

struct Params {
  n: u32,
  grid_x: u32,
  seed: u32,
  salt: u32,
  drop_threshold: u32, // floor(p * 2^32): an element is kept when its hash is at least this
  scale: f32,          // 1 / (1 - p)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> inp: array<f32>;

override WG: u32 = 256u;

fn dropped(i: u32, x: f32) -> f32 {
  return rng_dropout(x, p.seed, p.salt, i, p.drop_threshold, p.scale);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.grid_x) * WG + lid;
  if (i >= p.n) { return; }
  out[i] = dropped(i, inp[i]);
}

@compute @workgroup_size(WG)
fn in_place(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.grid_x) * WG + lid;
  if (i >= p.n) { return; }
  out[i] = dropped(i, out[i]);
}
