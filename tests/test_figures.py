"""Paper figures drawn from result tables: whole-number depth ticks, the stopping point marked, every route shown."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from lwadapter.report import evaluation_figures, layer_figures, training_figures  # noqa: E402


@pytest.fixture
def base():
    return pd.DataFrame({"arch": ["llama"] * 3, "layers": [2, 8, 32], "ndcg@10": [0.12, 0.11, 0.10],
                         "ndcg@10_low": [0.10, 0.09, 0.08], "ndcg@10_high": [0.14, 0.13, 0.12]})


def test_depth_curve_ticks_are_the_depths(base):
    ax = training_figures.depth_curve(base).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "8", "32"]
    assert np.allclose(ax.lines[0].get_ydata(), [0.12, 0.11, 0.10])


def test_learning_curves_mark_the_restored_epoch():
    curves = pd.DataFrame({"model": ["a"] * 4, "epoch": [1, 2, 3, 4], "flops": [1e9, 2e9, 3e9, 4e9],
                           "valid_ndcg@10": [0.1, 0.3, 0.2, 0.25]})
    fig = training_figures.learning_curves(curves)
    marked = fig.axes[0].collections[-1].get_offsets()  # the scatter of best epochs, drawn last
    assert marked.tolist() == [[2.0, 0.3]]
    assert all(float(t).is_integer() for t in fig.axes[0].get_xticks())
    assert fig.axes[1].get_xscale() == "log"


def test_each_cross_has_the_colour_of_its_models_line():
    curves = pd.DataFrame({"model": ["b"] * 3 + ["a"] * 3, "epoch": [1, 2, 3] * 2, "flops": [1e9, 2e9, 3e9] * 2,
                           "valid_ndcg@10": [0.1, 0.3, 0.2, 0.05, 0.06, 0.07]})
    ax = training_figures.learning_curves(curves).axes[0]
    lines = {tuple(line.get_xydata()[1]): line.get_color() for line in ax.lines if len(line.get_xdata()) == 3}
    crosses = ax.collections[-1]
    colour = {tuple(xy): to_hex(c) for xy, c in zip(crosses.get_offsets().tolist(), crosses.get_facecolors())}
    assert colour[(2.0, 0.3)] == to_hex(lines[(2.0, 0.3)]) and colour[(3.0, 0.07)] == to_hex(lines[(2.0, 0.06)])


def test_quality_vs_compute_shows_every_route():
    routes = pd.DataFrame({"model": ["llama"] * 3, "k": [8, 8, 8], "route": ["from scratch", "prune + heal",
                                                                            "prune + heal, teacher included"],
                           "method": ["scratch", "fisher", "fisher"], "train_flops": [1e12, 1e11, 5e12],
                           "ndcg@10": [0.11, 0.10, 0.10]})
    ax = evaluation_figures.quality_vs_compute(routes).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(routes["route"])
    assert len(ax.texts) == 1 and ax.get_xscale() == "log"  # k labels the controls only
    full = pd.DataFrame({"model": ["llama"], "strategy": ["full"], "ndcg@10": [0.12]})
    ax = evaluation_figures.quality_vs_compute(routes, full).axes[0]
    assert [line.get_ydata()[0] for line in ax.lines if line.get_linestyle() == "--"] == [0.12]
    assert ax.get_legend().get_texts()[-1].get_text() == "teacher (full model)"


def test_score_bars_one_row_a_criterion_and_kept_grid_marks_the_kept_layers():
    scores = pd.DataFrame([{"model": "llama", "criterion": c, "layer": l, "score": float(l), "ci_low": l - 0.5,
                            "ci_high": l + 0.5} for c in ("fisher_empirical", "taylor") for l in range(4)])
    fig = layer_figures.score_bars(scores, ["fisher_empirical", "taylor"], "ml")
    assert len(fig.axes) == 2 and fig.axes[0].get_title() == "ml: llama"
    selection = pd.DataFrame({"model": "llama", "criterion": ["none", "fisher_empirical", "taylor"],
                              "strategy": ["full", "top-k", "top-k"], "k": [4, 2, 2],
                              "kept_layers": ["0 1 2 3", "1 3", "0 1"]})
    grid = layer_figures.kept_layers_grid(selection, 2, "ml").axes[0]
    assert [t.get_text() for t in grid.get_yticklabels()] == ["top-k: fisher_empirical", "top-k: taylor"]
    assert grid.collections[0].get_array().reshape(2, 4).tolist() == [[0, 1, 0, 1], [1, 1, 0, 0]]


def test_healing_curves_draw_the_teacher_and_each_run_before_healing():
    curves = pd.DataFrame({"model": "llama", "run": ["a"] * 2 + ["b"] * 2, "epoch": [1, 2, 1, 2],
                           "train_loss": [2.0, 1.0, 2.5, 1.5], "valid_ndcg@10": [0.2, 0.3, 0.1, 0.2],
                           "unhealed": [0.05] * 2 + [0.02] * 2})
    ax = training_figures.healing_curves(curves, {"llama": 0.4}, "ml").axes[1]
    levels = sorted(line.get_ydata()[0] for line in ax.lines if len(set(line.get_ydata())) == 1
                    and line.get_linestyle() in ("--", ":"))
    assert levels == [0.02, 0.05, 0.4]


def test_quality_kept_curves_one_row_a_stage_and_scenarios_one_marker_set_a_model():
    table = pd.DataFrame({"model": "llama", "criterion": ["fisher_empirical"] * 3 + ["none"],
                          "strategy": ["top-k"] * 3 + ["scratch"], "k": [4, 8, 8, 8],
                          "healed": [False, False, True, False], "adapter": ["none", "none", "lora", "none"],
                          "quality_kept": [0.5, 0.7, 0.9, 0.8], "ci_low": [0.4, 0.6, 0.8, 0.7],
                          "ci_high": [0.6, 0.8, 1.0, 0.9]})
    fig = evaluation_figures.quality_kept_curves(table, ["fisher_empirical"], "ml")
    assert [ax.get_title() for ax in fig.axes] == ["ml: llama, compact", "ml: llama, healed (lora)"]
    cases = pd.DataFrame({"model": ["llama full", "llama fisher"] * 2, "scenario": ["all"] * 2 + ["cold"] * 2,
                          "group": "users", "metric": "ndcg@10", "n": 10, "value": [0.3, 0.2, 0.1, 0.05],
                          "ci_low": [0.2, 0.1, 0.0, 0.0], "ci_high": [0.4, 0.3, 0.2, 0.1]})
    variants = pd.DataFrame({"name": ["llama full", "llama fisher"], "model": "llama"})
    ax = evaluation_figures.scenario_intervals(cases, variants, "ml").axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["all: users", "cold: users"]
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["fisher", "full"]


def test_key_figure_sorts_the_healed_methods_below_the_untaught_runs_and_titles_the_best_and_random():
    rows = [("none", "full", 8, False, "none", 1.0), ("fisher_empirical", "top-k", 4, False, "none", 0.6),
            ("fisher_empirical", "top-k", 8, False, "none", 0.8), ("random", "top-k", 4, False, "none", 0.5),
            ("random", "top-k", 8, False, "none", 0.7), ("fisher_empirical", "top-k", 8, True, "lora", 0.95),
            ("random", "top-k", 8, True, "lora", 0.9), ("position", "first-k", 8, True, "lora", 0.85),
            ("position", "first-k", 8, True, "lora-no-kd", 0.8), ("removal_loss", "top-k", 8, False, "none", 0.99),
            ("none", "scratch", 8, False, "none", 0.7)]
    table = pd.DataFrame([dict(zip(["criterion", "strategy", "k", "healed", "adapter", "quality_kept"], r))
                          for r in rows]).assign(model="smollm2-135m")
    table = table.assign(ci_low=table["quality_kept"] - 0.05, ci_high=table["quality_kept"] + 0.05)
    before, after = evaluation_figures.key_figure(table, 8).axes
    assert after.get_title() == "smollm2-135m, 8 layers healed: Fisher (empirical) keeps 95%, random 90%"
    assert [t.get_text() for t in after.get_yticklabels()] == [
        "trained from scratch (study data)", "first k layers (SLMRec), fine-tuned without the teacher",
        "first k layers (SLMRec)", "random", "Fisher (empirical)"]
    assert [t.get_text() for t in before.get_legend().get_texts()] == ["Fisher (empirical)", "random"]  # no truth
    assert "training seeds" not in after.get_xlabel()
    repeats = pd.DataFrame({"model": "smollm2-135m", "criterion": ["random"] * 3, "strategy": "top-k", "k": 8,
                            "adapter": "lora", "seed": [0, 1, 2], "quality_kept": [0.9, 0.8, 0.85]})
    after = evaluation_figures.key_figure(table, 8, repeats=repeats).axes[1]
    ticks = after.collections[-1].get_offsets()  # one tick a seed, on random's row (the fourth)
    assert ticks[:, 0].tolist() == pytest.approx([0.9, 0.8, 0.85]) and set(ticks[:, 1]) == {3}
    assert after.get_xlabel().endswith("|: each of 3 training seeds)")
