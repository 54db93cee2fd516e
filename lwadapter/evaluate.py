"""Evaluation harness: full-ranking metrics per user (models and most-popular), summaries, efficiency."""

import statistics
import time

import numpy as np
import pandas as pd
import torch
from torch.profiler import ProfilerActivity, profile
from tqdm.auto import tqdm

from lwadapter.metrics import METRICS, bootstrap_ci, full_ranking_metrics
from lwadapter.models import item_logits, mixed_precision, special_tokens, to_model_device
from lwadapter.runtime import THREADS
from lwadapter.sequences import SequenceData, collate, history_examples


def history_window(model) -> int:
    """The longest history (in tokens, BOS included) a recommender was built or adapted for."""
    max_len = getattr(model.config, "max_history", None)
    if max_len is None:
        raise ValueError(f"{type(model).__name__}.config has no `max_history`: build it with build_recommender "
                         "or load_pretrained_recommender")
    return max_len


def history_batch(model, histories: list[list[int]], targets: list[int]) -> dict[str, torch.Tensor]:
    """The right-padded model batch for these histories (last max_history-1 items each)."""
    return collate(history_examples(histories, targets, history_window(model)), *special_tokens(model))


@torch.no_grad()
def score_histories(model, histories: list[list[int]], targets: list[int],
                    precision: str = "float32") -> torch.Tensor:
    """(users, items) scores: the item logits at each history's last real position (right padding), the body run
    in `precision` (models.mixed_precision), the item logits in float32."""
    batch = to_model_device(model, history_batch(model, histories, targets))
    with mixed_precision(precision, batch["input_ids"].device):
        logits = item_logits(model, batch["input_ids"], batch["attention_mask"])
    last = batch["attention_mask"].sum(dim=1) - 1
    return logits[torch.arange(len(last)), last].float().cpu()


def popularity_scores(data: SequenceData) -> torch.Tensor:
    """Most-popular baseline: each item's number of training interactions."""
    counts = np.bincount([i for items in data.train for i in items], minlength=data.n_items)
    return torch.as_tensor(counts, dtype=torch.float32)


def evaluate_scorer(score_fn, data: SequenceData, split: str = "test", mask_history: bool = True,
                    batch_size: int = 256, desc: str = "evaluate") -> pd.DataFrame:
    """Per-user metrics of any scorer `score_fn(histories, targets) -> (users, items)` over batches of users."""
    histories, targets = data.histories(split)
    frames = []
    for start in tqdm(range(0, len(targets), batch_size), desc=desc, leave=False):
        hist, tgt = histories[start:start + batch_size], targets[start:start + batch_size]
        scores = score_fn(hist, tgt)
        metrics = full_ranking_metrics(scores, tgt, hist if mask_history else None)
        frames.append(pd.DataFrame({"user": np.arange(start, start + len(tgt)), **metrics,
                                    "history_len": [len(h) for h in hist]}))
    return pd.concat(frames, ignore_index=True)


def evaluate_model(model, data: SequenceData, split: str = "test", mask_history: bool = True,
                   batch_size: int = 256, precision: str = "float32") -> pd.DataFrame:
    """Per-user HR@5/10/20, NDCG@5/10/20 and MRR of a recommender, ranking all items for every user.

    Columns: user (index into data.user_ids), hr@5, hr@10, hr@20, ndcg@5, ndcg@10, ndcg@20, mrr, history_len.
    Default: mask_history=True, i.e. items already in the user's history are removed from the ranking (never
    the target itself); ties rank pessimistically. The model is put in eval mode and left in it. `precision`:
    see score_histories.
    """
    model.eval()
    return evaluate_scorer(lambda h, t: score_histories(model, h, t, precision), data, split, mask_history,
                           batch_size)


def evaluate_popularity(data: SequenceData, split: str = "test", mask_history: bool = True,
                        batch_size: int = 256) -> pd.DataFrame:
    """The most-popular baseline in the same harness (scores = training counts, the same for every user)."""
    counts = popularity_scores(data)
    return evaluate_scorer(lambda h, t: counts.expand(len(h), -1), data, split, mask_history, batch_size)


def summarize(per_user: pd.DataFrame, seed: int = 0, n: int = 1000, alpha: float = 0.05) -> pd.DataFrame:
    """One row: the mean of each metric and its bootstrap interval over users (<metric>_low, <metric>_high)."""
    row = {"users": len(per_user)}
    for metric in METRICS:
        row[metric] = per_user[metric].mean()
        row[f"{metric}_low"], row[f"{metric}_high"] = bootstrap_ci(per_user[metric], n=n, seed=seed, alpha=alpha)
    return pd.DataFrame([row])


# ---------------------------------------------------------------------------------------------- efficiency

def count_parameters(model) -> int:
    """Number of parameters (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters())


def flops_per_token(config, context: int | None = None) -> int:
    """Analytic forward FLOPs per token of a Llama-style decoder (one multiply-add = 2 FLOPs).

    FLOPs = L * [2 d h_d (2 n_h + 2 n_kv)  +  4 n_h h_d T  +  6 d d_ff]  +  2 d V, with L layers, width d,
    head size h_d, n_h query and n_kv key-value heads, T keys attended (default: the full context, BOS plus
    max_history-1 items, i.e. the last token's cost), gated MLP width d_ff and V scored tokens: the items
    (config.num_items; models.item_logits never computes the rest of the vocabulary), else the vocabulary. The
    terms are the Q/K/V/O projections, the QK^T and AV products, the gate/up/down projections and the head. Norms,
    activations, rotary embeddings and the embedding lookup are left out.
    """
    d, layers = config.hidden_size, config.num_hidden_layers
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or d // heads
    context = context or config.max_history
    per_layer = 2 * d * head_dim * (2 * heads + 2 * kv_heads) + 4 * heads * head_dim * context \
        + 6 * d * config.intermediate_size
    return layers * per_layer + 2 * d * (getattr(config, "num_items", None) or config.vocab_size)


def _forward(model, batch):
    with torch.no_grad():
        return item_logits(model, batch["input_ids"], batch["attention_mask"])


def _timed(model, batch) -> float:
    sync = torch.cuda.synchronize if batch["input_ids"].is_cuda else (lambda: None)
    sync()
    start = time.perf_counter()
    _forward(model, batch)
    sync()
    return time.perf_counter() - start


def peak_memory_bytes(model, batch) -> int:
    """Peak memory allocated during one forward pass.

    On CUDA: torch.cuda.max_memory_allocated. On CPU: the running sum of the torch profiler's allocation and
    free records (profile_memory=True), in time order, at operator granularity; tracemalloc would miss
    torch's allocator. Parameters allocated before the pass are not included.
    """
    model.eval()
    device = batch["input_ids"].device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        _forward(model, batch)
        return int(torch.cuda.max_memory_allocated(device) - before)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        _forward(model, batch)
    records = sorted((e.time_range.start, e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage)
                     for e in prof.events())
    return int(max(0, np.cumsum([delta for _, delta in records]).max(initial=0)))


def benchmark(models: dict, batch, repeats: int = 20, warmup: int = 3, threads: int = THREADS) -> pd.DataFrame:
    """Forward latency of several models on one fixed batch, measured interleaved in one run.

    CPU threads are fixed (`threads`), the batch is placed on each model's device beforehand (CUDA is synchronised
    around every timed pass), each model gets `warmup` untimed passes, then every repeat times each model once
    (order rotated per repeat); latency is the median. One row per model: params, flops_per_token, latency_ms,
    sequences_per_s, tokens_per_s, peak_memory_mb. A benchmark, never a test assertion.
    """
    torch.set_num_threads(threads)
    names = list(models)
    placed = {name: to_model_device(model, batch) for name, model in models.items()}
    for name, model in models.items():
        model.eval()
        for _ in range(warmup):
            _forward(model, placed[name])
    times = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            times[name].append(_timed(models[name], placed[name]))
    n_seq, n_tok = batch["input_ids"].shape[0], int(batch["attention_mask"].sum())
    rows = []
    for name in names:
        latency = statistics.median(times[name])
        rows.append({"model": name, "params": count_parameters(models[name]),
                     "flops_per_token": flops_per_token(models[name].config), "latency_ms": 1000 * latency,
                     "sequences_per_s": n_seq / latency, "tokens_per_s": n_tok / latency,
                     "peak_memory_mb": peak_memory_bytes(models[name], placed[name]) / 2**20})
    return pd.DataFrame(rows)


def compare_efficiency(full, compact, batch, repeats: int = 20, warmup: int = 3,
                       threads: int = THREADS) -> pd.DataFrame:
    """Full vs compact model measured side by side (see `benchmark`), with the measured speed-up
    (full latency / latency) next to the FLOP ratio (full FLOPs per token / FLOPs per token) and param ratio."""
    table = benchmark({"full": full, "compact": compact}, batch, repeats, warmup, threads)
    ref = table.iloc[0]
    table["speedup"] = ref["latency_ms"] / table["latency_ms"]
    table["flop_ratio"] = ref["flops_per_token"] / table["flops_per_token"]
    table["param_ratio"] = ref["params"] / table["params"]
    return table
