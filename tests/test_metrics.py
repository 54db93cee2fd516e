"""Full-ranking metrics against hand-computed cases (ties, masking), bootstrap intervals and paired tests."""

import math

import numpy as np
import pytest
import torch

from lwadapter.metrics import bootstrap_ci, full_ranking_metrics, paired_test, rank_metrics, target_ranks


def test_ranks_count_ties_pessimistically():
    scores = torch.tensor([[0.9, 0.5, 0.5, 0.1],   # target 1 ties with item 2: rank 3, not 2
                           [0.2, 0.2, 0.2, 0.2],   # all tied: the last place
                           [0.1, 0.2, 0.3, 0.4]])  # clear best
    assert target_ranks(scores, [1, 0, 3]).tolist() == [3, 4, 1]


def test_masking_removes_history_but_never_the_target():
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.1],
                           [0.9, 0.8, 0.7, 0.1]])
    assert target_ranks(scores, [2, 2]).tolist() == [3, 3]
    # user 0: items 0 and 1 are history; user 1 re-consumes its target, which stays ranked by its own score
    assert target_ranks(scores, [2, 2], exclude=[[0, 1], [2, 0]]).tolist() == [1, 2]
    assert scores[0, 0] == 0.9  # the caller's scores are not modified


def test_masked_items_do_not_tie_with_a_minus_inf_target():
    scores = torch.tensor([[float("-inf"), 0.0, 1.0]])
    assert target_ranks(scores, [0], exclude=[[1, 2]]).tolist() == [1]
    assert target_ranks(scores, [0]).tolist() == [3]


def test_metric_values_by_hand():
    m = rank_metrics([1, 3, 7, 15, 30])
    assert m["hr@5"].tolist() == [1, 1, 0, 0, 0]
    assert m["hr@10"].tolist() == [1, 1, 1, 0, 0]
    assert m["hr@20"].tolist() == [1, 1, 1, 1, 0]
    assert m["ndcg@5"] == pytest.approx([1.0, 0.5, 0, 0, 0])
    assert m["ndcg@10"] == pytest.approx([1.0, 0.5, 1 / 3, 0, 0])
    assert m["ndcg@20"] == pytest.approx([1.0, 0.5, 1 / 3, 0.25, 0])
    assert m["mrr"] == pytest.approx([1, 1 / 3, 1 / 7, 1 / 15, 1 / 30])


def test_full_ranking_metrics_chains_ranks_and_metrics():
    scores = torch.arange(30.0).flip(0).repeat(2, 1)  # item i has rank i + 1
    m = full_ranking_metrics(scores, [0, 5])
    assert m["hr@5"].tolist() == [1, 0] and m["ndcg@10"] == pytest.approx([1, 1 / math.log2(7)])


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="one target per user"):
        target_ranks(torch.zeros(2, 3), [0])
    with pytest.raises(ValueError, match="NaN"):
        target_ranks(torch.tensor([[float("nan"), 0.0]]), [1])


def test_bootstrap_ci_is_seeded_and_covers_the_mean():
    values = np.random.default_rng(0).random(200)
    low, high = bootstrap_ci(values, seed=1)
    assert low < values.mean() < high
    assert (low, high) == bootstrap_ci(values, seed=1)
    assert bootstrap_ci(np.full(10, 0.25)) == (0.25, 0.25)
    wide = bootstrap_ci(values[:20], seed=1)
    assert wide[1] - wide[0] > high - low


def test_paired_test_separates_real_and_null_differences():
    rng = np.random.default_rng(0)
    a = rng.random(300)
    same = paired_test(a, a.copy())
    assert same["mean_diff"] == 0 and same["p_value"] == 1.0
    better = paired_test(a + 0.1, a)
    assert better["mean_diff"] == pytest.approx(0.1) and better["p_value"] < 0.001
    assert better["ci_low"] == pytest.approx(0.1) and better["ci_high"] == pytest.approx(0.1)
    noise = paired_test(a, rng.permutation(a), seed=0)
    assert noise["p_value"] > 0.05 and noise["ci_low"] < 0 < noise["ci_high"]
    with pytest.raises(ValueError, match="same users"):
        paired_test(a, a[:10])
