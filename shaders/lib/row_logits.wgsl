// Whole-row statistics for the kernels that give each row of logits one workgroup (argmax, sampling,
// log-softmax, logprob.gather), after lib/row_reduce.wgsl. The including shader declares the binding
// `logits` (array<f32>); a row is logits[base .. base + n). Uniform control flow only.

// The row's largest value and its first index (torch.argmax): each invocation scans a strided subset
// in increasing index order keeping its first strict maximum, and wg_argmax merges them. No NaNs.
fn row_argmax(lid: u32, base: u32, n: u32) -> ArgMax {
  var v = LOWEST_F32;
  var i = NO_INDEX;
  for (var c = lid; c < n; c += WG) {
    let x = logits[base + c];
    if (x > v || i == NO_INDEX) { v = x; i = c; }
  }
  return wg_argmax(lid, v, i);
}

// logsumexp of the row, max + log(sum(exp(x - max))), in two passes over it (accurate, and a row of
// 51200 f32 stays in cache between them). Finite logits.
fn row_logsumexp(lid: u32, base: u32, n: u32) -> f32 {
  var m = LOWEST_F32;
  for (var c = lid; c < n; c += WG) { m = max(m, logits[base + c]); }
  m = wg_max(lid, m);
  var s = 0.0;
  for (var c = lid; c < n; c += WG) { s += exp(logits[base + c] - m); }
  return m + log(wg_sum(lid, s));
}
