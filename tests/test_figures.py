"""Paper figures drawn from result tables: whole-number depth ticks, the stopping point marked, every route shown."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from lwadapter.report import figures  # noqa: E402


@pytest.fixture
def base():
    return pd.DataFrame({"arch": ["llama"] * 3, "layers": [2, 8, 32], "ndcg@10": [0.12, 0.11, 0.10],
                         "ndcg@10_low": [0.10, 0.09, 0.08], "ndcg@10_high": [0.14, 0.13, 0.12]})


def test_depth_curve_ticks_are_the_depths(base):
    ax = figures.depth_curve(base).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "8", "32"]
    assert np.allclose(ax.lines[0].get_ydata(), [0.12, 0.11, 0.10])


def test_learning_curves_mark_the_restored_epoch():
    curves = pd.DataFrame({"model": ["a"] * 4, "epoch": [1, 2, 3, 4], "flops": [1e9, 2e9, 3e9, 4e9],
                           "valid_ndcg@10": [0.1, 0.3, 0.2, 0.25]})
    fig = figures.learning_curves(curves)
    marked = fig.axes[0].collections[-1].get_offsets()  # the scatter of best epochs, drawn last
    assert marked.tolist() == [[2.0, 0.3]]
    assert all(float(t).is_integer() for t in fig.axes[0].get_xticks())
    assert fig.axes[1].get_xscale() == "log"


def test_quality_vs_compute_shows_every_route():
    routes = pd.DataFrame({"model": ["llama"] * 3, "k": [8, 8, 8], "route": ["from scratch", "prune + heal",
                                                                            "prune + heal, teacher included"],
                           "method": ["scratch", "fisher", "fisher"], "train_flops": [1e12, 1e11, 5e12],
                           "ndcg@10": [0.11, 0.10, 0.10]})
    ax = figures.quality_vs_compute(routes).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(routes["route"])
    assert len(ax.texts) == 1 and ax.get_xscale() == "log"  # k labels the controls only
