"""Speed at LLM size: the machine's matmul rates, then a fine-tuning step, a healing step and an evaluation pass of
real pretrained LLMs before and after each speed lever, and the compact models' measured vs FLOP-ideal speed-up.

`python -m lwadapter.bench.llm_speed [--dataset amazon-electronics] [--models smollm2-135m gemma3-270m]` measures, in
one process on an idle machine (2 threads), on `--steps` batches of 32 real training windows of the prepared dataset,
the same seeded draw of windows for every lever (only their grouping into batches changes), each time the median of
`--repeats` passes:
- the float32 and bfloat16 rate of a 2048 x 576 x 1536 matmul;
- per model and lever (cumulative: the full vocabulary head in float32 on plainly shuffled batches -> item-only
  head -> items-only vocabulary with an untied item head -> bf16 autocast where it pays
  (models.autocast_dtype('auto'); skipped where it does not) -> length-bucketed batches): used tokens/s
  (non-padding), the padding share of the batches and the achieved TFLOP/s (analytic training FLOPs of the
  computed tokens, padding included);
- a healing step (the model's `keep` layers as a compact student with LoRA rank 8, distilled from the full model),
  also with the teacher's logits memoised (healing.DistillationLoss memo: what every epoch after the first costs);
- an evaluation pass (forward, no gradient) of the same batches;
- the compact student's forward speed-up over the full model, measured (evaluate.compare_efficiency) and FLOP-ideal.
Writes results/benchmarks/llm_speed.csv (+ .json with the run information; `--out` names another file, so that each
CPU kind keeps its own). A benchmark, never a test.
"""

import argparse
import os
import statistics
import sys
import time
from unittest import mock

import numpy as np
import pandas as pd
import torch

from lwadapter import runtime
from lwadapter.numerics import cpu_name
from lwadapter.compact import compact_model
from lwadapter.data import load_prepared
from lwadapter.evaluate import compare_efficiency, flops_per_token
from lwadapter.healing import DistillationLoss, attach_adapters
from lwadapter.models import (autocast_dtype, full_vocabulary_item_logits, item_logits, load_pretrained_recommender,
                              special_tokens)
from lwadapter.results import provenance, write_csv, write_json
from lwadapter.sequences import LengthBucketBatches, collate, padding_share, training_examples
from lwadapter.train import SeededShuffle, item_cross_entropy, training_flops_per_token

KEEP = {"smollm2-135m": [0, 4, 8, 12, 17, 21, 25, 29], "gemma3-270m": [0, 3, 7, 10, 14, 17]}  # evenly spread
MATMUL = (2048, 576, 1536)


def matmul_tflops(dtype: torch.dtype, repeats: int = 10) -> float:
    m, k, n = MATMUL
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * m * k * n / statistics.median(times) / 1e12


def lever_batches(lengths: list[int], batch_size: int, steps: int, bucket: int, seed: int = 0) -> list[list[int]]:
    """`steps` batches (example indices) of the same seeded draw of steps x batch_size examples for every lever:
    plainly shuffled (bucket 0) or grouped by length (LengthBucketBatches), so each lever computes the same tokens."""
    drawn = np.random.default_rng(seed).choice(len(lengths), steps * batch_size, replace=False)
    if bucket:
        plan = list(LengthBucketBatches([lengths[i] for i in drawn], batch_size, seed, bucket))
    else:
        order = list(SeededShuffle(len(drawn), seed))
        plan = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    return [[int(drawn[i]) for i in batch] for batch in plan]


def _loss(logits_fn):
    return lambda model, batch: item_cross_entropy(
        logits_fn(model, batch["input_ids"], batch["attention_mask"]).float(), batch["labels"])


def time_steps(model, batches: list[dict], step, dtype, repeats: int = 3) -> float:
    """Median over `repeats` of the total seconds of `step(model, batch)` over batches, under bf16 autocast when
    `dtype` is set (the first batch also run once untimed, as warm-up)."""
    totals = []
    for _ in range(repeats):
        times = []
        for batch in [batches[0], *batches]:
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                step(model, batch)
            times.append(time.perf_counter() - start)
        totals.append(float(np.sum(times[1:])))
    return statistics.median(totals)


def train_step(loss_fn, params):
    optimizer = torch.optim.AdamW(params, lr=1e-5)

    def step(model, batch):
        loss = loss_fn(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def eval_step(logits_fn):
    @torch.no_grad()
    def step(model, batch):
        logits_fn(model, batch["input_ids"], batch["attention_mask"])
    return step


def _row(model_name, stage, lever, batches, seconds, flops_per_token_, padding):
    used = sum(int(b["attention_mask"].sum()) for b in batches)
    computed = sum(b["attention_mask"].numel() for b in batches)
    return {"model": model_name, "stage": stage, "lever": lever, "steps": len(batches), "tokens_used": used,
            "padding_share": padding, "seconds": seconds, "tokens_per_s": used / seconds,
            "achieved_tflops": computed * flops_per_token_ / seconds / 1e12}


def benchmark_model(name: str, data, batch_size: int = 32, steps: int = 4, bucket: int = 16, seed: int = 0,
                    repeats: int = 3):
    """Rows of the table for one checkpoint (see the module docstring)."""
    runtime.set_seed(seed)
    models = {vocab: load_pretrained_recommender(name, data.n_items, max_len=50, item_init="random",
                                                 text_vocabulary=vocab == "text", tie_item_head=vocab == "text")
              for vocab in ("text", "items")}
    examples = training_examples(data, 50)
    lengths = [len(labels) for _, labels in examples]
    plans = {b: lever_batches(lengths, batch_size, steps, b, seed) for b in (0, bucket)}
    padding = {b: padding_share(lengths, plan) for b, plan in plans.items()}
    batches = {(vocab, b): [collate([examples[i] for i in idx], *special_tokens(model)) for idx in plan]
               for vocab, model in models.items() for b, plan in plans.items()}
    fast = autocast_dtype("auto", "cpu")
    cfg = models["text"].config
    full_head = flops_per_token(cfg.__class__(**{**cfg.to_dict(), "num_items": None}))
    levers = [("full vocabulary head, float32, shuffled batches", "text", full_vocabulary_item_logits, None, 0),
              ("item-only head", "text", item_logits, None, 0),
              ("+ items-only vocabulary, untied item head", "items", item_logits, None, 0)]
    if fast is not None:
        levers.append(("+ bf16 autocast", "items", item_logits, fast, 0))
    levers.append((f"+ length buckets{' (bf16)' if fast is not None else ''}", "items", item_logits, fast, bucket))
    rows = []
    for lever, vocab, logits_fn, dtype, b in levers:
        model = models[vocab].train()
        params = [p for p in model.parameters() if p.requires_grad]
        per_token = full_head if logits_fn is full_vocabulary_item_logits else flops_per_token(model.config)
        train_per_token = per_token * training_flops_per_token(model) / flops_per_token(model.config)
        seconds = time_steps(model, batches[vocab, b], train_step(_loss(logits_fn), params), dtype, repeats)
        rows.append(_row(name, "fine-tuning step", lever, batches[vocab, b], seconds, train_per_token, padding[b]))
        seconds = time_steps(model.eval(), batches[vocab, b], eval_step(logits_fn), dtype, repeats)
        rows.append(_row(name, "evaluation pass", lever, batches[vocab, b], seconds, per_token, padding[b]))
        print(f"{name:<14} {lever:<50} train {rows[-2]['tokens_per_s']:>7.1f} tok/s  "
              f"eval {rows[-1]['tokens_per_s']:>7.1f} tok/s", flush=True)
    memo_lever = ("+ teacher logits memoised (every epoch after the first)", *levers[-1][1:])
    for (lever, vocab, logits_fn, dtype, b), memo in ((levers[0], False), (levers[-1], False), (memo_lever, True)):
        teacher = models[vocab].eval()
        student = attach_adapters(compact_model(teacher, KEEP[name]), rank=8).train()
        kd = DistillationLoss(teacher, memo=memo)
        heal_params = [p for p in student.parameters() if p.requires_grad]
        with mock.patch("lwadapter.healing.item_logits", logits_fn):  # the healing loss before / after the lever
            if memo:  # the first epoch, untimed: the teacher runs once per window
                with torch.no_grad(), torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                    [kd(student, batch) for batch in batches[vocab, b]]
            seconds = time_steps(student, batches[vocab, b], train_step(kd, heal_params), dtype, repeats)
        # the full head beyond the items: student forward + backward through it, teacher forward
        head_extra = (full_head - flops_per_token(teacher.config)) * (logits_fn is full_vocabulary_item_logits)
        rows.append(_row(name, f"healing step ({len(KEEP[name])} layers, LoRA r8 + KD)", lever, batches[vocab, b],
                         seconds, training_flops_per_token(student, kd) + 3 * head_extra, padding[b]))
        print(f"{name:<14} healing {lever:<42} {rows[-1]['tokens_per_s']:>7.0f} tok/s", flush=True)
    model = models["items"].eval()
    full_batch = collate([examples[i] for i in np.argsort(lengths)[-batch_size:]], *special_tokens(model))
    with torch.autocast("cpu", dtype=fast, enabled=fast is not None):
        speed = compare_efficiency(model, compact_model(model, KEEP[name]).eval(), full_batch, repeats=5, warmup=1)
    compact = speed.iloc[1]
    rows.append({"model": name, "stage": f"compact forward ({len(KEEP[name])} of {cfg.num_hidden_layers} layers)",
                 "lever": "measured / FLOP-ideal speed-up", "speedup": compact["speedup"],
                 "ideal_speedup": compact["flop_ratio"], "speedup_share_of_ideal": compact["speedup"] /
                 compact["flop_ratio"]})
    print(f"{name:<14} compact {len(KEEP[name])} layers: {compact['speedup']:.2f}x measured vs "
          f"{compact['flop_ratio']:.2f}x ideal", flush=True)
    return rows


def benchmark(dataset: str, models: list[str], steps: int = 4, repeats: int = 3) -> pd.DataFrame:
    torch.set_num_threads(runtime.THREADS)
    data = load_prepared(dataset)
    rows = [{"model": "machine", "stage": "matmul 2048x576x1536", "lever": dtype,
             "achieved_tflops": matmul_tflops(getattr(torch, dtype), repeats=10 if dtype == "float32" else 2)}
            for dtype in ("float32", "bfloat16")]
    print(f"matmul: float32 {rows[0]['achieved_tflops']:.3f}, bf16 {rows[1]['achieved_tflops']:.3f} TFLOP/s",
          flush=True)
    for name in models:
        rows += benchmark_model(name, data, steps=steps, repeats=repeats)
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="amazon-electronics")
    parser.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    parser.add_argument("--steps", type=int, default=4, help="timed steps per lever (the same examples for each)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over them; the median is kept")
    parser.add_argument("--out", default="llm_speed", help="results/benchmarks/<out>.csv (+ .json): another name "
                        "keeps another machine's run beside this one's (e.g. llm_speed_avx2)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")
    runtime.quiet()
    table = benchmark(args.dataset, args.models, args.steps, args.repeats)
    out = runtime.RESULTS_DIR / "benchmarks"
    write_csv(out / f"{args.out}.csv", table)
    write_json(out / f"{args.out}.json", provenance({
        "command": "python -m lwadapter.bench.llm_speed " + " ".join(sys.argv[1:] if argv is None else argv),
        "dataset": args.dataset, "models": args.models, "steps": args.steps, "repeats": args.repeats, "keep": KEEP, "threads": runtime.THREADS,
        "cpu": cpu_name()}, 0))
    print(table.round(4).to_string(index=False))


if __name__ == "__main__":
    main()
