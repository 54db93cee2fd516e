"""The scale benchmark's model shapes, peak-memory probe and extrapolation (the benchmark itself is run by hand)."""

import numpy as np
import pandas as pd
import pytest
import torch

from lwadapter.bench import scale
from lwadapter.evaluate import count_parameters


def test_llama3_8b_shape_has_the_published_parameter_count():
    extra_tokens = 2  # <pad> and <bos> beside the 128,256 text tokens, with untied input and output embeddings
    assert scale.llama3_8b_params(0, 50) == 8_030_261_248 + 2 * extra_tokens * 4096


def test_benchmark_sizes_are_about_10m_100m_1b():
    counts = [count_parameters(scale.build(shape, 4000, 50, device="meta")) for shape in scale.SHAPES.values()]
    np.testing.assert_allclose(counts, [1e7, 1e8, 1e9], rtol=0.2)


def test_peak_memory_sees_torch_allocations():
    _, seconds, peak = scale.peak_memory(lambda: torch.ones(64, 2**20).sum(), "cpu")  # 256 MB, freed at once
    assert seconds > 0 and 2**28 * 0.9 < peak < 2**28 * 1.5


def test_extrapolation_recovers_a_power_law():
    params = np.array([1e7, 1e8, 1e9])
    measured = pd.DataFrame({"measurement": "taylor", "params": params, "seconds_per_sequence": 2e-9 * params**0.9})
    row = scale.extrapolate(measured, 8e9, speed_ratio=100.0).iloc[0]
    assert row["loglog_slope"] == pytest.approx(0.9)
    assert row["seconds_per_sequence"] == pytest.approx(2e-9 * 8e9**0.9)
    assert row["gpu_minutes_1024"] == pytest.approx(row["seconds_per_sequence"] * 1024 / 100 / 60)
    with pytest.raises(ValueError, match="two sizes"):
        scale.extrapolate(measured.iloc[:1], 8e9, 100.0)
