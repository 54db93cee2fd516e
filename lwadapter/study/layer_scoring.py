"""Notebook 03: every criterion on every layer of each teacher, the rank fusion, the measured removal ground truth,
and how the criteria agree."""

import pandas as pd

from lwadapter import score_ranks, scoring
from lwadapter.sequences import SequenceData

SCORE_COLUMNS = ["model", "criterion", "layer", "score", "ci_low", "ci_high", "rank"]
COST_COLUMNS = ["model", "criterion", "seconds", "epochs"]
GROUND_TRUTHS = ("removal_loss", "removal_ndcg@10")


def score_teachers(teachers: dict, data: SequenceData, train: dict, calibration_sequences: int = 128,
                   calibration_batch: int = 32, n_boot: int = 200, truth_users: int | None = 256, fusion=(),
                   seed: int = 0, checkpointing: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(layer scores, criterion costs) of every teacher (arch -> model): every criterion on a calibration set of
    training sequences, the rank fusion of `fusion`, the removal ground truth on `truth_users` validation users;
    each criterion's wall time also in training epochs of the same model under `train` (notebook 02's recipe)."""
    frames, costs = [], []
    for name, model in teachers.items():
        batches = scoring.calibration_batches(data, model, calibration_sequences, calibration_batch, seed)
        scores, seconds = scoring.score_layers(model, batches, n_boot=n_boot, seed=seed, checkpointing=checkpointing)
        truth, truth_seconds = scoring.timed(scoring.removal_effects, model, data, n_users=truth_users, seed=seed,
                                             n_boot=n_boot)
        truth_cost = pd.DataFrame([{"criterion": "removal (ground truth)", "seconds": truth_seconds}])
        seconds = pd.concat([seconds, truth_cost])
        epoch = scoring.epoch_seconds(model, data, seed=seed, **train)
        frames.append(pd.concat([scores, scoring.fuse(scores, fusion), truth]).assign(model=name))
        costs.append(seconds.assign(model=name, epochs=seconds["seconds"] / epoch))
    layer_scores = score_ranks.add_ranks(pd.concat(frames, ignore_index=True))[SCORE_COLUMNS]
    return layer_scores, pd.concat(costs, ignore_index=True)[COST_COLUMNS]


def criteria_order() -> list[str]:
    """The rows of notebook 03's tables: the criteria in scoring.SCORERS order, the fusion, the ground truths."""
    return [*scoring.SCORERS, "fusion", *GROUND_TRUTHS]


def top_layers(layer_scores: pd.DataFrame, order: list[str], n: int = 5) -> pd.DataFrame:
    """criterion x model: the `n` most important layers, most important first."""
    top = (layer_scores[layer_scores["rank"] <= n].sort_values("rank")
           .groupby(["criterion", "model"], sort=False)["layer"].agg(lambda s: " ".join(map(str, s))).unstack("model"))
    return top.loc[order].rename_axis(columns=f"top {n} layers, most important first")


def agreement(layer_scores: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Spearman and Kendall agreement of every criterion with each removal ground truth, (model, criterion) x
    (statistic, reference)."""
    frame = pd.concat([score_ranks.agreement_by_model(layer_scores, reference) for reference in GROUND_TRUTHS])
    frame["criterion"] = pd.Categorical(frame["criterion"], order)
    return frame.pivot_table(index=["model", "criterion"], columns="reference", values=["spearman", "kendall"],
                             observed=True)
