"""One-command GPU check: every criterion, compaction to 8 layers, LoRA + distillation steps and full vs compact
latency on a Llama-3-8B-shaped recommender (random init, bfloat16) or a local checkpoint, on one GPU.

    python -m lwadapter.bench.gpu_check [--checkpoint PATH] [--checkpointing]     (make gpu-check)
    python -m lwadapter.bench.gpu_check --tiny --out /tmp/gpu                     (the same path, tiny, on the CPU)

Writes <out>/criteria.csv (seconds, seconds per sequence, peak memory and its ratio to the weight bytes per
criterion), layer_scores.csv, healing.csv (loss and seconds per step) and speed.csv (full vs compact latency,
measured and FLOP-ideal speed-up), every row with the device name and dtype.
"""

import argparse
import platform
from pathlib import Path

import pandas as pd
import torch

from lwadapter.compact import compact_model
from lwadapter.evaluate import compare_efficiency, count_parameters
from lwadapter.models import best_dtype, load_pretrained_recommender
from lwadapter.results import write_csv
from lwadapter.runtime import RESULTS_DIR
from lwadapter.bench.scale import (CRITERIA, LLAMA3_8B, LLAMA3_TEXT_VOCAB, build, distillation_steps, peak_memory,
                             random_data, weight_bytes)
from lwadapter.scoring import calibration_batches, score_layers
from lwadapter.selection import top_k

TINY = dict(hidden=32, heads=4, kv_heads=1, intermediate=112)  # Llama-3 proportions, tiny
OUT = RESULTS_DIR / "gpu"


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.machine()})"


def recommender(checkpoint, tiny: bool, n_items: int, length: int, device: torch.device, dtype: torch.dtype):
    """The local checkpoint extended with `n_items` item tokens, else a random 32-layer Llama-3-8B-shaped (or tiny)
    recommender, placed on `device` in `dtype` as it is created."""
    if checkpoint:
        return load_pretrained_recommender(checkpoint, n_items, max_len=length, dtype=dtype, device_map=device).eval()
    return build(TINY if tiny else LLAMA3_8B, n_items, length, 0 if tiny else LLAMA3_TEXT_VOCAB, device=device,
                 dtype=dtype)


def run(out: Path = OUT, checkpoint=None, tiny: bool = False, n_sequences: int = 64, batch_size: int = 8,
        steps: int = 20, k: int = 8, n_items: int = 4000, length: int = 50, checkpointing: bool = False) -> dict:
    """The check; returns its tables (criteria, layer_scores, healing, speed), also written to `out` as CSV."""
    if not tiny and not torch.cuda.is_available():
        raise RuntimeError("no CUDA device visible: run on a GPU machine, or pass --tiny for the CPU path")
    device = torch.device("cpu" if tiny else "cuda")
    dtype = best_dtype(device)
    model = recommender(checkpoint, tiny, n_items, length, device, dtype)
    size = weight_bytes(model)
    data = random_data(model.config.num_items, n_sequences, model.config.max_history)
    batches = calibration_batches(data, model, n_sequences, batch_size)
    scores, costs = [], []
    for criterion in CRITERIA:
        frame, seconds, peak = peak_memory(lambda: score_layers(model, batches, [criterion],
                                                                checkpointing=checkpointing)[0], device)
        scores.append(frame)
        costs.append({"criterion": criterion, "seconds": seconds, "seconds_per_sequence": seconds / n_sequences,
                      "peak_gb": peak / 1e9, "peak_over_weights": peak / size})
    scores = pd.concat(scores, ignore_index=True)
    fisher = scores[scores["criterion"] == "fisher_empirical"].sort_values("layer")["score"]
    keep = top_k(fisher, k)
    healing = distillation_steps(model, keep, batches, steps, checkpointing=checkpointing)
    speed = compare_efficiency(model, compact_model(model, keep), batches[0], repeats=10, warmup=2)
    run_info = {"device": device_name(device), "dtype": str(dtype).removeprefix("torch."),
                "source": checkpoint or ("random tiny Llama" if tiny else "random Llama-3-8B shape"),
                "model_params": count_parameters(model), "weight_gb": size / 1e9}
    tables = {"criteria": pd.DataFrame(costs), "layer_scores": scores, "healing": healing,
              "speed": speed.assign(kept_layers=" ".join(map(str, keep)))}
    for name, table in tables.items():
        write_csv(Path(out) / f"{name}.csv", table.assign(**run_info))
    return tables


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="a local Hugging Face checkpoint folder (default: random init)")
    parser.add_argument("--tiny", action="store_true", help="a tiny random model on the CPU (tests the path)")
    parser.add_argument("--sequences", type=int, default=64, help="calibration sequences")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20, help="LoRA + distillation steps")
    parser.add_argument("--checkpointing", action="store_true", help="activation checkpointing in backward passes")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    tables = run(args.out, args.checkpoint, args.tiny, args.sequences, args.batch_size, args.steps,
                 checkpointing=args.checkpointing)
    for name in ("criteria", "speed"):
        print(tables[name].to_string(float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
