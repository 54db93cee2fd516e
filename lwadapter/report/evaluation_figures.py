"""Figures of notebook 06 and the paper about the compact models: which criterion and how many layers (the README's
key figure), quality against training compute per route, measured against ideal speed-up, and scenarios."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from lwadapter.report.layer_figures import GROUND_TRUTH
from lwadapter.report.plots import integer_ticks
from lwadapter.study.adapter_healing import NO_KD


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


ROUTE_NAMES = {"scratch": "trained from scratch (study data)", "pretrained": "pretrained + adapted"}


CRITERION_NAMES = {"fisher_empirical": "Fisher (empirical)", "fisher_true": "Fisher (true)",
                   "fisher_gate": "Fisher (gate)", "block_influence": "Block Influence", "angular": "angular distance",
                   "taylor": "Taylor", "grad_norm": "gradient norm", "act_norm": "activation norm",
                   "calibration_loss": "SLEB", "fusion": "rank fusion", "random": "random"}
STRATEGY_NAMES = {"block": "contiguous block", "greedy": "greedy removal", "first-k": "first k layers (SLMRec)",
                  "evenly-spaced": "every n-th layer dropped"}


def method_name(criterion: str, strategy: str) -> str:
    """A reader's name for a selection method: "Fisher (empirical)", "angular distance, contiguous block", "SLEB,
    greedy removal", "first k layers (SLMRec)"."""
    if criterion == "position":
        return STRATEGY_NAMES.get(strategy, strategy)
    name = CRITERION_NAMES.get(criterion, criterion)
    return name if strategy == "top-k" else f"{name}, {STRATEGY_NAMES.get(strategy, strategy)}"


def key_figure(compact_eval: pd.DataFrame, k: int, adapter: str = "lora", repeats: pd.DataFrame | None = None):
    """Which criterion, and how many layers can go? One row per model: (a) quality kept before healing (test
    NDCG@10 / the full model's) against layers kept, a line per method, random in black; (b) after healing with
    `adapter` at k, the methods sorted, each a dot with its paired 95% interval, the full model at 1, the k-layer
    controls and the runs fine-tuned without the teacher in grey, a tick at each training seed of the methods healed
    again under other seeds (`repeats`: notebook 06's seed_repeats.csv); the title states the best method's and
    random's quality kept."""
    frame = compact_eval[~compact_eval["criterion"].isin(GROUND_TRUTH)]
    frame = frame.assign(healed=frame["healed"].astype(bool),
                         method=[method_name(c, s) for c, s in zip(frame["criterion"], frame["strategy"])])
    methods = frame[~frame["strategy"].isin(["full", *ROUTE_NAMES])]
    order = sorted(methods["method"].unique(), key=lambda m: (m == "random", not m.startswith("Fisher"), m))
    palette = [c for i, c in enumerate(sns.color_palette("tab20")) if i not in (14, 15)]  # greys: random, controls
    colours = dict(zip(order, palette * 2)) | {"random": "black"}
    models = sorted(frame["model"].unique())
    fig, axes = plt.subplots(len(models), 2, figsize=(12.5, 5.2 * len(models)), squeeze=False,
                             gridspec_kw={"width_ratios": [1.15, 1]})
    for (left, right), model in zip(axes, models):
        part = methods[methods["model"] == model]
        before = part[~part["healed"]].sort_values("k")
        for method in (m for m in order if m in set(before["method"])):
            line, random = before[before["method"] == method], method == "random"
            left.plot(line["k"], line["quality_kept"], marker="o", ms=3.5, lw=2.2 if random else 1.2,
                      ls="--" if random else "-", color=colours[method], label=method, zorder=3 if random else 2)
        left.axhline(1, color="0.3", lw=1)
        left.set_xlabel("decoder layers kept")
        left.set_ylabel("quality kept before healing")
        left.set_title(f"{model}: cut, not healed", fontsize=10)
        integer_ticks(left)
        left.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
        healed = part[part["healed"] & (part["adapter"] == adapter) & (part["k"] == k)]\
            .sort_values("quality_kept", ascending=True, kind="stable")
        controls = frame[(frame["model"] == model) & frame["strategy"].isin(list(ROUTE_NAMES)) & (frame["k"] == k)]
        untaught = part[part["healed"] & (part["adapter"] == NO_KD) & (part["k"] == k)]
        rows = pd.concat([controls.assign(method=[ROUTE_NAMES[s] for s in controls["strategy"]]),
                          untaught.assign(method=untaught["method"] + ", fine-tuned without the teacher"), healed])
        y = np.arange(len(rows))
        err = np.clip([rows["quality_kept"] - rows["ci_low"], rows["ci_high"] - rows["quality_kept"]], 0, None)
        right.errorbar(rows["quality_kept"], y, xerr=err, fmt="none", ecolor="0.6", lw=1.2, capsize=2)
        right.scatter(rows["quality_kept"], y, s=36, zorder=3,
                      c=[colours.get(m, "0.55") for m in rows["method"]])
        seeds = pd.DataFrame() if repeats is None else repeats[(repeats["model"] == model) & (repeats["k"] == k)]
        where = dict(zip(zip(rows["criterion"], rows["strategy"], rows["adapter"]), y))
        ticks = [(r.quality_kept, where[r.criterion, r.strategy, r.adapter]) for r in seeds.itertuples()
                 if (r.criterion, r.strategy, r.adapter) in where]
        if ticks:
            right.scatter(*zip(*ticks), marker="|", s=90, color="0.15", lw=1.2, zorder=4)
        right.set_yticks(y, rows["method"], fontsize=8)
        right.axvline(1, color="0.3", lw=1)
        right.annotate("full model", (1, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -10),
                       textcoords="offset points", fontsize=7, color="0.3")
        right.set_xlabel(f"quality kept at k = {k}, healed ({adapter}; 95% paired interval"
                         + (f"; |: each of {seeds['seed'].nunique()} training seeds)" if ticks else ")"))
        best = healed.iloc[-1] if len(healed) else None
        random = healed[healed["method"] == "random"]
        if best is not None:
            said = f"{best['method']} keeps {best['quality_kept']:.0%}"
            if len(random):
                said += f", random {random['quality_kept'].iloc[0]:.0%}"
            right.set_title(f"{model}, {k} layers healed: {said}", fontsize=10)
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
