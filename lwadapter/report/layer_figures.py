"""Figures of notebooks 03-04 and the paper about layers: importance per criterion, agreement with the removal
ground truth, which layers each criterion keeps and what the compact models score before healing."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from lwadapter import score_ranks
from lwadapter.report.plots import integer_ticks
from lwadapter.selection import kept_list


GROUND_TRUTH = ("removal_loss", "removal_ndcg@10")


def depth_band(layer: int, n_layers: int) -> str:
    """lower / middle / upper third of the stack."""
    return ("lower", "middle", "upper")[min(2, 3 * layer // n_layers)]


def kept_shares(selection: pd.DataFrame, k: int) -> pd.DataFrame:
    """Share of kept layers in the lower / middle / upper third, per model, criterion and strategy at k."""
    full = selection[selection["strategy"] == "full"].set_index("model")["k"]
    rows = []
    for r in selection[selection["k"] == k].itertuples():
        bands = pd.Series([depth_band(x, int(full[r.model])) for x in kept_list(str(r.kept_layers))])
        shares = bands.value_counts(normalize=True)
        rows.append({"model": r.model, "criterion": r.criterion, "strategy": r.strategy,
                     **{b: float(shares.get(b, 0.0)) for b in ("lower", "middle", "upper")}})
    return pd.DataFrame(rows)


def importance_heatmap(scores: pd.DataFrame):
    """Criteria x layers, coloured by importance rank within each criterion (1 = most important), one panel a model."""
    models = sorted(scores["model"].unique())
    fig, axes = plt.subplots(1, len(models), figsize=(6.5 * len(models), 4.2), sharey=True, squeeze=False)
    for ax, model in zip(axes[0], models):
        grid = scores[scores["model"] == model].pivot(index="criterion", columns="layer", values="rank")
        sns.heatmap(grid, ax=ax, cmap="viridis_r", cbar_kws={"label": "rank (1 = most important)"})
        ax.set_title(model)
    fig.tight_layout()
    return fig


def agreement_bars(table: pd.DataFrame):
    """Spearman correlation of each criterion with the removal ground truth, per model."""
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    shown = table[~table["criterion"].isin(GROUND_TRUTH)]
    sns.barplot(shown, x="criterion", y="spearman", hue="model", ax=ax)
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_ylabel("Spearman with removal loss")
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    return fig


def quality_vs_k(selection: pd.DataFrame, base: pd.DataFrame | None, criteria: list[str]):
    """Test NDCG@10 of compact (unhealed) models against layers kept, one curve per criterion; the full model as a
    line and the from-scratch control as a star."""
    models = sorted(selection["model"].unique())
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 3.6), sharey=True, squeeze=False)
    curves = selection[selection["criterion"].isin(criteria) & (selection["strategy"] != "full")]
    for ax, model in zip(axes[0], models):
        frame = curves[curves["model"] == model].assign(method=lambda f: f["criterion"] + " / " + f["strategy"])
        sns.lineplot(frame, x="k", y="ndcg@10", hue="method", marker="o", ax=ax)
        full = selection[(selection["model"] == model) & (selection["strategy"] == "full")]
        ax.axhline(float(full["ndcg@10"].iloc[0]), color="k", ls="--", lw=1, label="full model")
        if base is not None:
            control = base[(base["arch"] == model) & (base["layers"] < full["k"].iloc[0]) & (base["layers"] > 2)]
            ax.scatter(control["layers"], control["ndcg@10"], marker="*", s=150, color="crimson", zorder=5,
                       label="from scratch")
        ax.set_title(model)
        ax.set_xlabel("layers kept")
        integer_ticks(ax)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def kept_positions(shares: pd.DataFrame):
    """Stacked shares of kept layers in the lower / middle / upper third, per criterion, one panel a model."""
    models = sorted(shares["model"].unique())
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 3.6), sharey=True, squeeze=False)
    for ax, model in zip(axes[0], models):
        frame = shares[shares["model"] == model].set_index(["criterion", "strategy"])[["lower", "middle", "upper"]]
        frame.index = [f"{c} / {s}" for c, s in frame.index]
        frame.plot.barh(stacked=True, ax=ax, color=sns.color_palette("colorblind", 3), width=0.8)
        ax.set_title(model)
        ax.set_xlabel("share of kept layers")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def score_bars(scores: pd.DataFrame, order: list[str], title: str = ""):
    """Each criterion's layer scores with their 95% intervals: a row of bars per criterion, a column per model."""
    models = scores["model"].nunique()
    fig, axes = plt.subplots(len(order), models, figsize=(6 * models, 1.5 * len(order)), sharex=True, squeeze=False)
    for col, (name, frame) in enumerate(scores.groupby("model")):
        for row, criterion in enumerate(order):
            part = frame[frame["criterion"] == criterion]
            ax = axes[row, col]
            # a percentile interval need not contain its point estimate (e.g. Taylor's linearised bootstrap): clip at 0
            err = np.clip(np.vstack([part["score"] - part["ci_low"], part["ci_high"] - part["score"]]), 0, None)
            ax.bar(part["layer"], part["score"], yerr=None if np.isnan(err).all() else err, color="C0", ecolor="0.3",
                   capsize=1.5, width=0.8)
            ax.set_ylabel(criterion, rotation=0, ha="right", va="center", fontsize=8)
            ax.tick_params(labelsize=7)
            if row == 0:
                ax.set_title(f"{title}: {name}")
        axes[-1, col].set_xlabel("layer")
    fig.tight_layout()
    return fig


def criteria_correlation(scores: pd.DataFrame, order: list[str], title: str = ""):
    """Spearman correlation between every pair of criteria (ground truths included), one heatmap a model."""
    models = scores["model"].nunique()
    fig, axes = plt.subplots(1, models, figsize=(6.5 * models, 5.6), sharey=True, squeeze=False)
    for ax, (name, frame) in zip(axes[0], scores.groupby("model")):
        matrix = score_ranks.correlation_matrix(frame).loc[order, order]
        sns.heatmap(matrix, ax=ax, cmap="vlag", vmin=-1, vmax=1, annot=True, fmt=".1f", annot_kws={"fontsize": 6},
                    cbar_kws={"label": "Spearman rho"})
        ax.set_title(f"{title}: {name}")
    fig.tight_layout()
    return fig


def criterion_costs(costs: pd.DataFrame):
    """Wall time of each criterion in training epochs of the same model (log scale), random left out."""
    fig, ax = plt.subplots(figsize=(7, 3.4))
    sns.barplot(costs[costs["criterion"] != "random"], x="criterion", y="epochs", hue="model", ax=ax)
    ax.set_yscale("log")
    ax.set_ylabel("wall time / training epoch")
    plt.setp(ax.get_xticklabels(), rotation=35, ha="right")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1, 1))
    return fig


def kept_layers_grid(selection: pd.DataFrame, k: int, title: str = ""):
    """Which layers each strategy / criterion keeps at k (selection.csv rows): one row of cells a method, filled
    where the layer is kept; one panel a model."""
    at_k = selection[selection["k"] == k]
    full = selection[selection["strategy"] == "full"].set_index("model")["k"]
    fig, axes = plt.subplots(1, at_k["model"].nunique(), figsize=(6.5 * at_k["model"].nunique(), 4.2), sharey=True,
                             squeeze=False)
    for ax, (name, frame) in zip(axes[0], at_k.groupby("model")):
        grid = pd.DataFrame([np.isin(np.arange(int(full[name])), kept_list(r.kept_layers)).astype(int)
                             for r in frame.itertuples()], index=frame["strategy"] + ": " + frame["criterion"])
        sns.heatmap(grid, ax=ax, cmap="Blues", cbar=False, linewidths=0.2, linecolor="0.9")
        ax.set_xlabel("layer")
        ax.set_title(f"{title}: {name}, kept layers at k = {k}")
    fig.tight_layout()
    return fig
