"""Training-throughput benchmark: the training loop at 2, 8 and 32 layers against each speed lever, one process.

`python -m lwadapter.bench.throughput [--dataset ml-100k] [--users N] [--repeats 3]` trains one epoch (of every user, or
of a seeded subset of N) per (depth, lever), `repeats` times, and writes the median tokens per second, seconds per
epoch of every user and the ratio to the landed loop (median, lowest, highest over the passes) to
results/benchmarks/training_throughput.csv. A benchmark, not a test: nothing here asserts a time.
"""

import argparse
import os
import sys
import time

import pandas as pd

from lwadapter import runtime
from lwadapter.numerics import cpu_name
from lwadapter.data import load_prepared
from lwadapter.models import build_recommender
from lwadapter.results import provenance, write_csv, write_json
from lwadapter.scoring import user_subset
from lwadapter.sequences import training_examples
from lwadapter.train import next_item_loss, train_recommender
from lwadapter.bench.tuning import MODEL  # notebook 02's default recommender



def synced_loss(model, batch):
    """The landed loop's per-step host sync (`loss.item()` every step), kept as the benchmark's reference."""
    loss = next_item_loss(model, batch)
    loss.item()
    return loss


LEVERS = {  # name -> (model keywords, training keywords, threads)
    "landed loop (batch 64, loss.item() every step)": ({}, {"batch_size": 64, "loss_fn": synced_loss}, 2),
    "no per-step host sync (batch 64)": ({}, {"batch_size": 64}, 2),
    "batch 128": ({}, {"batch_size": 128}, 2),
    "batch 256": ({}, {"batch_size": 256}, 2),
    "1 thread (batch 64)": ({}, {"batch_size": 64}, 1),
    "eager attention (batch 64)": ({"attn_implementation": "eager"}, {"batch_size": 64}, 2),
    "attention dropout 0.1 (batch 64)": ({"dropout": 0.1}, {"batch_size": 64}, 2),
}


def measure(data, n_layers: int, model_kw: dict, train_kw: dict, threads: int, seed: int = 0) -> dict:
    """Tokens per second of one train_recommender epoch (batches, AdamW, validation) on `data`."""
    runtime.THREADS = threads
    runtime.set_seed(seed)
    model_kw = dict(model_kw)
    attn = model_kw.pop("attn_implementation", None)
    model = build_recommender(n_items=data.n_items, n_layers=n_layers, **{**MODEL, **model_kw})
    if attn:
        model.set_attn_implementation(attn)
    start = time.perf_counter()
    history = train_recommender(model, data, epochs=1, patience=1, lr=1e-3, seed=seed, **train_kw)
    seconds = time.perf_counter() - start
    return {"tokens": int(history["tokens"].iloc[-1]), "seconds": seconds,
            "tokens_per_second": history["tokens"].iloc[-1] / seconds}


def benchmark(dataset: str = "ml-100k", n_users: int | None = None, depths=(2, 8, 32), seed: int = 0,
              repeats: int = 3) -> pd.DataFrame:
    """Per depth and lever, the median over `repeats` passes (each pass times every lever once, so drift hits all
    alike) and the ratio to the landed loop: median, and lowest and highest over the passes."""
    data = load_prepared(dataset)
    subset = user_subset(data, n_users, seed)
    full_tokens = sum(len(inputs) + 1 for inputs, _ in training_examples(data, MODEL["max_len"]))
    rows = []
    try:
        for repeat in range(repeats):
            for n_layers in depths:
                for lever, (model_kw, train_kw, threads) in LEVERS.items():
                    row = measure(subset, n_layers, model_kw, train_kw, threads, seed)
                    rows.append({"repeat": repeat, "layers": n_layers, "lever": lever, "threads": threads, **row})
                    print(f"pass {repeat} | {n_layers:>2} layers | {lever:<48} {row['tokens_per_second']:>8.0f} "
                          "tokens/s", flush=True)
    finally:
        runtime.THREADS = 2
    runs = pd.DataFrame(rows)
    runs["ratio"] = runs["tokens_per_second"] / runs.groupby(["repeat", "layers"])["tokens_per_second"].transform("first")
    table = runs.groupby(["layers", "lever"], sort=False).agg(
        threads=("threads", "first"), tokens=("tokens", "first"), seconds=("seconds", "median"),
        tokens_per_second=("tokens_per_second", "median"), speedup_low=("ratio", "min"),
        speedup_high=("ratio", "max")).reset_index()
    reference = table.groupby("layers")["tokens_per_second"].transform("first")
    return table.assign(epoch_seconds_all_users=full_tokens / table["tokens_per_second"],
                        speedup_vs_landed=table["tokens_per_second"] / reference, repeats=repeats)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--users", type=int, default=None, help="time a seeded subset of N users (default: all)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over every lever; medians are kept")
    args = parser.parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")
    runtime.quiet()
    table = benchmark(args.dataset, args.users, repeats=args.repeats)
    out = runtime.RESULTS_DIR / "benchmarks"
    write_csv(out / "training_throughput.csv", table.round(4))
    write_json(out / "training_throughput.json",
               provenance({"command": "python -m lwadapter.bench.throughput " + " ".join(sys.argv[1:] if argv is None else argv),
                           "dataset": args.dataset, "users": args.users, "repeats": args.repeats, "model": MODEL,
                           "cpu": cpu_name()}, 0))
    print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
