"""Notebook 04: the kept layers of every criterion and strategy at every k, each kept set evaluated as a compact
model, where the kept layers sit, and how stable the criteria are across calibration sets."""

import numpy as np
import pandas as pd

from lwadapter import score_ranks, scoring, selection
from lwadapter.compact import compact_model
from lwadapter.evaluate import evaluate_model
from lwadapter.models import decoder_layers
from lwadapter.sequences import SequenceData

SELECTION_COLUMNS = ["model", "criterion", "strategy", "k", "kept_layers", "ndcg@10", "hr@10"]
NOT_PRUNING = ("random", "position", "removal_loss", "removal_ndcg@10")  # left out of the mean over criteria


def select_layers(teachers: dict, layer_scores: pd.DataFrame, data: SequenceData, ks, calibration_sequences: int = 128,
                  calibration_batch: int = 32, sleb_sequences: int = 32, keep_first: bool = False,
                  keep_last: bool = False, seed: int = 0) -> pd.DataFrame:
    """One row per (model, criterion, strategy, k) with its kept layers: the full model; top-k of every criterion of
    `layer_scores`; Gromov et al.'s contiguous block; the data-free cuts of LLM recommenders (criterion "position":
    the first k layers as in SLMRec, evenly spaced layers); SLEB's greedy removal path on the calibration loss."""
    rows = []
    for name, model in teachers.items():
        n_layers = len(decoder_layers(model))
        row = lambda criterion, strategy, k, kept: rows.append(  # noqa: E731
            {"model": name, "criterion": criterion, "strategy": strategy, "k": k, "kept": kept})
        row("none", "full", n_layers, list(range(n_layers)))
        for criterion, frame in layer_scores[layer_scores["model"] == name].groupby("criterion", sort=False):
            for k in ks:
                kept = selection.top_k(frame.sort_values("layer")["score"], k, keep_first, keep_last)
                row(criterion, "top-k", k, kept)
        batches = scoring.calibration_batches(data, model, calibration_sequences, calibration_batch, seed)
        for k in ks:
            row("angular", "block", k, selection.contiguous_block(model, batches, k))
        for k in ks:
            row("position", "first-k", k, selection.first_k(n_layers, k))
            row("position", "evenly-spaced", k, selection.evenly_spaced(n_layers, k))
        sleb = selection.CalibrationLoss(model, scoring.calibration_batches(data, model, sleb_sequences,
                                                                           calibration_batch, seed))
        path = selection.greedy_path(n_layers, sleb, k_min=min(ks))
        for k in ks:
            row("calibration_loss", "greedy", k, path[k])
    return pd.DataFrame(rows)


def kept_at(selected: pd.DataFrame, k: int) -> pd.DataFrame:
    """(strategy, criterion) x model: the kept layers at k as text."""
    return selected.assign(kept=selected["kept"].map(selection.kept_text)).query("k == @k")\
        .pivot(index=["strategy", "criterion"], columns="model", values="kept")


def evaluate_selection(teachers: dict, selected: pd.DataFrame, data: SequenceData) -> pd.DataFrame:
    """selection.csv: every kept set as a compact model, test NDCG@10 and HR@10 (full ranking, history masked;
    identical kept sets evaluated once)."""
    metrics = {}
    for name, kept in sorted({(r.model, tuple(r.kept)) for r in selected.itertuples()}):
        per_user = evaluate_model(compact_model(teachers[name], list(kept)), data, split="test")
        metrics[name, kept] = per_user[["ndcg@10", "hr@10"]].mean()
    scored = selected.join(pd.DataFrame([metrics[r.model, tuple(r.kept)] for r in selected.itertuples()]))
    return scored.assign(kept_layers=scored["kept"].map(selection.kept_text))[SELECTION_COLUMNS]


def selection_ndcg(table: pd.DataFrame) -> pd.DataFrame:
    """(strategy, criterion) x (model, k): test NDCG@10 of the compact models."""
    return table[table["strategy"] != "full"].pivot_table(index=["strategy", "criterion"], columns=["model", "k"],
                                                          values="ndcg@10", sort=False)


def depth_shares(shares: pd.DataFrame) -> pd.DataFrame:
    """Kept-layer shares per third (report.layer_figures.kept_shares) with, per model, their mean over the pruning
    criteria (all but random, the data-free cuts and the removal ground truths)."""
    depth = shares.set_index(["model", "strategy", "criterion"])
    pruning = ~depth.index.get_level_values("criterion").isin(NOT_PRUNING)
    mean = depth[pruning].groupby("model").mean()
    mean = mean.assign(strategy="all", criterion="mean of criteria").set_index(["strategy", "criterion"], append=True)
    return pd.concat([depth, mean]).sort_index(level="model", sort_remaining=False)


def jaccard(a, b) -> float:
    """|a & b| / |a | b| of two kept sets."""
    return len(set(a) & set(b)) / len(set(a) | set(b))


def stability(teachers: dict, layer_scores: pd.DataFrame, data: SequenceData, seeds, criteria, ks,
              calibration_sequences: int = 128, calibration_batch: int = 32) -> pd.DataFrame:
    """Every criterion rescored on calibration sets drawn with other `seeds`: the Spearman correlation of its layer
    scores with `layer_scores`' and the mean Jaccard overlap of the top-k kept sets over `ks`."""
    rows = []
    for name, model in teachers.items():
        reference = layer_scores[layer_scores["model"] == name].pivot(index="layer", columns="criterion",
                                                                      values="score")
        for other in seeds:
            batches = scoring.calibration_batches(data, model, calibration_sequences, calibration_batch, other)
            scores, _ = scoring.score_layers(model, batches, criteria, n_boot=0, seed=other)
            for criterion, frame in scores.groupby("criterion", sort=False):
                a, b = reference[criterion].to_numpy(), frame.sort_values("layer")["score"].to_numpy()
                overlap = np.mean([jaccard(selection.top_k(a, k), selection.top_k(b, k)) for k in ks])
                rows.append({"model": name, "criterion": criterion, "seed": other,
                             "spearman": score_ranks.spearman(a, b), "jaccard": overlap})
    return pd.DataFrame(rows)
