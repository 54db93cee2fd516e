"""Training noise beside the bootstrap intervals: how far a change of seed moves the CI set's numbers
(results/runs/ci/<dataset>/training_noise.csv, lwadapter.reexecution), as a paper table and macros."""

import pandas as pd

from lwadapter.reexecution import NOISE_FILE
from lwadapter.report.latex import write_table
from lwadapter.report.macros import fmt, macro_name
from lwadapter.results import read_results_csv

QUANTITIES = [  # (table, column, interval columns or None, what it is)
    ("base_models", "ndcg@10", ("ndcg@10_low", "ndcg@10_high"), "test NDCG@10 of a base model"),
    ("selection", "ndcg@10", None, "test NDCG@10 of a compact model before healing"),
    ("healing", "best_valid_ndcg@10", None, "validation NDCG@10 of a healed model"),
    ("compact_eval", "quality_kept", ("ci_low", "ci_high"), "quality kept of a compact model"),
    ("layer_scores", "rank", None, "a layer's rank by a criterion"),
]


def noise_summary(folder) -> pd.DataFrame:
    """One row a headline quantity: its pooled across-seed standard deviation and the median half-width of its 95%
    bootstrap interval in the committed run of `folder` (a results folder holding training_noise.csv)."""
    noise = read_results_csv(folder / NOISE_FILE).set_index(["table", "column"])
    rows = []
    for table, column, interval, what in QUANTITIES:
        half = float("nan")
        if interval is not None:
            values = read_results_csv(folder / f"{table}.csv")
            half = float(((values[interval[1]] - values[interval[0]]) / 2).median())
        rows.append({"quantity": what, "rows": int(noise.loc[(table, column), "rows"]),
                     "seed sd": float(noise.loc[(table, column), "seed_sd"]), "bootstrap half-width": half})
    return pd.DataFrame(rows)


def write_noise(dataset: str, title: str, folder, tables_dir) -> dict[str, str]:
    """<tables_dir>/<dataset>_training_noise.tex and the macros the text quotes (empty without a noise file)."""
    if not (folder / NOISE_FILE).exists():
        return {}
    summary = noise_summary(folder)
    write_table(f"{dataset}_training_noise", summary,
                f"{title}: training noise of the CI set (the notebooks' defaults) retrained with seeds 0, 1 and 2: "
                "pooled across-seed standard deviation of each quantity, next to the median half-width of its 95\\% "
                "bootstrap interval over users in the seed-0 run.", digits=4, folder=tables_dir)
    at = summary.set_index("quantity")
    return {macro_name(dataset, "noise base ndcg"): fmt(at.iloc[0]["seed sd"], 4),
            macro_name(dataset, "noise base half width"): fmt(at.iloc[0]["bootstrap half-width"], 4),
            macro_name(dataset, "noise kept"): fmt(at.iloc[3]["seed sd"], 4),
            macro_name(dataset, "noise kept half width"): fmt(at.iloc[3]["bootstrap half-width"], 4)}
