"""Figures of notebook 06 and the paper about the compact models: quality kept against layers kept per criterion
(the README's key figure), against training compute per route, measured against ideal speed-up, and scenarios."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from lwadapter.report.layer_figures import GROUND_TRUTH
from lwadapter.report.plots import integer_ticks


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


def quality_vs_compute(routes: pd.DataFrame, compact_eval: pd.DataFrame | None = None):
    """Test NDCG@10 against training FLOPs (log scale) of every route to a k-layer model (compare.training_compute),
    one panel per architecture; the controls' points labelled with their k; with `compact_eval`, the teacher's
    test NDCG@10 (its `full` row) as a dashed line."""
    models = sorted(routes["model"].unique())
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 3.8), sharey=True, squeeze=False)
    for ax, model in zip(axes[0], models):
        frame = routes[routes["model"] == model]
        sns.scatterplot(frame, x="train_flops", y="ndcg@10", hue="route", style="route", s=40, alpha=0.8, ax=ax)
        controls = frame[~frame["route"].str.startswith("prune")]
        for k, x, y in zip(controls["k"], controls["train_flops"], controls["ndcg@10"]):
            ax.annotate(f"k={k}", (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        if compact_eval is not None:
            full = compact_eval[(compact_eval["model"] == model) & (compact_eval["strategy"] == "full")]
            ax.axhline(float(full["ndcg@10"].iloc[0]), color="k", ls="--", lw=1, label="teacher (full model)")
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


def quality_kept_curves(compact_eval: pd.DataFrame, criteria: list[str], title: str = ""):
    """Quality kept (shaded: 95% interval) against layers kept, per criterion / strategy, a row per stage (compact;
    healed per adapter) and a column per model; the from-scratch models as stars; the full model at 1."""
    curves = compact_eval[compact_eval["criterion"].isin(criteria) & (compact_eval["strategy"] != "scratch")]\
        .assign(method=lambda f: f["criterion"] + " / " + f["strategy"],
                stage=lambda f: np.where(f["healed"], "healed (" + f["adapter"] + ")", "compact"))
    stages, models = sorted(curves["stage"].unique()), compact_eval["model"].nunique()
    fig, axes = plt.subplots(len(stages), models, figsize=(6 * models, 3.4 * len(stages)), sharey=True, squeeze=False)
    for row, stage in enumerate(stages):
        for ax, (arch, frame) in zip(axes[row], curves[curves["stage"] == stage].groupby("model")):
            for i, (method, line) in enumerate(frame.sort_values("k").groupby("method")):
                ax.plot(line["k"], line["quality_kept"], marker="o", ms=3, color=f"C{i % 10}", label=method)
                ax.fill_between(line["k"], line["ci_low"], line["ci_high"], color=f"C{i % 10}", alpha=0.12)
            scratch = compact_eval[(compact_eval["model"] == arch) & (compact_eval["strategy"] == "scratch")]
            err = np.clip([scratch["quality_kept"] - scratch["ci_low"], scratch["ci_high"] - scratch["quality_kept"]],
                          0, None)
            ax.errorbar(scratch["k"], scratch["quality_kept"], yerr=err, fmt="*", ms=11, color="crimson",
                        label="from scratch")
            ax.axhline(1, color="0.3", ls="--", lw=1)
            ax.set_title(f"{title}: {arch}, {stage}")
            ax.set_xlabel("layers kept")
            ax.set_ylabel("quality kept (NDCG@10 / full)")
    axes[0, -1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1, 1))
    fig.tight_layout()
    return fig


def scenario_intervals(scenarios: pd.DataFrame, variants: pd.DataFrame, title: str = ""):
    """NDCG@10 with its 95% interval in every scenario (all users, history tertiles, cold start, item similarity),
    a marker per model, a panel per architecture. `variants`: name -> model (the arch) of the scenario models."""
    frame = scenarios[(scenarios["metric"] == "ndcg@10") & (scenarios["n"] > 0)].merge(
        variants[["name", "model"]].rename(columns={"name": "variant", "model": "arch"}), left_on="model",
        right_on="variant")
    frame["case"] = frame["scenario"] + ": " + frame["group"]
    cases = list(dict.fromkeys(frame["case"]))
    archs = frame["arch"].nunique()
    fig, axes = plt.subplots(1, archs, figsize=(6.5 * archs, 5), sharex=True, squeeze=False)
    for ax, (arch, part) in zip(axes[0], frame.groupby("arch")):
        names = list(dict.fromkeys(part["variant"]))
        for i, name in enumerate(names):
            row = part[part["variant"] == name].set_index("case").loc[cases]
            y = np.arange(len(cases)) + (i - (len(names) - 1) / 2) * 0.8 / len(names)
            ax.errorbar(row["value"], y, xerr=np.clip([row["value"] - row["ci_low"], row["ci_high"] - row["value"]],
                                                      0, None), fmt="o", ms=4, capsize=2, color=f"C{i % 10}",
                        label=name.removeprefix(f"{arch} "))
        ax.set_yticks(np.arange(len(cases)), cases)
        ax.invert_yaxis()
        ax.set_xlabel("NDCG@10 (95% interval)")
        ax.set_title(f"{title}: {arch}")
        ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    return fig
