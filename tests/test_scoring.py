"""Layer-importance criteria on tiny models with known structure."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from lwadapter import layer_gradients, score_ranks, scoring
from lwadapter.models import decoder_layers
from lwadapter.train import next_item_loss, train_recommender
from tests.synthetic import cyclic_data, identity_layers, tiny

IDENTITY = [1, 3]


@pytest.fixture(scope="module")
def data():
    return cyclic_data()


@pytest.fixture(scope="module")
def trained(data):
    """A 5-layer recommender trained with layers 1 and 3 frozen as identities."""
    model = identity_layers(tiny("llama", n_layers=5), IDENTITY)
    for i in IDENTITY:
        decoder_layers(model)[i].requires_grad_(False)
    train_recommender(model, data, epochs=15, patience=15, lr=1e-2)
    return model


@pytest.fixture(scope="module")
def batches(data, trained):
    return scoring.calibration_batches(data, trained, n_sequences=32, batch_size=8)


def bottom(frame, n=len(IDENTITY)):
    return set(frame.nsmallest(n, "score")["layer"])


@pytest.mark.parametrize("name", ["fisher_empirical", "fisher_true", "fisher_gate", "taylor", "grad_norm",
                                  "block_influence", "act_norm"])
def test_identity_layers_score_zero_and_rank_last(name, trained, batches):
    frame = scoring.SCORERS[name](trained, batches, n_boot=20)
    assert list(frame["layer"]) == list(range(5))
    assert bottom(frame) == set(IDENTITY)
    assert frame.loc[IDENTITY, "score"].abs().max() < 1e-6
    assert (frame.drop(index=IDENTITY)["score"] > 1e-5).all()


def test_angular_distance_ranks_identity_layers_last_and_covers_blocks(trained, batches):
    single = scoring.angular_distance(trained, batches, n_boot=20)
    assert bottom(single) == set(IDENTITY)
    blocks = scoring.angular_distance(trained, batches, n=3, n_boot=20)
    assert list(blocks["layer"]) == [0, 1, 2] and (blocks["criterion"] == "angular@3").all()
    assert blocks.loc[1, "score"] == pytest.approx(single.loc[2, "score"])  # block 1-3: layer 2 between identities
    with pytest.raises(ValueError, match="block size"):
        scoring.angular_distance(trained, batches, n=6)


def test_removal_ground_truth_ranks_identity_layers_last(trained, data):
    truth = scoring.removal_effects(trained, data, n_boot=20)
    loss = truth[truth["criterion"] == "removal_loss"].set_index("layer")
    assert loss.loc[IDENTITY, "score"].abs().max() == 0.0
    assert bottom(loss.reset_index()) == set(IDENTITY)
    assert (loss.drop(index=IDENTITY)["score"] > 0).all()
    ndcg = truth[truth["criterion"] == "removal_ndcg@10"].set_index("layer")
    assert ndcg.loc[IDENTITY, "score"].abs().max() == 0.0
    subset = scoring.removal_effects(trained, data, n_users=10, n_boot=20)
    assert subset[["criterion", "layer"]].equals(truth[["criterion", "layer"]])
    assert (subset[subset["layer"].isin(IDENTITY)]["score"] == 0).all()
    assert not np.allclose(subset["score"], truth["score"])  # 10 of the 48 users


def test_intervals_contain_the_estimate(trained, batches):
    frame = scoring.block_influence(trained, batches, n_boot=50)
    assert (frame["ci_low"] <= frame["score"] + 1e-12).all() and (frame["score"] <= frame["ci_high"] + 1e-12).all()
    assert (frame["ci_high"] > frame["ci_low"]).any()


def test_calibration_uses_only_training_sequences(data, trained):
    batches = scoring.calibration_batches(data, trained, n_sequences=20, batch_size=6, seed=3)
    assert sum(len(b["labels"]) for b in batches) == 20
    train = {tuple(items) for items in data.train}
    for b in batches:
        for row in b["labels"]:
            assert tuple(row[row != -100].tolist()) in train
    again = scoring.calibration_batches(data, trained, n_sequences=20, batch_size=6, seed=3)
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(batches, again))


def ragged_batch(arch):
    """A right-padded batch of sequences of different lengths and an untrained model."""
    data = cyclic_data(n_users=6)
    data = dataclasses.replace(data, train=[items[: 3 + u] for u, items in enumerate(data.train)])
    model = tiny(arch, n_layers=3)
    return model, scoring.calibration_batches(data, model, n_sequences=6, batch_size=6)[0]


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_per_sample_fisher_equals_single_sample_loop(arch):
    model, batch = ragged_batch(arch)
    lengths = batch["attention_mask"].sum(dim=1)
    assert len(set(lengths.tolist())) > 1
    groups = [list(layer.parameters()) for layer in decoder_layers(model)]
    expected = []
    for n, length in enumerate(lengths):
        single = {k: v[n:n + 1, :length] for k, v in batch.items()}
        grads = torch.autograd.grad(next_item_loss(model, single), [p for g in groups for p in g])
        sizes = np.cumsum([0] + [len(g) for g in groups])
        expected.append([sum(x.pow(2).sum() for x in grads[a:b]) for a, b in zip(sizes, sizes[1:])])
    expected = torch.tensor(expected)
    got = layer_gradients.per_sample_squared_gradients(model, batch).float()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-10)
    fisher = scoring.fisher_empirical(model, [batch], n_boot=5)
    np.testing.assert_allclose(fisher["score"], expected.mean(dim=0).double().numpy(), rtol=1e-4)


def test_true_fisher_differs_from_empirical_and_is_seeded(trained, batches):
    empirical = scoring.fisher_empirical(trained, batches, n_boot=5)["score"]
    true = scoring.fisher_true(trained, batches, n_boot=5, seed=1)["score"]
    assert not np.allclose(true, empirical, rtol=0.05)
    np.testing.assert_array_equal(true, scoring.fisher_true(trained, batches, n_boot=5, seed=1)["score"])
    assert not np.array_equal(true, scoring.fisher_true(trained, batches, n_boot=5, seed=2)["score"])


def test_random_baseline_is_seeded(trained):
    a, b = scoring.random_scores(trained, seed=4), scoring.random_scores(trained, seed=4)
    assert a["score"].equals(b["score"]) and not a["score"].equals(scoring.random_scores(trained, seed=5)["score"])


def test_score_layers_runs_every_criterion_and_rejects_unknown(trained, batches):
    scores, seconds = scoring.score_layers(trained, batches, n_boot=5)
    assert set(scores["criterion"]) == set(scoring.SCORERS) == set(seconds["criterion"])
    assert (seconds["seconds"] >= 0).all()
    with pytest.raises(ValueError, match="unknown criteria"):
        scoring.score_layers(trained, batches, criteria=["fisher", "random"])


def test_rank_correlations_match_hand_computed_values():
    assert score_ranks.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert score_ranks.kendall([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    assert score_ranks.kendall([1, 2, 2, 3], [1, 2, 3, 3]) == pytest.approx(0.8)  # tau-b with one tie in each
    assert score_ranks.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def frame(**criteria):
    return pd.concat([scoring._frame(name, values) for name, values in criteria.items()], ignore_index=True)


def test_fusion_ranks_and_agreement():
    scores = frame(a=[0.1, 0.5, 0.3, 0.9], b=[4.0, 3.0, 1.0, 2.0], truth=[0.0, 1.0, 0.5, 2.0])
    fused = scoring.fuse(scores, ["a", "b"])
    np.testing.assert_allclose(fused["score"], [2.5, 3.0, 1.5, 3.0])
    with pytest.raises(ValueError, match="not in the scores"):
        scoring.fuse(scores, ["a", "c"])
    ranked = score_ranks.add_ranks(scores)
    assert ranked[ranked["criterion"] == "a"]["rank"].tolist() == [4, 2, 3, 1]
    agreement = score_ranks.rank_agreement(scores, reference="truth").set_index("criterion")
    assert agreement.loc["a", "spearman"] == pytest.approx(1.0) and agreement.loc["a", "kendall"] == pytest.approx(1.0)
    matrix = score_ranks.correlation_matrix(scores, "kendall")
    assert matrix.loc["a", "truth"] == pytest.approx(1.0) and matrix.loc["b", "b"] == pytest.approx(1.0)


def reference_gradient_scores(model, batches):
    """Taylor and gradient norm as computed before streaming: one full gradient per batch, summed, divided by the
    labelled tokens, reduced per layer."""
    params = [p for layer in decoder_layers(model) for p in layer.parameters()]
    grads = [torch.autograd.grad(next_item_loss(model, b, reduction="sum"), params) for b in batches]
    tokens = sum(float((b["labels"] != -100).sum()) for b in batches)
    mean = [sum(g[i] for g in grads) / tokens for i in range(len(params))]
    sizes = np.cumsum([0] + [len(list(layer.parameters())) for layer in decoder_layers(model)])
    taylor = [sum((params[i].detach() * mean[i]).abs().sum() for i in range(a, b)) for a, b in zip(sizes, sizes[1:])]
    norm = [sum(mean[i].pow(2).sum() for i in range(a, b)).sqrt() for a, b in zip(sizes, sizes[1:])]
    return torch.tensor(taylor).double().numpy(), torch.tensor(norm).double().numpy()


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_streamed_gradient_criteria_equal_the_per_batch_computation(arch, data):
    model = tiny(arch, n_layers=3)
    batches = scoring.calibration_batches(data, model, n_sequences=12, batch_size=4)
    taylor, norm = reference_gradient_scores(model, batches)
    for name, expected in (("taylor", taylor), ("grad_norm", norm)):
        frame = scoring.SCORERS[name](model, batches, n_boot=30)
        np.testing.assert_allclose(frame["score"], expected, rtol=1e-5)
        np.testing.assert_array_equal(scoring.SCORERS[name](model, batches, n_boot=0)["score"], frame["score"])
        assert (frame["ci_high"] > frame["ci_low"]).all()
    assert all(p.grad is None and p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("name", ["taylor", "grad_norm", "fisher_gate", "fisher_empirical"])
def test_checkpointing_leaves_scores_unchanged(name, data):
    model = tiny("llama", n_layers=3)
    batches = scoring.calibration_batches(data, model, n_sequences=8, batch_size=4)
    plain, _ = scoring.score_layers(model, batches, [name], n_boot=10)
    recomputed, _ = scoring.score_layers(model, batches, [name], n_boot=10, checkpointing=True)
    pd.testing.assert_frame_equal(plain, recomputed, rtol=1e-5)
    assert not model.is_activation_checkpointing


def test_bfloat16_model_scores_in_float32_statistics(data):
    model = tiny("llama", n_layers=3)
    batches = scoring.calibration_batches(data, model, n_sequences=8, batch_size=4)
    exact, _ = scoring.score_layers(model, batches, ["taylor", "fisher_empirical", "block_influence"], n_boot=5)
    low, _ = scoring.score_layers(model.to(torch.bfloat16), batches,
                                  ["taylor", "fisher_empirical", "block_influence"], n_boot=5)
    assert low["score"].dtype == np.float64
    np.testing.assert_allclose(low["score"], exact["score"], rtol=0.1)
