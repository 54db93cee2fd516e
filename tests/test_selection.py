"""Layer selection strategies: top-k, contiguous block, iterative greedy (checked against exhaustive search)."""

import itertools

import numpy as np
import pytest
import torch

from lwadapter import scoring, selection
from lwadapter.compact import compact_model
from lwadapter.models import decoder_layers, item_logits
from lwadapter.train import next_item_loss
from tests.synthetic import cyclic_data, identity_layers, tiny


def exhaustive(n_layers, k, objective):
    return list(min(itertools.combinations(range(n_layers), k), key=lambda kept: objective(list(kept))))


def test_top_k_picks_highest_scores_with_optional_ends():
    scores = [0.5, 0.1, 0.9, 0.3, 0.9, 0.2]
    assert selection.top_k(scores, 3) == [0, 2, 4]
    assert selection.top_k(scores, 2) == [2, 4]
    assert selection.top_k(scores, 2, keep_last=True) == [2, 5]
    assert selection.top_k(scores, 3, keep_first=True, keep_last=True) == [0, 2, 5]
    assert selection.top_k(scores, 6) == list(range(6))
    with pytest.raises(ValueError, match="keep between 1 and 6"):
        selection.top_k(scores, 0)
    with pytest.raises(ValueError, match="forced"):
        selection.top_k(scores, 1, keep_first=True, keep_last=True)


def test_the_data_free_cuts_keep_the_first_layers_or_spread_them_over_the_depth():
    assert selection.first_k(30, 8) == list(range(8))
    assert selection.evenly_spaced(30, 8) == [0, 4, 8, 12, 17, 21, 25, 29]
    assert selection.evenly_spaced(18, 6) == [0, 3, 7, 10, 14, 17]
    assert selection.evenly_spaced(5, 5) == [0, 1, 2, 3, 4] and selection.evenly_spaced(5, 1) == [0]
    assert all(len(set(selection.evenly_spaced(n, k))) == k for n in range(1, 40) for k in range(1, n + 1))
    with pytest.raises(ValueError, match="k=9"):
        selection.first_k(8, 9)


def test_block_removal_drops_the_closest_block():
    assert selection.block_removal([0.4, 0.1, 0.3], n_layers=6, k=2) == [0, 5]
    assert selection.block_removal([0.2, 0.2, 0.5, 0.6, 0.7], n_layers=6, k=4) == [2, 3, 4, 5]
    with pytest.raises(ValueError, match="needs 3 block distances"):
        selection.block_removal([0.4, 0.1], n_layers=6, k=2)


@pytest.mark.parametrize("seed", range(5))
def test_greedy_equals_exhaustive_for_an_additive_objective(seed):
    """objective(kept) = total cost of the removed layers: dropping the cheapest layer first is optimal."""
    cost = np.random.default_rng(seed).random(6)
    objective = lambda kept: sum(cost[l] for l in range(6) if l not in kept)  # noqa: E731
    path = selection.greedy_path(6, objective)
    assert sorted(path) == list(range(1, 7))
    for k in range(1, 7):
        assert path[k] == exhaustive(6, k, objective) == selection.greedy_removal(6, k, objective)


def test_greedy_equals_exhaustive_on_a_model_with_three_identity_layers():
    """objective = squared distance to the full model's item logits: >= 0, and 0 exactly when only the three
    identity layers are dropped, so greedy (which can drop one of them at zero cost at every step) is optimal."""
    model = identity_layers(tiny("qwen3", n_layers=6), [1, 3, 4])
    batch = scoring.calibration_batches(cyclic_data(n_users=8), model, n_sequences=8, batch_size=8)[0]
    with torch.no_grad():
        full = item_logits(model, batch["input_ids"], batch["attention_mask"])

        def objective(kept):
            small = compact_model(model, kept)
            return float((item_logits(small, batch["input_ids"], batch["attention_mask"]) - full).pow(2).sum())

        greedy = selection.greedy_removal(6, 3, objective)
        assert greedy == exhaustive(6, 3, objective) == [0, 2, 5]
        assert objective(greedy) == 0.0


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_sleb_objective_is_the_calibration_loss_of_the_compact_model(arch):
    model = identity_layers(tiny(arch, n_layers=5), [2])
    batches = scoring.calibration_batches(cyclic_data(), model, n_sequences=12, batch_size=5)
    objective = selection.CalibrationLoss(model, batches)
    tokens = sum(int((b["labels"] != -100).sum()) for b in batches)

    def loss(kept):
        small = compact_model(model, kept)
        with torch.no_grad():
            return sum(float(next_item_loss(small, b, reduction="sum")) for b in batches) / tokens

    assert objective([0, 1, 2, 3, 4]) == pytest.approx(loss([0, 1, 2, 3, 4]), rel=1e-6)
    assert objective([0, 1, 3, 4]) == pytest.approx(loss([0, 1, 2, 3, 4]), rel=1e-6)
    assert abs(objective([0, 2, 3, 4]) - loss([0, 1, 2, 3, 4])) > 1e-6
    for kept in ([0, 1, 2, 3, 4], [1, 3, 4], [0, 4]):
        expected = [loss([l for l in kept if l != drop]) for drop in kept]
        np.testing.assert_allclose(objective.removals(kept), expected, rtol=1e-5)
    plain = lambda kept: objective(kept)  # noqa: E731  (no `removals`: one full forward per candidate)
    assert selection.greedy_path(5, objective, k_min=1) == selection.greedy_path(5, plain, k_min=1)
    assert len(decoder_layers(model)) == 5


def test_contiguous_block_removes_adjacent_identity_layers():
    model = identity_layers(tiny("llama", n_layers=6), [2, 3])
    batches = scoring.calibration_batches(cyclic_data(), model, n_sequences=16, batch_size=8)
    assert selection.contiguous_block(model, batches, k=4) == [0, 1, 4, 5]
    assert selection.contiguous_block(model, batches, k=6) == list(range(6))


def test_sleb_objective_on_a_bfloat16_model_matches_float32():
    model = tiny("llama", n_layers=4)
    batches = scoring.calibration_batches(cyclic_data(), model, n_sequences=12, batch_size=6)
    exact = selection.CalibrationLoss(model, batches).removals([0, 1, 2, 3])
    low = selection.CalibrationLoss(model.to(torch.bfloat16), batches).removals([0, 1, 2, 3])
    np.testing.assert_allclose(low, exact, rtol=0.02)
