"""The evaluation harness: per-user full ranking of models and most-popular, summaries, efficiency."""

import pytest
import torch

from lwadapter.evaluate import (compare_efficiency, count_parameters, evaluate_model, evaluate_popularity,
                                flops_per_token, history_batch, peak_memory_bytes, popularity_scores,
                                score_histories, summarize)
from lwadapter.metrics import METRICS, bootstrap_ci
from lwadapter.models import item_logits, special_tokens
from lwadapter.sequences import SequenceData
from tests.synthetic import cyclic_data, tiny


@pytest.fixture(scope="module")
def data():
    return cyclic_data()


def test_scores_are_read_at_each_users_last_real_position(data):
    model = tiny()
    histories, targets = data.histories("test")
    histories = [histories[0][:2], histories[1], histories[2][:5]]  # different lengths: right padding
    batched = score_histories(model, histories, targets[:3])
    offset, bos, _ = special_tokens(model)
    for row, hist in enumerate(histories):
        ids = torch.tensor([[bos] + [offset + i for i in hist]])
        with torch.no_grad():
            alone = item_logits(model, ids, torch.ones_like(ids))[0, -1]
        assert torch.allclose(batched[row], alone, atol=1e-5)


def test_histories_are_cut_to_the_models_window(data):
    model = tiny(max_len=4)
    batch = history_batch(model, [list(range(9))], [9])
    offset, bos, _ = special_tokens(model)
    assert batch["input_ids"].tolist() == [[bos, offset + 6, offset + 7, offset + 8]]


def test_evaluate_model_returns_per_user_metrics_and_batches_consistently(data):
    model = tiny()
    per_user = evaluate_model(model, data, split="valid", batch_size=7)
    assert list(per_user.columns) == ["user", *METRICS, "history_len"]
    assert per_user["user"].tolist() == list(range(data.n_users))
    assert per_user["history_len"].tolist() == [len(t) for t in data.train]
    assert per_user.equals(evaluate_model(model, data, split="valid", batch_size=256))
    test = evaluate_model(model, data, split="test")
    assert test["history_len"].tolist() == [len(t) + 1 for t in data.train]


def test_masking_history_never_hurts_and_is_the_default(data):
    model = tiny()
    masked, unmasked = evaluate_model(model, data), evaluate_model(model, data, mask_history=False)
    assert (masked["mrr"] >= unmasked["mrr"]).all() and (masked["mrr"] > unmasked["mrr"]).any()


def test_most_popular_by_hand():
    data = SequenceData("pop", ["a", "b", "c", "d"], ["u", "v"], train=[[0, 0, 1], [0, 2]], valid=[3, 1],
                        test=[1, 3])
    assert popularity_scores(data).tolist() == [3, 1, 1, 0]
    # test split: u saw {0,1,3}, target 1 (seen, but never masked): only item 2 ties with it -> rank 2;
    # v saw {0,2,1}, target 3: every other item is masked -> rank 1
    masked = evaluate_popularity(data, "test")
    assert masked["mrr"].tolist() == [1 / 2, 1.0]
    unmasked = evaluate_popularity(data, "test", mask_history=False)
    # u: item 1 (count 1) ties with item 2 -> rank 3; v: item 3 is last of 4
    assert unmasked["mrr"].tolist() == [1 / 3, 1 / 4]


def test_summarize_gives_means_and_intervals(data):
    per_user = evaluate_model(tiny(), data)
    row = summarize(per_user, seed=0).iloc[0]
    assert row["users"] == data.n_users
    for metric in METRICS:
        assert row[metric] == pytest.approx(per_user[metric].mean())
        assert (row[f"{metric}_low"], row[f"{metric}_high"]) == bootstrap_ci(per_user[metric], seed=0)
    assert summarize(per_user, seed=0).equals(summarize(per_user, seed=0))


def test_flops_per_token_by_hand():
    model = tiny(n_layers=3, max_len=10)  # d=16, 2 heads of 8, 1 kv head, d_ff=64, 24 items (vocab 26)
    per_layer = 2 * 16 * 8 * (2 * 2 + 2 * 1) + 4 * 2 * 8 * 10 + 6 * 16 * 64
    assert flops_per_token(model.config) == 3 * per_layer + 2 * 16 * 24  # the head scores the items only
    assert flops_per_token(model.config, context=1) == 3 * (per_layer - 4 * 2 * 8 * 9) + 2 * 16 * 24


def test_compare_efficiency_reports_measured_and_ideal_ratios(data):
    full, compact = tiny(n_layers=6), tiny(n_layers=2)
    batch = history_batch(full, *data.histories("test"))
    table = compare_efficiency(full, compact, batch, repeats=3, warmup=1)
    assert table["model"].tolist() == ["full", "compact"]
    full_row, compact_row = table.iloc[0], table.iloc[1]
    assert full_row["speedup"] == 1 and full_row["flop_ratio"] == 1
    assert compact_row["flop_ratio"] == pytest.approx(flops_per_token(full.config) / flops_per_token(compact.config))
    assert compact_row["param_ratio"] == pytest.approx(count_parameters(full) / count_parameters(compact))
    assert compact_row["speedup"] == pytest.approx(full_row["latency_ms"] / compact_row["latency_ms"])
    seconds = table["latency_ms"] / 1000
    assert table["sequences_per_s"].tolist() == pytest.approx((len(batch["input_ids"]) / seconds).tolist())
    assert table["tokens_per_s"].tolist() == pytest.approx((int(batch["attention_mask"].sum()) / seconds).tolist())


def test_peak_memory_grows_with_the_batch(data):
    model = tiny()
    histories, targets = data.histories("test")
    small = peak_memory_bytes(model, history_batch(model, histories[:2], targets[:2]))
    large = peak_memory_bytes(model, history_batch(model, histories * 8, targets * 8))
    assert 0 < small < large
