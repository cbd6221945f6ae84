// Contrastive token choice, one workgroup per row, lib/row_reduce.wgsl and lib/rng.wgsl prepended.
// Of two models' logits for the same context, the "expert" e and the "amateur" a (the adapter and the
// base model, or the other way round), choose the token that maximises
//     score_i = log p_e(i) - log p_a(i)
// among the plausible tokens, p_e(i) >= alpha * max_j p_e(j), i.e. e_i >= max(e) + log(alpha)
// (log_alpha below; the lowest float when alpha is 0: every token). With temperature t > 0 the choice
// is a draw from softmax(score / t) over the plausible set, by the Gumbel-max trick: the argmax of
// score_i / t + g_i, g_i = -log(-log(u_i)), u_i from the counter hash of (seed of the row, step, i),
// so one pass suffices and a seed replays a generation. Ties go to the smallest index. The row's
// log-softmax normalisers shift every score by the same amount, so the choice compares e_i - a_i;
// they are computed for the record written beside the token.
//
// Only the first `valid` columns of a row take part (ids a tokenizer can decode; the lm_head may have
// more rows): the rest is as if masked to -inf in both models, as the sampling kernel does.
//
// out[row] = (token, bits of score, bits of log p_e(token), bits of log p_a(token)): one readback
// per step gives the tokens and what the page shows of them. test/reference/contrastive.ts repeats it.

struct Params {
  rows: u32,
  vocab: u32,
  grid_x: u32,
  step: u32,
  log_alpha: f32,
  temperature: f32, // <= 0: greedy
  valid: u32,       // 1 <= valid <= vocab
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<storage, read> expert: array<f32>;
@group(0) @binding(3) var<storage, read> amateur: array<f32>;
@group(0) @binding(4) var<storage, read> seeds: array<u32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * p.grid_x;
  if (row >= p.rows) { return; } // uniform across the workgroup
  let base = row * p.vocab;
  let n = p.valid;

  var me = LOWEST_F32;
  var ma = LOWEST_F32;
  for (var i = lid; i < n; i += WG) {
    me = max(me, expert[base + i]);
    ma = max(ma, amateur[base + i]);
  }
  me = wg_max(lid, me);
  ma = wg_max(lid, ma);
  var se = 0.0;
  var sa = 0.0;
  for (var i = lid; i < n; i += WG) {
    se += exp(expert[base + i] - me);
    sa += exp(amateur[base + i] - ma);
  }
  let lse_e = me + log(wg_sum(lid, se));
  let lse_a = ma + log(wg_sum(lid, sa));

  let cut = me + p.log_alpha;
  let sampled = p.temperature > 0.0;
  let inv_t = select(1.0, 1.0 / p.temperature, sampled);
  let seed = seeds[row];
  var bk = LOWEST_F32;
  var bi = NO_INDEX;
  for (var i = lid; i < n; i += WG) {
    let e = expert[base + i];
    if (e < cut) { continue; }
    var key = (e - amateur[base + i]) * inv_t;
    if (sampled) {
      let u = (f32(rng_u32(seed, p.step, i) >> 8u) + 0.5) * 5.9604645e-8; // (0, 1), 2^-24 steps
      key += -log(-log(u));
    }
    if (bi == NO_INDEX || key > bk) { bk = key; bi = i; }
  }
  let best = wg_argmax(lid, bk, bi);
  if (lid == 0u) {
    let t = best.index; // never NO_INDEX: the expert's argmax passes the cut
    let lpe = expert[base + t] - lse_e;
    let lpa = amateur[base + t] - lse_a;
    out[row * 4u] = t;
    out[row * 4u + 1u] = bitcast<u32>(lpe - lpa);
    out[row * 4u + 2u] = bitcast<u32>(lpe);
    out[row * 4u + 3u] = bitcast<u32>(lpa);
  }
}
