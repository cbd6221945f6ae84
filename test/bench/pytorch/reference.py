#!/usr/bin/env python3
"""PyTorch + PEFT reference for the WebGPU benchmarks, on the same GPU.

A Phi-2-shaped PhiForCausalLM with random weights (built from transformers' PhiConfig: nothing is
downloaded), timed as Hugging Face users run it (eager PyTorch, SDPA attention, no torch.compile):

  model.prefill   one 512-token prompt, KV cache on, logits of the last position     (bf16, fp32)
  model.decode    greedy tokens at batch 1 after a 512-token prompt, one sync a token  (bf16, fp32)
                  (both with their peak memory)
  train.step      LoRA r 64 / alpha 64 / dropout 0.05 on q, k, v, dense, fc1, fc2; forward, backward,
                  gradient clipping and AdamW; 1x512 and 4x512; peak memory with the weights
                  (bf16, fp32, and bf16 with gradient checkpointing, the closest to our recomputation)

Prints one JSON object on stdout (progress goes to stderr); test/bench/report.ts pairs its rows with
ours by id and shape. --quick runs the small shapes of `npm run bench -- --quick` (also on a CPU).

  python3 test/bench/pytorch/reference.py > pytorch.json
"""

from __future__ import annotations

import argparse
import datetime
import gc
import inspect
import json
import statistics
import sys
import time

import torch
import transformers
from transformers import PhiConfig, PhiForCausalLM

import peft
from peft import LoraConfig, get_peft_model

# microsoft/phi-2's config.json; --quick shrinks it like test/bench/shapes.ts does.
PHI2 = dict(
    vocab_size=51200,
    hidden_size=2560,
    intermediate_size=10240,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=32,
    partial_rotary_factor=0.4,
    rope_theta=10000.0,
    max_position_embeddings=2048,
    layer_norm_eps=1e-5,
    hidden_act="gelu_new",
    resid_pdrop=0.1,
    embd_pdrop=0.0,
    attention_dropout=0.0,
    qk_layernorm=False,
    tie_word_embeddings=False,
    bos_token_id=50256,
    eos_token_id=50256,
)
QUICK = dict(
    PHI2,
    hidden_size=160,
    intermediate_size=640,
    num_attention_heads=2,
    num_key_value_heads=2,
    num_hidden_layers=2,
    vocab_size=2048,
    # Phi-2's special token is past this small vocabulary; nothing here stops at it.
    bos_token_id=None,
    eos_token_id=None,
)

TARGETS = ["q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"]
# What the models built here really used, for the JSON.
SEEN: dict = {}
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Clock:
    """Wall-clock seconds of GPU work: synchronises before reading the time on CUDA."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()


def build_model(shape: dict, dtype: torch.dtype, device: torch.device) -> PhiForCausalLM:
    torch.manual_seed(0)
    config = PhiConfig(**shape)
    # SDPA is what transformers picks by default where it is available; said explicitly so the JSON is exact.
    config._attn_implementation = "sdpa"
    with torch.device(device):
        model = PhiForCausalLM(config)
    SEEN["attn_implementation"] = model.config._attn_implementation
    return model.to(dtype=dtype)


def forward_kwargs(model: PhiForCausalLM) -> dict:
    """Only the last position's logits, as our prefill computes (the argument's name changed over versions)."""
    params = inspect.signature(model.forward).parameters
    if "logits_to_keep" in params:
        return {"logits_to_keep": 1}
    if "num_logits_to_keep" in params:
        return {"num_logits_to_keep": 1}
    return {}


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak(device: torch.device) -> dict:
    """The most memory allocated since the last reset, weights included, as {"peakBytes": n} (empty on a CPU)."""
    return {"peakBytes": torch.cuda.max_memory_allocated(device)} if device.type == "cuda" else {}


def release_memory() -> None:
    """After a configuration's objects are gone: collect them and hand cached CUDA memory back."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def median_rate(samples: list[float]) -> float:
    return statistics.median(samples)


def bench_inference(shape: dict, variant: str, device: torch.device, tokens: int, context: int, new_tokens: int, iters: int, warmup: int) -> list[dict]:
    clock = Clock(device)
    model = build_model(shape, DTYPES[variant], device).eval()
    extra = forward_kwargs(model)
    generator = torch.Generator(device="cpu").manual_seed(1)
    rows = []
    with torch.inference_mode():
        ids = torch.randint(0, shape["vocab_size"], (1, tokens), generator=generator).to(device)
        reset_peak(device)
        times = []
        for i in range(warmup + iters):
            t0 = clock.now()
            model(input_ids=ids, use_cache=True, **extra)
            t1 = clock.now()
            if i >= warmup:
                times.append(t1 - t0)
        s = median_rate(times)
        rows.append({"id": "model.prefill", "shape": f"1x{tokens}", "name": f"model.prefill {variant} 1x{tokens}", "variant": variant, "ms": s * 1e3, "tokensPerSec": tokens / s, **peak(device)})
        log(f"  prefill {variant} 1x{tokens}: {tokens / s:.0f} tok/s")

        prompt = torch.randint(0, shape["vocab_size"], (1, context), generator=generator).to(device)
        reset_peak(device)
        per_token = []
        for run in range(warmup + max(1, iters // 4)):
            out = model(input_ids=prompt, use_cache=True, **extra)
            past = out.past_key_values
            next_id = out.logits[:, -1].argmax(-1, keepdim=True)
            next_id.item()  # the first token, as a streaming app reads it
            t0 = clock.now()
            for _ in range(new_tokens):
                out = model(input_ids=next_id, past_key_values=past, use_cache=True, **extra)
                past = out.past_key_values
                next_id = out.logits[:, -1].argmax(-1, keepdim=True)
                next_id.item()  # one sync per token, as generate() and our Generator do
            t1 = clock.now()
            if run >= warmup:
                per_token.append((t1 - t0) / new_tokens)
        s = median_rate(per_token)
        rows.append({"id": "model.decode", "shape": f"b1 ctx{context}", "name": f"model.decode {variant} b1 ctx{context} (+{new_tokens} tokens)", "variant": variant, "ms": s * 1e3, "tokensPerSec": 1 / s, **peak(device)})
        log(f"  decode {variant} b1 ctx{context}: {1 / s:.0f} tok/s")
    del model
    return rows


def bench_training(shape: dict, variant: str, device: torch.device, batch: int, tokens: int, r: int, iters: int, warmup: int, checkpointing: bool) -> dict:
    clock = Clock(device)
    dtype = DTYPES[variant]
    model = build_model(shape, dtype, device)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lora = LoraConfig(r=r, lora_alpha=r, lora_dropout=0.05, target_modules=TARGETS, bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=2.5e-5, weight_decay=0.0)
    generator = torch.Generator(device="cpu").manual_seed(2 + batch)
    ids = torch.randint(0, shape["vocab_size"], (batch, tokens), generator=generator).to(device)
    reset_peak(device)
    times = []
    loss = None
    for i in range(warmup + iters):
        t0 = clock.now()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        t1 = clock.now()
        if i >= warmup:
            times.append(t1 - t0)
    s = median_rate(times)
    name = variant + ("+checkpointing" if checkpointing else "")
    row = {
        "id": "train.step",
        "shape": f"{batch}x{tokens}",
        "name": f"train.step {name} r{r} {batch}x{tokens}",
        "variant": name,
        "ms": s * 1e3,
        "tokensPerSec": batch * tokens / s,
        "trainableParameters": sum(p.numel() for p in trainable),
        "loss": float(loss.detach().float().item()),
        **peak(device),
    }
    log(f"  train {name} {batch}x{tokens}: {row['tokensPerSec']:.0f} tok/s" + (f", peak {row['peakBytes'] / 2**30:.2f} GiB" if "peakBytes" in row else ""))
    del model, optimizer, trainable, ids, loss
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the small shapes of npm run bench -- --quick")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--iters", type=int, default=None, help="timed iterations per case (default 10, quick 2)")
    parser.add_argument("--skip", default="", help="comma-separated: prefill-decode, train, fp32, checkpointing")
    args = parser.parse_args()

    device = torch.device(args.device)
    shape = QUICK if args.quick else PHI2
    tokens, context, new_tokens, r, batches = (32, 32, 4, 8, [1, 2]) if args.quick else (512, 512, 128, 64, [1, 4])
    iters = args.iters or (2 if args.quick else 10)
    warmup = 1 if args.quick else 3
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    variants = [v for v in ("bf16", "fp32") if v not in skip]

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({device})"
    log(f"PyTorch {torch.__version__}, transformers {transformers.__version__}, PEFT {peft.__version__} on {gpu}")
    rows = []
    failures = []

    def attempt(what: str, fn):
        try:
            out = fn()
            rows.extend(out if isinstance(out, list) else [out])
        except Exception as err:  # keep the other figures when one configuration fails (out of memory...)
            failures.append({"name": what, "message": f"{type(err).__name__}: {err}"})
            log(f"  {what}: FAILED {type(err).__name__}: {err}")
        release_memory()

    if "prefill-decode" not in skip:
        for v in variants:
            attempt(f"inference {v}", lambda v=v: bench_inference(shape, v, device, tokens, context, new_tokens, iters, warmup))
    if "train" not in skip:
        configs = [(v, b, False) for v in variants for b in batches]
        if "checkpointing" not in skip and "bf16" in variants:
            configs += [("bf16", b, True) for b in batches]
        for v, b, ckpt in configs:
            attempt(f"train {v} {b}x{tokens}{' checkpointing' if ckpt else ''}", lambda v=v, b=b, ckpt=ckpt: bench_training(shape, v, device, b, tokens, r, iters, warmup, ckpt))

    result = {
        "tool": "pytorch",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "gpu": gpu,
        "mode": "quick" if args.quick else "full",
        "versions": {"torch": torch.__version__, "cuda": str(torch.version.cuda), "transformers": transformers.__version__, "peft": peft.__version__, "python": sys.version.split()[0]},
        "settings": {
            "attn_implementation": SEEN.get("attn_implementation"),
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "optimizer": "torch.optim.AdamW lr 2.5e-5, clip 1.0",
            "lora": {"r": r, "alpha": r, "dropout": 0.05, "targets": TARGETS},
            "iters": iters,
            "warmup": warmup,
        },
        "rows": rows,
        "failures": failures,
    }
    print(json.dumps(result, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
