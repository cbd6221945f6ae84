// A 64 x 64 tile of lm_head logits, logits[m, v] = hidden[m, :] . W[v, :] + bias[v], for the fused
// cross-entropy kernels (prepended to them). W is f16 [rows, C] packed two per u32 word along C (low
// half first); C is even. The including shader declares `p` (with C, M, chunk_rows, buffer_row,
// vocab_offset) and the bindings `hidden`, `weight`, `bias`.
//
// 256 invocations; invocation (ty, tx) = (lid / 16, lid % 16) owns rows ty + 16 i and columns
// tx + 16 j (i, j < 4) of the tile, so neighbouring invocations read neighbouring shared words.
// The W tile is stored transposed (k-major) so that those reads do not conflict on banks.
// The accumulators are four function-local vectors, not an array or a module-scope private: those
// may live in memory rather than registers (SwiftShader's do, and run many times slower).

const TILE: u32 = 64u;  // rows of hidden and vocabulary entries per tile
const TK: u32 = 32u;    // the slice of C loaded per step (even: whole f16 pairs)

// 16 KiB together, WebGPU's default workgroup storage limit. tile_h is free again when
// lm_head_tile returns (it ends on a barrier): callers may reuse it as scratch.
var<workgroup> tile_h: array<f32, 2048>;  // [TILE rows][TK]
var<workgroup> tile_w: array<f32, 2048>;  // [TK][TILE vocabulary entries]

// An invocation's 4 x 4 logits: rows[i][j] is row ty + 16 i, column tx + 16 j of the tile.
struct LogitsTile {
  r0: vec4<f32>,
  r1: vec4<f32>,
  r2: vec4<f32>,
  r3: vec4<f32>,
}

// The logits of the tile at rows m0.., vocabulary entries v0.. of this dispatch's chunk (v0 local:
// the weight row is buffer_row + v0 + c, the bias entry vocab_offset + v0 + c). Out-of-range rows and
// columns compute zeros (and the bias of nothing); callers mask them. Uniform control flow only.
fn lm_head_tile(m0: u32, v0: u32, lid: u32) -> LogitsTile {
  let tx = lid % 16u;
  let ty = lid / 16u;
  let words_per_row = p.C / 2u;
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var k0 = 0u; k0 < p.C; k0 += TK) {
    for (var e = 0u; e < TILE * TK / 256u; e++) {
      let idx = lid + 256u * e;
      let r = idx / TK;
      let k = idx % TK;
      var h = 0.0;
      if (m0 + r < p.M && k0 + k < p.C) { h = hidden[(m0 + r) * p.C + k0 + k]; }
      tile_h[idx] = h;
    }
    for (var e = 0u; e < TILE * TK / 512u; e++) {
      let idx = lid + 256u * e;
      let c = idx / (TK / 2u);
      let w = idx % (TK / 2u);
      var pair = vec2<f32>(0.0);
      if (v0 + c < p.chunk_rows && k0 / 2u + w < words_per_row) {
        pair = unpack2x16float(weight[(p.buffer_row + v0 + c) * words_per_row + k0 / 2u + w]);
      }
      tile_w[(2u * w) * TILE + c] = pair.x;
      tile_w[(2u * w + 1u) * TILE + c] = pair.y;
    }
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      let b = vec4<f32>(tile_w[k * TILE + tx], tile_w[k * TILE + tx + 16u], tile_w[k * TILE + tx + 32u], tile_w[k * TILE + tx + 48u]);
      acc0 = fma(vec4<f32>(tile_h[ty * TK + k]), b, acc0);
      acc1 = fma(vec4<f32>(tile_h[(ty + 16u) * TK + k]), b, acc1);
      acc2 = fma(vec4<f32>(tile_h[(ty + 32u) * TK + k]), b, acc2);
      acc3 = fma(vec4<f32>(tile_h[(ty + 48u) * TK + k]), b, acc3);
    }
    workgroupBarrier();
  }
  let c = v0 + tx;
  let bias4 = vec4<f32>(bias_at(c), bias_at(c + 16u), bias_at(c + 32u), bias_at(c + 48u));
  return LogitsTile(acc0 + bias4, acc1 + bias4, acc2 + bias4, acc3 + bias4);
}

fn bias_at(v: u32) -> f32 {
  return select(0.0, bias[p.vocab_offset + min(v, p.chunk_rows - 1u)], v < p.chunk_rows);
}
