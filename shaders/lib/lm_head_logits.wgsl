// lm_head_tile: the logits of one 64 x 64 tile, hidden . W^T + bias, for cross_entropy.fwd and .bwd
// (lib/lm_head_tile.wgsl before it, the including shader after). The including shader declares `p`
// (with C, M, chunk_rows, buffer_row, vocab_offset) and the bindings `hidden`, `weight`, `bias`.

const B_IS_WT = true;

// The logits of the tile at rows m0.., vocabulary entries v0.. of this dispatch's chunk (v0 local: the
// weight row is buffer_row + v0 + c, the bias entry vocab_offset + v0 + c). Out-of-range rows and
// columns compute zeros (and the bias of nothing); callers mask them. Uniform control flow only.
fn lm_head_tile(m0: u32, v0: u32, lid: u32) -> LogitsTile {
  let t = tile_product(m0, v0, p.C, lid);
  let c = v0 + lid % 16u;
  let bias4 = vec4<f32>(bias_at(c), bias_at(c + 16u), bias_at(c + 32u), bias_at(c + 48u));
  return LogitsTile(t.r0 + bias4, t.r1 + bias4, t.r2 + bias4, t.r3 + bias4);
}

fn a_at(m: u32, k: u32) -> f32 {
  if (m < p.M && k < p.C) { return hidden[m * p.C + k]; }
  return 0.0;
}

fn bias_at(v: u32) -> f32 {
  return select(0.0, bias[p.vocab_offset + min(v, p.chunk_rows - 1u)], v < p.chunk_rows);
}
