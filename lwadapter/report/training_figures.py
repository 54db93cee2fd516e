"""Figures of notebooks 02 and 05 about training runs: learning curves, depth at convergence, healing curves and
the healing budget."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from lwadapter.report.plots import integer_ticks


def learning_curves(curves: pd.DataFrame):
    """Validation NDCG@10 of every model against epoch and against cumulative training FLOPs (log scale); the
    restored best epoch of each run marked with a cross. `curves`: train.Trained histories with a `model` column."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    scored = curves.dropna(subset=["valid_ndcg@10"])
    best = scored.loc[scored.groupby("model")["valid_ndcg@10"].idxmax()]
    order = list(dict.fromkeys(scored["model"]))  # one colour per model in lines and crosses (groupby sorts)
    for ax, x in zip(axes, ("epoch", "flops")):
        sns.lineplot(scored, x=x, y="valid_ndcg@10", hue="model", hue_order=order, ax=ax, legend=ax is axes[1], lw=1)
        sns.scatterplot(best, x=x, y="valid_ndcg@10", hue="model", hue_order=order, marker="X", s=60, ax=ax,
                        legend=False)
        ax.set_ylabel("validation NDCG@10")
    integer_ticks(axes[0])
    axes[1].set_xscale("log")
    axes[1].set_xlabel("training FLOPs (analytic)")
    axes[1].legend(fontsize=6, ncols=2, title="x: restored best epoch", title_fontsize=6)
    fig.tight_layout()
    return fig


def depth_curve(base: pd.DataFrame, metric: str = "ndcg@10"):
    """Test `metric` (95% bootstrap interval) of from-scratch models against depth, one line per architecture."""
    models = base[base["layers"] > 0].sort_values("layers")
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for arch, frame in models.groupby("arch"):
        err = np.clip([frame[metric] - frame[f"{metric}_low"], frame[f"{metric}_high"] - frame[metric]], 0, None)
        ax.errorbar(frame["layers"], frame[metric], yerr=err, marker="o", capsize=3, label=arch)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(models["layers"].unique()), [str(n) for n in sorted(models["layers"].unique())])
    ax.minorticks_off()
    ax.set_xlabel("decoder layers (trained from scratch to convergence)")
    ax.set_ylabel(f"test {metric}")
    ax.legend()
    fig.tight_layout()
    return fig


def healing_curves(curves: pd.DataFrame, full_valid: dict, title: str = ""):
    """Training loss (the healing objective) and validation NDCG@10 of every healed run against epoch, one row a
    model; dashed: the full model's validation NDCG@10, dotted: each run's compact model before healing.
    `curves`: study.adapter_healing.healing_curves."""
    archs = list(dict.fromkeys(curves["model"]))
    fig, axes = plt.subplots(len(archs), 2, figsize=(10, 3.4 * len(archs)), squeeze=False)
    for (ax_loss, ax_ndcg), arch in zip(axes, archs):
        frame = curves[curves["model"] == arch]
        runs = frame["run"].unique()
        palette = dict(zip(runs, sns.color_palette("husl" if len(runs) > 10 else None, len(runs))))
        sns.lineplot(frame, x="epoch", y="train_loss", hue="run", palette=palette, marker="o", ax=ax_loss,
                     legend=False)
        sns.lineplot(frame.drop(columns="unhealed").dropna(), x="epoch", y="valid_ndcg@10", hue="run",
                     palette=palette, marker="o", ax=ax_ndcg)
        ax_ndcg.axhline(full_valid[arch], color="0.3", ls="--")
        for run, before in frame.drop_duplicates("run")[["run", "unhealed"]].itertuples(index=False):
            ax_ndcg.axhline(before, color=palette[run], ls=":")
        ax_loss.set_ylabel("healing loss")
        ax_ndcg.set_ylabel("validation NDCG@10")
        ax_loss.set_title(f"{title}: {arch}")
        sns.move_legend(ax_ndcg, "upper left", bbox_to_anchor=(1, 1), fontsize=7, title=None)
        for ax in (ax_loss, ax_ndcg):
            ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    return fig


def healing_budget(budget: pd.DataFrame):
    """Validation NDCG@10 of each method after no healing, one epoch and converged; a panel per adapter and model.
    `budget`: study.adapter_healing.healing_budget."""
    grid = sns.catplot(budget, x="budget", y="valid ndcg@10", hue="method", col="adapter", row="model", kind="point",
                       height=3.2, aspect=1.1, dodge=0.3, markersize=4, linewidth=1)
    grid.set_axis_labels("healing budget", "validation NDCG@10")
    return grid.figure
