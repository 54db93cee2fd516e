"""The paper's figures, drawn from results/<dataset>/*.csv only (no recomputation); one seaborn style (plots.style)."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from lwadapter import scoring

GROUND_TRUTH = ("removal_loss", "removal_ndcg@10")


def depth_band(layer: int, n_layers: int) -> str:
    """lower / middle / upper third of the stack."""
    return ("lower", "middle", "upper")[min(2, 3 * layer // n_layers)]


def kept_shares(selection: pd.DataFrame, k: int) -> pd.DataFrame:
    """Share of kept layers in the lower / middle / upper third, per model, criterion and strategy at k."""
    full = selection[selection["strategy"] == "full"].set_index("model")["k"]
    rows = []
    for r in selection[selection["k"] == k].itertuples():
        bands = pd.Series([depth_band(int(x), int(full[r.model])) for x in str(r.kept_layers).split()])
        shares = bands.value_counts(normalize=True)
        rows.append({"model": r.model, "criterion": r.criterion, "strategy": r.strategy,
                     **{b: float(shares.get(b, 0.0)) for b in ("lower", "middle", "upper")}})
    return pd.DataFrame(rows)


def agreement(scores: pd.DataFrame, reference: str = "removal_loss") -> pd.DataFrame:
    """Spearman and Kendall agreement of every criterion with the removal ground truth, per model."""
    return pd.concat([scoring.rank_agreement(frame, reference).assign(model=model)
                      for model, frame in scores.groupby("model")], ignore_index=True)


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


def healing_effect(compact_eval: pd.DataFrame):
    """NDCG@10 before and after healing, per model and criterion / strategy."""
    frame = compact_eval.assign(variant=lambda f: f["criterion"] + " / " + f["strategy"] + " k=" + f["k"].astype(str),
                                stage=lambda f: np.where(f["healed"].astype(bool), "healed (" + f["adapter"].astype(str) + ")",
                                                         "compact"))
    g = sns.catplot(frame, kind="bar", y="variant", x="ndcg@10", hue="stage", col="model", height=3.6, aspect=1.3)
    return g.figure


def speedups(compact_eval: pd.DataFrame):
    """Measured speed-up against the FLOP-ideal speed-up; the diagonal is ideal."""
    frame = compact_eval.dropna(subset=["speedup", "ideal_speedup"])
    fig, ax = plt.subplots(figsize=(4, 3.6))
    sns.scatterplot(frame, x="ideal_speedup", y="speedup", hue="model", style="model", s=60, ax=ax)
    top = float(max(frame["ideal_speedup"].max(), frame["speedup"].max())) * 1.1
    ax.plot([1, top], [1, top], color="0.4", ls="--", lw=1)
    ax.set_xlabel("ideal speed-up (FLOP ratio)")
    ax.set_ylabel("measured speed-up")
    fig.tight_layout()
    return fig


def scenario_bars(scenarios: pd.DataFrame):
    """Scenario metrics of full and compact models side by side, with bootstrap intervals."""
    frame = scenarios.assign(case=lambda f: f["scenario"] + ": " + f["group"].astype(str) + " (" + f["metric"] + ")")
    fig, ax = plt.subplots(figsize=(7.5, 0.35 * frame["case"].nunique() * max(1, frame["model"].nunique() / 2) + 1.5))
    sns.barplot(frame, y="case", x="value", hue="model", ax=ax, errorbar=None)
    for patch_group, (_, sub) in zip(ax.containers, frame.groupby("model", sort=False)):
        for bar, r in zip(patch_group, sub.itertuples()):
            y = bar.get_y() + bar.get_height() / 2
            ax.plot([r.ci_low, r.ci_high], [y, y], color="0.2", lw=0.8)
    ax.set_xlabel("value")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
