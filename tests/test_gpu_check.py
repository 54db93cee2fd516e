"""The one-command GPU check, run on its tiny CPU path into a temporary folder."""

import numpy as np
import pandas as pd
import pytest
import torch

from lwadapter.bench import gpu_check
from lwadapter.bench.scale import CRITERIA
from lwadapter.selection import top_k


def test_tiny_gpu_check_writes_every_table(tmp_path):
    gpu_check.run(tmp_path, tiny=True, n_sequences=8, batch_size=4, steps=3, n_items=40, length=10)
    costs = pd.read_csv(tmp_path / "criteria.csv")
    assert list(costs["criterion"]) == CRITERIA
    assert (costs["seconds"] > 0).all() and np.isfinite(costs["peak_over_weights"]).all()
    assert (costs["device"].str.startswith("cpu") & (costs["dtype"] == "float32")).all()
    scores = pd.read_csv(tmp_path / "layer_scores.csv")
    assert scores.groupby("criterion")["layer"].apply(list).map(lambda l: l == list(range(32))).all()
    healing = pd.read_csv(tmp_path / "healing.csv")
    assert list(healing["step"]) == [0, 1, 2] and np.isfinite(healing["loss"]).all()
    speed = pd.read_csv(tmp_path / "speed.csv").set_index("model")
    fisher = scores[scores["criterion"] == "fisher_empirical"].sort_values("layer")["score"]
    assert speed.loc["compact", "kept_layers"] == " ".join(map(str, top_k(fisher, 8)))
    assert speed.loc["compact", "flop_ratio"] > 1 and speed.loc["full", "params"] > speed.loc["compact", "params"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_gpu_check_without_a_gpu_points_to_the_tiny_path(tmp_path):
    with pytest.raises(RuntimeError, match="--tiny"):
        gpu_check.run(tmp_path)
