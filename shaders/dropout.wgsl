// Dropout, forward and backward: out[i] (=, or += with accumulate) keep(i) ? inp[i] / (1 - p) : 0,
// keep(i) from the shared counter hash (lib/rng.wgsl, prepended), a pure function of (seed, salt, i).
// The backward pass is the same operation on the output gradient with the forward's (seed, salt): the
// mask is recomputed bit-identically rather than stored. `in_place` overwrites out itself. `two_sites`
// (backward) writes the gradients of two dropout sites that read the same output gradient (a block's
// two branches), the second at element `stride` of out with its own salt, in one pass.

struct Params {
  n: u32,
  grid_x: u32,
  seed: u32,
  salt: u32,
  drop_threshold: u32, // floor(p * 2^32): an element is kept when its hash is at least this
  scale: f32,          // 1 / (1 - p)
  accumulate: u32,
  salt2: u32,          // two_sites: the second site's salt, and where its gradient starts in out
  stride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> inp: array<f32>;

override WG: u32 = 256u;

fn masked(i: u32, x: f32) -> f32 {
  return rng_dropout(x, p.seed, p.salt, i, p.drop_threshold, p.scale);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.grid_x) * WG + lid;
  if (i >= p.n) { return; }
  let d = masked(i, inp[i]);
  if (p.accumulate != 0u) { out[i] += d; } else { out[i] = d; }
}

@compute @workgroup_size(WG)
fn in_place(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.grid_x) * WG + lid;
  if (i >= p.n) { return; }
  out[i] = masked(i, out[i]);
}

@compute @workgroup_size(WG)
fn two_sites(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.grid_x) * WG + lid;
  if (i >= p.n) { return; }
  let g = inp[i];
  out[i] = masked(i, g);
  out[p.stride + i] = rng_dropout(g, p.seed, p.salt2, i, p.drop_threshold, p.scale);
}
