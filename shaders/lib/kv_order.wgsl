// Where an f16 KV cache keeps each element of a key's head row. The fused input projection
// (projection.in.wgsl) finishes its outputs two at a time, and for keys those two are rotary partners,
// dims i and i + pairs (pairs = rotated dims / 2), not neighbours. A packed f16 word holds two
// elements, so an f16 cache stores a key head row in that order: position s < 2 * pairs holds dim
// s / 2 (s even) or s / 2 + pairs (s odd), the rest keep their own place. Attention reads q in the
// same order (a dot product does not care which order it sums in); values and f32 caches are in
// natural order (pairs = 0 makes this the identity).

fn key_dim(s: u32, pairs: u32) -> u32 {
  return select(s, s / 2u + (s % 2u) * pairs, s < 2u * pairs);
}
