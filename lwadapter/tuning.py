"""Choose the training recipe on validation users only: a small grid, every run to convergence, one tidy table.

`python -m lwadapter.tuning --dataset ml-100k --layers 8 -g lr 1e-3 3e-3 -g dropout 0 0.1` trains the default
recommender (notebook 02's width and recipe) for every combination through train_or_load (checkpoints cached, so
a repeated combination is read back, not retrained) and writes results/<dataset>/tuning_<arch>-<layers>L.csv (rows
accumulate across invocations): the combination, its best validation NDCG@10, epochs, stop reason and compute. Test users are never evaluated here.
"""

import argparse
import itertools
import os
import sys

import pandas as pd
import yaml

from lwadapter import runtime
from lwadapter.data import load_prepared
from lwadapter.results import provenance, write_csv, write_json
from lwadapter.train import train_or_load

MODEL = dict(arch="llama", hidden=32, heads=2, kv_heads=1, max_len=50, tie_embeddings=True, scaled_init=True,
             dropout=0.0)
TRAIN = dict(epochs=60, batch_size=64, lr=3e-3, weight_decay=0.0, patience=5, warmup_steps=50, decay="cosine",
             lr_floor=0.1)


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


def grid_search(dataset: str, n_layers: int, grid: dict[str, list], model: dict | None = None,
                train: dict | None = None, seed: int = 0) -> pd.DataFrame:
    """Every combination of `grid` (keys of the model or training spec), trained to convergence; validation only."""
    data = load_prepared(dataset)
    rows = []
    for values in itertools.product(*grid.values()):
        combo = dict(zip(grid, values))
        spec = {**MODEL, **(model or {}), "n_layers": n_layers}
        recipe = {**TRAIN, **(train or {})}
        for key, value in combo.items():
            (spec if key in spec else recipe)[key] = value
        trained = train_or_load(f"{spec['arch']}-{n_layers}L", data, spec, recipe, seed=seed)
        rows.append({"arch": spec["arch"], "layers": n_layers, **combo,
                     "valid_ndcg@10": trained.history["valid_ndcg@10"].max(), **trained.record()})
        print(f"{combo} -> valid NDCG@10 {rows[-1]['valid_ndcg@10']:.4f} ({rows[-1]['stop_reason']}, "
              f"{rows[-1]['epochs']} epochs)", flush=True)
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--arch", default="llama")
    parser.add_argument("-g", nargs="+", action="append", metavar=("KEY", "VALUE"), default=[],
                        help="a grid axis: a model or training key and its values (parsed as YAML)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")
    runtime.quiet()
    grid = {key: [parse_value(v) for v in values] for key, *values in args.g}
    table = grid_search(args.dataset, args.layers, grid, model={"arch": args.arch})
    out = runtime.RESULTS_DIR / args.dataset
    name = f"tuning_{args.arch}-{args.layers}L"
    if (out / f"{name}.csv").exists():  # runs accumulate across invocations; a combination run again replaces its row
        table = pd.concat([pd.read_csv(out / f"{name}.csv"), table], ignore_index=True)\
            .drop_duplicates(subset=[c for c in table.columns if c in {"arch", "layers", *grid}], keep="last")
    write_csv(out / f"{name}.csv", table)
    write_json(out / f"{name}.json", provenance({"command": "python -m lwadapter.tuning " + " ".join(sys.argv[1:] if argv is None else argv),
                                                 "grid": grid, "model": MODEL, "train": TRAIN}, 0))
    print(table.round(4).to_string(index=False))


if __name__ == "__main__":
    main()
