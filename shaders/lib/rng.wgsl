// Counter-based random numbers for dropout masks: a pure function of (seed, salt, index), so the
// forward pass and the backward pass replay the same mask without storing it, and a run replays
// exactly from its seed. The CPU twin is src/engine/kernels/rng.ts; both must stay bit-identical.

fn pcg_hash(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

fn rng_u32(seed: u32, salt: u32, index: u32) -> u32 {
  return pcg_hash(index ^ pcg_hash(salt ^ pcg_hash(seed)));
}

// Keep with probability 1 - p, where drop_threshold = floor(p * 2^32) (from rng.ts dropThreshold).
fn rng_keep(seed: u32, salt: u32, index: u32, drop_threshold: u32) -> bool {
  return rng_u32(seed, salt, index) >= drop_threshold;
}

// Inverted dropout of x: x / (1 - p) where kept, else 0 (scale = 1 / (1 - p)). The forward applies it to
// the activations, the backward to their gradients, with the same (seed, salt, index).
fn rng_dropout(x: f32, seed: u32, salt: u32, index: u32, drop_threshold: u32, scale: f32) -> f32 {
  return select(0.0, x * scale, rng_keep(seed, salt, index, drop_threshold));
}
