"""Scale benchmark: what every criterion, compaction, one healing step and the compact model's speed cost on random
Llama-3-shaped recommenders of about 10M, 100M and 1B parameters, extrapolated to Llama-3-8B.

    python -m lwadapter.bench.scale            # -> results/benchmarks/scale.csv (+ scale.json), paper/figures/scale_cost.*

Every measurement runs in a fresh spawned process that loads the saved model, resets the process's peak resident
set size (Linux: /proc/self/clear_refs), runs the step and reads VmHWM. `peak_over_weights` is that peak above the
loaded model divided by the weight bytes: every allocation counts (torch's allocator, which tracemalloc does not
see, Python's and the libraries'). Time: seconds per calibration sequence of `length` tokens on `threads` CPU
threads, with the notebooks' bootstrap (n_boot=200). Extrapolation to 8B: a least-squares line through
log(seconds per sequence) against log(parameters), then scaled from this CPU to a GPU by the ratio of an assumed
sustained GPU matmul throughput (`gpu_tflops`) to the matmul throughput measured here at the 1B shape.
"""

import argparse
import contextlib
import multiprocessing
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lwadapter.report import plots
from lwadapter.compact import compact_model
from lwadapter.evaluate import compare_efficiency, count_parameters
from lwadapter.healing import DistillationLoss, attach_adapters
from lwadapter.models import activation_checkpointing, as_dtype, build_recommender, to_model_device
from lwadapter.results import provenance, write_csv, write_json
from lwadapter.runtime import RESULTS_DIR, set_seed
from lwadapter.scoring import SCORERS, calibration_batches
from lwadapter.sequences import SequenceData

# Llama-3 proportions at 32 layers: 4 query heads per key-value head, MLP width 3.5x the hidden width
SHAPES = {
    "10M": dict(hidden=160, heads=4, kv_heads=1, intermediate=560),
    "100M": dict(hidden=512, heads=8, kv_heads=2, intermediate=1792),
    "1B": dict(hidden=1536, heads=12, kv_heads=3, intermediate=5376),
}
LLAMA3_8B = dict(hidden=4096, heads=32, kv_heads=8, intermediate=14336)
LLAMA3_TEXT_VOCAB = 128256
N_LAYERS, KEEP = 32, list(range(0, 32, 4))  # the compact model: 8 of 32 layers, evenly spaced
CRITERIA = [c for c in SCORERS if c != "random"]
OUT = RESULTS_DIR / "benchmarks" / "scale.csv"


def random_data(n_items: int, n_users: int, length: int, seed: int = 0) -> SequenceData:
    """Users with `length` random training items each (the benchmark needs shapes, not patterns)."""
    rng = random.Random(seed)
    train = [[rng.randrange(n_items) for _ in range(length)] for _ in range(n_users)]
    return SequenceData("random", [f"i{i}" for i in range(n_items)], [f"u{u}" for u in range(n_users)], train,
                        [0] * n_users, [0] * n_users)


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def build(shape: dict, n_items: int, length: int, text_vocab: int = 0, n_layers: int = N_LAYERS, seed: int = 0,
          device="cpu", dtype: torch.dtype = torch.float32):
    """A seeded random Llama recommender of `shape`, created directly on `device` in `dtype` (an 8B model never
    passes through CPU float32); `text_vocab` > 0 puts that many text tokens before the items, as
    load_pretrained_recommender does with a real checkpoint's vocabulary."""
    set_seed(seed)
    with torch.device(device), _default_dtype(dtype):
        model = build_recommender("llama", n_items, n_layers=n_layers, max_len=length, **shape)
        if text_vocab:
            model.resize_token_embeddings(model.config.vocab_size + text_vocab, mean_resizing=False)
            model.config.item_token_offset += text_vocab
    return model.eval()


def weight_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def _host_peak() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status: peak memory is measured on Linux only")


def peak_memory(fn, device) -> tuple[object, float, int]:
    """(fn(), wall seconds, peak bytes allocated during fn above what was allocated before). CUDA: the caching
    allocator's peak; CPU: the process's peak resident set size (reset first through /proc/self/clear_refs)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    else:
        Path("/proc/self/clear_refs").write_text("5")
        before = int(Path("/proc/self/statm").read_text().split()[1]) * 4096
    start = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else _host_peak()
    return result, seconds, peak - before


def distillation_steps(teacher, keep, batches, steps: int, lr: float = 1e-4,
                       checkpointing: bool = False) -> pd.DataFrame:
    """`steps` AdamW steps of LoRA (rank 8) + distillation from `teacher` on its compact model with the layers
    `keep`, cycling through `batches` (optional activation checkpointing of the student): step, loss, seconds."""
    student = attach_adapters(compact_model(teacher, keep), rank=8)
    loss_fn = DistillationLoss(teacher)
    optimizer = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=lr)
    student.train()
    rows = []
    with activation_checkpointing(student, checkpointing):
        for step in range(steps):
            start = time.perf_counter()
            loss = loss_fn(student, to_model_device(student, batches[step % len(batches)]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            rows.append({"step": step, "loss": loss.item(), "seconds": time.perf_counter() - start})
    return pd.DataFrame(rows)


def measure(task: str, path: str, dtype: str, n_sequences: int, batch_size: int, threads: int) -> dict:
    """One measurement on the model saved at `path`, run in its own process: seconds, seconds_per_sequence (per
    calibration sequence; per sequence of the batch for a healing step and a forward pass) and peak_bytes."""
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=as_dtype(dtype)).eval()
    data = random_data(model.config.num_items, n_sequences, model.config.max_history)
    batches = calibration_batches(data, model, n_sequences, batch_size)
    if task in SCORERS:  # each first runs once, untimed, on one batch: libraries' one-off set-up is not counted
        SCORERS[task](model, batches[:1], n_boot=0)
        _, seconds, peak = peak_memory(lambda: SCORERS[task](model, batches, n_boot=200), "cpu")
    elif task == "compaction":
        compact_model(model, KEEP)
        _, seconds, peak = peak_memory(lambda: compact_model(model, KEEP), "cpu")
    elif task == "healing_step":  # the second of two steps: the first also allocates AdamW's state
        distillation_steps(model, KEEP, batches, 1)
        steps, _, peak = peak_memory(lambda: distillation_steps(model, KEEP, batches, 2), "cpu")
        seconds = steps["seconds"].iloc[-1]
        return {"seconds": seconds, "seconds_per_sequence": seconds / batch_size, "peak_bytes": peak}
    elif task == "speed":
        table = compare_efficiency(model, compact_model(model, KEEP), batches[0], repeats=3, warmup=1,
                                   threads=threads).set_index("model")
        seconds = table.loc["full", "latency_ms"] / 1000
        return {"seconds": seconds, "seconds_per_sequence": seconds / batch_size, "peak_bytes": np.nan,
                "speedup": table.loc["compact", "speedup"], "ideal_speedup": table.loc["compact", "flop_ratio"]}
    else:
        raise ValueError(f"unknown measurement {task!r}: a criterion ({CRITERIA}), compaction, healing_step or speed")
    return {"seconds": seconds, "seconds_per_sequence": seconds / n_sequences if task in SCORERS else np.nan,
            "peak_bytes": peak}


def matmul_tflops(shape: dict, tokens: int, dtype: torch.dtype, threads: int, repeats: int = 5) -> float:
    """Sustained throughput (TFLOP/s) of this CPU on the MLP matmul of `shape` over `tokens` tokens."""
    torch.set_num_threads(threads)
    x, w = torch.randn(tokens, shape["hidden"], dtype=dtype), torch.randn(shape["intermediate"], shape["hidden"],
                                                                          dtype=dtype)
    torch.nn.functional.linear(x, w)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.nn.functional.linear(x, w)
    return 2 * tokens * shape["hidden"] * shape["intermediate"] * repeats / (time.perf_counter() - start) / 1e12


def run(sizes=tuple(SHAPES), dtype: str = "bfloat16", n_items: int = 4000, text_vocab: int = 0, n_sequences: int = 4,
        batch_size: int = 2, length: int = 50, threads: int = 1, tasks=(*CRITERIA, "compaction", "healing_step",
                                                                         "speed")) -> pd.DataFrame:
    """Every measurement at every size: one tidy row each (size, params, weight_bytes, measurement, seconds,
    seconds_per_sequence, peak_bytes, peak_over_weights, speedup, ideal_speedup)."""
    unknown = sorted(set(sizes) - set(SHAPES))
    if unknown:
        raise ValueError(f"unknown sizes {unknown}: choose from {list(SHAPES)}")
    rows = []
    os.environ["MALLOC_MMAP_THRESHOLD_"] = "131072"  # glibc in the workers: freed large blocks go back to the OS
    spawn = multiprocessing.get_context("spawn")
    for size in sizes:
        model = build(SHAPES[size], n_items, length, text_vocab, dtype=as_dtype(dtype))
        params, size_bytes = count_parameters(model), weight_bytes(model)
        with tempfile.TemporaryDirectory() as folder:
            model.save_pretrained(folder)
            del model
            for task in tasks:
                with spawn.Pool(1) as pool:
                    row = pool.apply(measure, (task, folder, dtype, n_sequences, batch_size, threads))
                rows.append({"size": size, "params": params, "weight_bytes": size_bytes, "measurement": task, **row,
                             "peak_over_weights": row["peak_bytes"] / size_bytes})
                print(f"{size:>5} {task:<17} {row['seconds']:8.2f} s, peak "
                      f"{rows[-1]['peak_over_weights']:.2f}x weights", flush=True)
    return pd.DataFrame(rows)


def llama3_8b_params(n_items: int, length: int) -> int:
    """Parameters of Llama-3-8B extended with `n_items` item tokens (counted on the meta device, no memory)."""
    return count_parameters(build(LLAMA3_8B, n_items, length, LLAMA3_TEXT_VOCAB, device="meta"))


def extrapolate(measured: pd.DataFrame, target_params: int, speed_ratio: float,
                n_sequences: int = 1024) -> pd.DataFrame:
    """Per criterion: seconds per sequence at `target_params` from a log-log line through the measured sizes, and
    the minutes `n_sequences` take on a device `speed_ratio` times faster than this CPU."""
    if measured["params"].nunique() < 2:
        raise ValueError("extrapolation needs measurements at two sizes or more: pass several --sizes")
    rows = []
    for task, group in measured[measured["measurement"].isin(CRITERIA)].groupby("measurement", sort=False):
        slope, intercept = np.polyfit(np.log(group["params"]), np.log(group["seconds_per_sequence"]), 1)
        cpu = float(np.exp(intercept + slope * np.log(target_params)))
        rows.append({"size": "8B", "params": target_params, "measurement": task,
                     "seconds_per_sequence": cpu, "loglog_slope": slope, "loglog_intercept": intercept,
                     "gpu_minutes_1024": cpu * n_sequences / speed_ratio / 60})
    return pd.DataFrame(rows)


def figure(table: pd.DataFrame):
    """Seconds per calibration sequence against parameters (log-log): the measured points and each criterion's
    fitted line extended to Llama-3-8B."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    plots.style()
    measured = table[(table["kind"] == "measured") & table["measurement"].isin(CRITERIA)]
    fits = table[table["kind"] == "extrapolated"].set_index("measurement")
    fig, ax = plt.subplots(figsize=(6.5, 4))
    sns.scatterplot(data=measured, x="params", y="seconds_per_sequence", hue="measurement", style="measurement",
                    ax=ax, s=40)
    colours = dict(zip(measured["measurement"].unique(), sns.color_palette()))
    x = np.geomspace(measured["params"].min(), fits["params"].max(), 50)
    for name, fit in fits.iterrows():
        ax.plot(x, np.exp(fit["loglog_intercept"] + fit["loglog_slope"] * np.log(x)), "--", lw=0.8,
                color=colours[name])
    ax.axvline(fits["params"].max(), color="grey", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="parameters",
           ylabel="CPU seconds per calibration sequence", title="Criterion cost, extrapolated to Llama-3-8B (grey)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--text-vocab", type=int, default=0,
                        help=f"text tokens before the items ({LLAMA3_TEXT_VOCAB} for Llama-3's real vocabulary)")
    parser.add_argument("--items", type=int, default=4000)
    parser.add_argument("--sequences", type=int, default=4, help="calibration sequences per measurement")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--length", type=int, default=50, help="tokens per sequence (the notebooks' max_len)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--gpu-tflops", type=float, default=150.0,
                        help="assumed sustained bf16 matmul TFLOP/s of one 80 GB GPU, for the extrapolation")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    config = {k: str(v) for k, v in vars(args).items()}
    measured = run(args.sizes, args.dtype, args.items, args.text_vocab, args.sequences, args.batch_size,
                   args.length, args.threads).assign(kind="measured")
    cpu_tflops = matmul_tflops(SHAPES[args.sizes[-1]], args.batch_size * args.length, as_dtype(args.dtype),
                               args.threads)
    ratio = args.gpu_tflops / cpu_tflops
    target = llama3_8b_params(args.items, args.length)
    table = pd.concat([measured, extrapolate(measured, target, ratio).assign(kind="extrapolated")], ignore_index=True)
    write_csv(args.out, table)
    write_json(args.out.with_suffix(".json"), {"cpu_matmul_tflops": cpu_tflops, "assumed_gpu_tflops": args.gpu_tflops,
                                               "gpu_cpu_ratio": ratio, **provenance(config, seed=0)})
    plots.save(figure(table), "scale_cost")
    print(table.to_string(float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
