"""Choose the training recipe on validation users only: a small grid, every run to convergence, one tidy table.

`python -m lwadapter.bench.tuning --dataset ml-100k --layers 8 -g lr 1e-3 3e-3 -g dropout 0 0.1` trains the default
recommender (notebook 02's width and recipe) for every combination through train_or_fine_tune (checkpoints cached, so
a repeated combination is read back, not retrained) and writes results/<dataset>/tuning_<arch>-<layers>L.csv (rows
accumulate across invocations): the combination, its best validation NDCG@10, epochs, stop reason and compute,
and tuning_<name>_curves.csv: every combination's validation curve, epoch by epoch. Test users are never evaluated.

`--checkpoint smollm2-135m` (or gemma3-270m, or a local folder) tunes a pretrained LLM recommender instead, from
LLM_MODEL and LLM_TRAIN (items-only vocabulary, untied item head, bf16 where it pays, length-bucketed batches),
into tuning_<checkpoint>.csv; with `--lora RANK` its body stays frozen and only a LoRA adapter of that rank and the
item tables train (lwadapter.lora_recommender, LLM_LORA_TRAIN), into tuning_<checkpoint>-lora.csv.
"""

import argparse
import itertools
import os
import sys
from pathlib import Path

import pandas as pd
import yaml

from lwadapter import runtime
from lwadapter.data import load_prepared
from lwadapter.results import provenance, write_csv, write_json
from lwadapter.lora_recommender import train_or_fine_tune

MODEL = dict(arch="llama", hidden=32, heads=2, kv_heads=1, max_len=50, tie_embeddings=True, scaled_init=True,
             dropout=0.0)  # notebook 02's first architecture and `model` default
TRAIN = dict(epochs=60, batch_size=64, lr=1e-3, weight_decay=0.0, patience=5, warmup_steps=50, decay="cosine",
             lr_floor=0.1, stride=None)  # notebook 02's `train` default
LLM_MODEL = dict(max_len=50, item_init="random", item_init_std=0.02, text_vocabulary=False, tie_item_head=False)
LLM_TRAIN = dict(epochs=30, batch_size=32, lr=1e-4, weight_decay=0.0, patience=3, warmup_steps=20,
                 decay="cosine", lr_floor=0.1, precision="auto", length_buckets=16)
LLM_LORA_TRAIN = {**LLM_TRAIN, "lr": 1e-3, "epochs": 8}  # frozen body + LoRA + item tables (issue 25's recipe)


def parse_value(text: str):
    """A grid value from the command line: YAML, with numbers such as 1e-3 read as floats (YAML 1.1 keeps them
    strings)."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def with_combination(model: dict, train: dict, combo: dict) -> tuple[dict, dict]:
    """Copies of the model spec and the recipe with `combo`'s values: a key of the spec (a nested one as
    `outer.inner`, e.g. lora.item_dim) goes to the spec, any other to the recipe."""
    spec, recipe = dict(model), dict(train)
    for key, value in combo.items():
        outer, _, inner = key.partition(".")
        if inner:
            spec[outer] = {**spec[outer], inner: value}
        else:
            (spec if key in spec else recipe)[key] = value
    return spec, recipe


def grid_search(dataset: str, grid: dict[str, list], model: dict, train: dict, name: str,
                seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every combination of `grid` (keys of the model or training spec) trained to convergence from `model` and
    `train`; validation only. Returns one row per combination and the validation curves (one row per epoch)."""
    data = load_prepared(dataset)
    rows, curves = [], []
    for values in itertools.product(*grid.values()):
        combo = dict(zip(grid, values))
        spec, recipe = with_combination(model, train, combo)
        trained = train_or_fine_tune(name, data, spec, recipe, seed=seed)
        rows.append({"model": name, **combo, "valid_ndcg@10": trained.history["valid_ndcg@10"].max(),
                     **trained.record()})
        curves.append(trained.history[["epoch", "train_loss", "valid_ndcg@10"]].assign(model=name, **combo))
        print(f"{combo} -> valid NDCG@10 {rows[-1]['valid_ndcg@10']:.4f} ({rows[-1]['stop_reason']}, "
              f"{rows[-1]['epochs']} epochs, {rows[-1]['train_seconds']:.0f} s)", flush=True)
    return pd.DataFrame(rows), pd.concat(curves, ignore_index=True)


def _accumulate(path, table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Rows of earlier invocations kept; a combination run again replaces its rows."""
    if not path.exists():
        return table
    old = pd.read_csv(path)
    if set(keys) <= set(old.columns):
        old = old[~old.set_index(keys).index.isin(table.set_index(keys).index)]
    return pd.concat([old, table], ignore_index=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--arch", default="llama")
    parser.add_argument("--checkpoint", default=None, help="a pretrained LLM (smollm2-135m, gemma3-270m or a folder)")
    parser.add_argument("--lora", type=int, default=None, metavar="RANK",
                        help="with --checkpoint: freeze the body, LoRA of this rank + item tables (LLM_LORA_TRAIN)")
    parser.add_argument("-g", nargs="+", action="append", metavar=("KEY", "VALUE"), default=[],
                        help="a grid axis: a model or training key (lora.KEY for the adapter's) and its values (YAML)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")
    runtime.quiet()
    grid = {key: [parse_value(v) for v in values] for key, *values in args.g}
    if args.checkpoint:
        name = f"tuning_{Path(args.checkpoint).name}" + ("-lora" if args.lora else "")
        model, train = {"path": args.checkpoint, **LLM_MODEL}, LLM_TRAIN
        if args.lora:
            model["lora"] = {"rank": args.lora, "alpha": 2.0 * args.lora, "dropout": 0.0}
            train = LLM_LORA_TRAIN
    else:
        name = f"tuning_{args.arch}-{args.layers}L"
        model, train = {**MODEL, "arch": args.arch, "n_layers": args.layers}, TRAIN
    table, curves = grid_search(args.dataset, grid, model, train, name.removeprefix("tuning_"))
    out = runtime.RESULTS_DIR / args.dataset
    table = _accumulate(out / f"{name}.csv", table, ["model", *grid])
    curves = _accumulate(out / f"{name}_curves.csv", curves, ["model", *grid])
    write_csv(out / f"{name}.csv", table)
    write_csv(out / f"{name}_curves.csv", curves)
    write_json(out / f"{name}.json", provenance({"command": "python -m lwadapter.bench.tuning " + " ".join(sys.argv[1:] if argv is None else argv),
                                                 "grid": grid, "model": model, "train": train}, 0))
    print(table.round(4).to_string(index=False))


if __name__ == "__main__":
    main()
