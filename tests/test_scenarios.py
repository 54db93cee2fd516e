"""Scenarios: history groups and cold start partition users as specified, co-occurrence and neighbour scoring on
hand-made cases, similarity sources, and the scenario table on a tiny model."""

import random

import numpy as np
import pytest
import torch

from lwadapter.compact import compact_model
from lwadapter.evaluate import evaluate_model, score_histories
from lwadapter.scenarios import (
    HISTORY_GROUPS, cold_start_users, cooccurrence, embedding_similarity, history_cuts, history_groups,
    neighbour_scores, next_item_similarity, scenario_table, truncate_histories)
from lwadapter.sequences import SequenceData
from tests.synthetic import tiny


def varied_data(n_users=30, n_items=20, seed=0, shortest=1) -> SequenceData:
    """Users with `shortest` to 12 distinct training items: every history group and the cold start are populated."""
    rng = random.Random(seed)
    seqs = [rng.sample(range(n_items), rng.randint(shortest + 2, 14)) for _ in range(n_users)]
    return SequenceData("varied", [f"i{i}" for i in range(n_items)], [f"u{u}" for u in range(n_users)],
                        [s[:-2] for s in seqs], [s[-2] for s in seqs], [s[-1] for s in seqs])


def test_history_tertiles_on_a_hand_made_case():
    lengths = [1, 2, 3, 4, 5, 6]
    assert history_cuts(lengths) == pytest.approx((8 / 3, 13 / 3))
    assert list(history_groups(lengths)) == ["short", "short", "medium", "medium", "long", "long"]
    assert list(history_groups(lengths, cuts=(1, 5))) == ["short", "medium", "medium", "medium", "medium", "long"]


def test_history_groups_partition_users():
    lengths = np.random.default_rng(0).integers(1, 200, size=500)
    labels = history_groups(lengths)
    assert labels.shape == lengths.shape and set(labels) == set(HISTORY_GROUPS)
    low, high = history_cuts(lengths)
    assert (lengths[labels == "short"] <= low).all()
    assert ((lengths[labels == "medium"] > low) & (lengths[labels == "medium"] <= high)).all()
    assert (lengths[labels == "long"] > high).all()
    assert all(abs((labels == g).mean() - 1 / 3) < 0.05 for g in HISTORY_GROUPS)  # tertiles: about a third each


def test_history_cuts_must_increase():
    with pytest.raises(ValueError, match="increasing"):
        history_groups([1, 2, 3], cuts=(5, 2))


def test_cold_start_users_and_truncation():
    data = varied_data()
    cold = cold_start_users(data, 3)
    assert list(cold) == [u for u, t in enumerate(data.train) if len(t) <= 3] and 0 < len(cold) < data.n_users
    cut = truncate_histories(data, 3)
    assert all(t == full[-3:] for t, full in zip(cut.train, data.train))
    assert cut.valid == data.valid and cut.test == data.test and data.train != cut.train
    with pytest.raises(ValueError, match="at least 1"):
        truncate_histories(data, 0)


def hand_data() -> SequenceData:
    train = [[0, 1, 2], [1, 0], [3], [0, 1]]
    return SequenceData("hand", ["a", "b", "c", "d"], ["u0", "u1", "u2", "u3"], train, [3, 3, 0, 3], [2, 2, 1, 2])


def test_cooccurrence_counts_users_holding_both_items():
    raw = cooccurrence(hand_data(), normalize=False)
    expected = np.array([[0, 3, 1, 0], [3, 0, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(raw, expected)
    cos = cooccurrence(hand_data())  # counts: a 3, b 3, c 1, d 1
    assert cos[0, 1] == pytest.approx(1.0) and cos[0, 2] == pytest.approx(1 / np.sqrt(3))
    np.testing.assert_allclose(cos, cos.T)


def test_neighbour_scores_against_a_hand_made_reference():
    reference = cooccurrence(hand_data(), normalize=False)
    similarity = np.array([[9, 7, 1, 5],    # item 0: nearest b, d  (reference top-2: b, c)
                           [8, 9, 7, 1],    # item 1: nearest a, c  (reference top-2: a, c)
                           [1, 2, 9, 3],    # item 2: nearest d, b  (reference top-2: a, b)
                           [0, 0, 0, 9]], dtype=float)
    table = neighbour_scores(similarity, reference, k=2).set_index("item")
    assert list(table.index) == [0, 1, 2]  # item 3 co-occurs with nothing: left out
    ideal = 1 + 1 / np.log2(3)
    assert table.loc[0, "precision@2"] == 0.5 and table.loc[0, "ndcg@2"] == pytest.approx(1 / ideal)
    assert table.loc[1, "precision@2"] == 1.0 and table.loc[1, "ndcg@2"] == pytest.approx(1.0)
    assert table.loc[2, "precision@2"] == 0.5 and table.loc[2, "ndcg@2"] == pytest.approx(1 / np.log2(3) / ideal)
    assert (table["relevant"] == 2).all()


def test_neighbour_scores_rejects_bad_shapes():
    with pytest.raises(ValueError, match="square"):
        neighbour_scores(np.zeros((3, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="k=4"):
        neighbour_scores(np.zeros((4, 4)), np.zeros((4, 4)), k=4)


def test_similarity_sources():
    model = tiny(n_items=20)
    emb = embedding_similarity(model)
    rows = model.get_input_embeddings().weight.detach()[model.config.item_token_offset:]
    torch.testing.assert_close(emb, torch.nn.functional.cosine_similarity(rows[:, None], rows[None], dim=-1))
    assert torch.equal(emb, embedding_similarity(compact_model(model, [0, 3])))  # embeddings are not cut
    nxt = next_item_similarity(model, batch_size=7)
    torch.testing.assert_close(nxt[5:9], score_histories(model, [[5], [6], [7], [8]], [0] * 4), rtol=1e-5, atol=1e-6)


def test_scenario_table_partitions_users():
    data, model = varied_data(), tiny(n_items=20)
    table = scenario_table({"m": model}, data, n_boot=50, cuts=(4, 8))
    ndcg = table[table.metric == "ndcg@10"].set_index(["scenario", "group"])
    history = ndcg.loc["history"]
    assert history["n"].sum() == data.n_users and list(history.index) == list(HISTORY_GROUPS)
    assert history.loc["short", "n"] == sum(len(t) <= 4 for t in data.train)
    assert ndcg.loc[("cold start", "natural"), "n"] == len(cold_start_users(data))
    assert ndcg.loc[("cold start", "truncated"), "n"] == data.n_users
    overall = ndcg.loc[("all users", "all"), "value"]
    assert overall == pytest.approx(evaluate_model(model, data)["ndcg@10"].mean())
    weighted = (history["value"] * history["n"]).sum() / data.n_users
    assert weighted == pytest.approx(overall)  # the groups split the same users
    assert ((table.ci_low <= table.value + 1e-12) & (table.value <= table.ci_high + 1e-12)).all()
    assert set(table[table.scenario == "item similarity"].group) == {"input embedding", "next item"}


def test_scenario_table_reports_an_empty_cold_start():
    data = varied_data(shortest=4)  # like k-core filtered data: nobody has at most 3 training items
    table = scenario_table({"m": tiny(n_items=20)}, data, n_boot=20)
    natural = table[(table.scenario == "cold start") & (table.group == "natural")]
    assert (natural["n"] == 0).all() and natural["value"].isna().all()
