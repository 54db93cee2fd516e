"""The paper's figures, drawn from results/<dataset>/*.csv only (no recomputation); one seaborn style (plots.style)."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

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


def integer_ticks(ax, axis: str = "x") -> None:
    """Whole-number ticks only (layers, depth, epochs)."""
    getattr(ax, f"{axis}axis").set_major_locator(MaxNLocator(integer=True))


def learning_curves(curves: pd.DataFrame):
    """Validation NDCG@10 of every model against epoch and against cumulative training FLOPs (log scale); the
    restored best epoch of each run marked with a cross. `curves`: train.Trained histories with a `model` column."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    scored = curves.dropna(subset=["valid_ndcg@10"])
    best = scored.loc[scored.groupby("model")["valid_ndcg@10"].idxmax()]
    for ax, x in zip(axes, ("epoch", "flops")):
        sns.lineplot(scored, x=x, y="valid_ndcg@10", hue="model", ax=ax, legend=ax is axes[1], lw=1)
        sns.scatterplot(best, x=x, y="valid_ndcg@10", hue="model", marker="X", s=60, ax=ax, legend=False)
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


def quality_vs_compute(routes: pd.DataFrame):
    """Test NDCG@10 against training FLOPs (log scale) of every route to a k-layer model (compare.training_compute),
    one panel per architecture; the controls' points labelled with their k."""
    models = sorted(routes["model"].unique())
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 3.8), sharey=True, squeeze=False)
    for ax, model in zip(axes[0], models):
        frame = routes[routes["model"] == model]
        sns.scatterplot(frame, x="train_flops", y="ndcg@10", hue="route", style="route", s=40, alpha=0.8, ax=ax)
        controls = frame[~frame["route"].str.startswith("prune")]
        for k, x, y in zip(controls["k"], controls["train_flops"], controls["ndcg@10"]):
            ax.annotate(f"k={k}", (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("training FLOPs (analytic)")
        ax.set_ylabel("test NDCG@10")
        ax.set_title(model)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


ROUTE_STYLE = {"scratch": ("trained from scratch (study data)", "s", "0.15"),
               "pretrained": ("pretrained + adapted", "^", "0.5")}


def criteria_vs_k(compact_eval: pd.DataFrame, criteria: list[str] | None = None, adapter: str = "lora"):
    """The study's question at a glance: quality kept (test NDCG@10 / the full model's, paired 95% interval)
    against layers kept, one colour per criterion / strategy: dashed, before healing (every k); solid points with
    intervals, healed with `adapter`; the controls of the same depth (from scratch, pretrained + adapted) in grey;
    the full model at 1. One panel per architecture. `criteria` limits the curves (default: every one except the
    removal ground truths)."""
    frame = compact_eval.assign(healed=compact_eval["healed"].astype(bool),
                                method=compact_eval["criterion"] + " / " + compact_eval["strategy"])
    methods = frame[~frame["strategy"].isin(["full", *ROUTE_STYLE]) & ~frame["criterion"].isin(GROUND_TRUTH)]
    if criteria is not None:
        methods = methods[methods["criterion"].isin(criteria)]
    order = sorted(methods["method"].unique(), key=lambda m: (not m.startswith("fisher"), m))
    palette = [c for i, c in enumerate(sns.color_palette("tab10")) if i != 7]  # grey is the controls'
    colours = dict(zip(order, palette if len(order) <= len(palette) else sns.color_palette("husl", len(order))))
    models = sorted(frame["model"].unique())
    fig, axes = plt.subplots(1, len(models), figsize=(7.5 * len(models), 4.4), sharey=True, squeeze=False)
    for ax, model in zip(axes[0], models):
        part = methods[methods["model"] == model]
        healed = part[part["healed"] & (part["adapter"] == adapter)]
        offsets = dict(zip(order, np.linspace(-1.2, 1.2, len(order))))  # healed points dodged around their k
        for method in order:
            before = part[(part["method"] == method) & ~part["healed"]].sort_values("k")
            ax.plot(before["k"], before["quality_kept"], ls="--", lw=0.9, marker=".", color=colours[method], alpha=0.7)
            after = healed[healed["method"] == method].sort_values("k")
            if len(after):
                x = after["k"] + offsets[method]
                err = np.clip([after["quality_kept"] - after["ci_low"], after["ci_high"] - after["quality_kept"]], 0, None)
                ax.errorbar(x, after["quality_kept"], yerr=err, fmt="o-", ms=4.5, lw=1.4, capsize=2,
                            color=colours[method], label=method)
        for route, (label, marker, colour) in ROUTE_STYLE.items():
            ctrl = frame[(frame["model"] == model) & (frame["strategy"] == route)].sort_values("k")
            if len(ctrl):
                err = np.clip([ctrl["quality_kept"] - ctrl["ci_low"], ctrl["ci_high"] - ctrl["quality_kept"]], 0, None)
                ax.errorbar(ctrl["k"], ctrl["quality_kept"], yerr=err, fmt=marker + ":", ms=6, lw=1, capsize=2,
                            color=colour, label=label)
        ax.axhline(1, color="0.3", lw=1)
        ax.annotate("full model", (0.01, 1), xycoords=("axes fraction", "data"), xytext=(0, 3),
                    textcoords="offset points", fontsize=7, color="0.3")
        ax.set_xlabel("decoder layers kept")
        ax.set_ylabel("quality kept (test NDCG@10 / full model)")
        ax.set_title(f"{model}: healed ({adapter}, points with 95% intervals) and before healing (dashed)",
                     fontsize=9)
        integer_ticks(ax)
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.08, 1))
    fig.tight_layout()
    return fig
