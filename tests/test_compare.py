"""Quality kept (paired bootstrap of a ratio of means), relative quality, speed shared per architecture and the
compact_eval table."""

import numpy as np
import pandas as pd
import pytest

from lwadapter import compare
from lwadapter.compact import compact_model
from lwadapter.compare import EVAL_COLUMNS, compact_eval, measure_speed, quality_kept, relative_quality
from lwadapter.evaluate import history_batch
from tests.synthetic import tiny


def per_user(ndcg, hr=None):
    ndcg = np.asarray(ndcg, dtype=float)
    return pd.DataFrame({"user": np.arange(ndcg.size), "ndcg@10": ndcg,
                         "hr@10": (ndcg > 0).astype(float) if hr is None else hr})


def random_ndcg(seed, n=300):
    rng = np.random.default_rng(seed)
    return np.where(rng.random(n) < 0.3, 1 / np.log2(rng.integers(1, 11, n) + 1), 0.0)


def test_quality_kept_is_one_for_identical_models():
    full = random_ndcg(0)
    assert quality_kept(full, full.copy()) == (1.0, 1.0, 1.0, 0)


def test_quality_kept_interval_contains_the_point_estimate():
    full, compact = random_ndcg(0), random_ndcg(1)
    kept, low, high, dropped = quality_kept(compact, full, n=2000)
    assert kept == pytest.approx(compact.mean() / full.mean()) and dropped == 0
    idx = np.random.default_rng(0).integers(0, full.size, size=(2000, full.size))  # the same paired resamples
    ratios = compact[idx].mean(axis=1) / full[idx].mean(axis=1)
    assert (low, high) == pytest.approx(tuple(np.quantile(ratios, [0.025, 0.975])))


def test_quality_kept_is_exact_for_a_scaled_model():
    full = random_ndcg(2)
    assert quality_kept(0.5 * full, full) == pytest.approx((0.5, 0.5, 0.5, 0))


def test_quality_kept_rejects_unpaired_or_zero_input():
    with pytest.raises(ValueError, match="same users"):
        quality_kept([1.0, 0.0], [1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="undefined"):
        quality_kept([1.0, 0.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="1 users have a non-finite metric"):
        quality_kept([1.0, 0.0, 0.5], [1.0, np.nan, 1.0])


def test_quality_kept_counts_the_resamples_whose_ratio_is_undefined():
    full = np.zeros(50)
    full[:5] = 1.0  # a resample misses all five users 1000 x 0.9^50 ~ 5 times in 1000
    kept, low, high, dropped = quality_kept(0.5 * full, full)
    idx = np.random.default_rng(0).integers(0, 50, size=(1000, 50))  # quality_kept's resamples (seed 0)
    assert dropped == (full[idx].mean(axis=1) == 0).sum() > 0
    assert (kept, low, high) == pytest.approx((0.5, 0.5, 0.5))
    one = np.zeros(20)
    one[0] = 1.0  # one user above 0 in 20: a resample misses it 0.95^20 = 36% of the time
    with pytest.raises(ValueError, match=r"of 1000 bootstrap resamples have a full-model mean of 0"):
        quality_kept(one, one)


def test_relative_quality_pairs_users_by_id():
    full = per_user(random_ndcg(0))
    same = full.iloc[::-1].reset_index(drop=True)  # same users, other order
    result = relative_quality(same, full)
    assert result["quality_kept"] == 1.0 and result["p_value"] == 1.0 and result["users"] == len(full)
    worse = relative_quality(per_user(0.5 * full["ndcg@10"], hr=full["hr@10"]), full)
    assert worse["quality_kept"] == pytest.approx(0.5) and worse["p_value"] < 0.01
    with pytest.raises(ValueError, match="same users"):
        relative_quality(full.iloc[:10], full)


def tiny_models():
    full = tiny(n_items=30, n_layers=6)
    return full, {"full": full, "a": compact_model(full, [0, 1]), "b": compact_model(full, [3, 5]),
                  "c": compact_model(full, [0, 2, 4])}


def test_measure_speed_measures_each_architecture_once(monkeypatch):
    full, models = tiny_models()
    calls = []
    real = compare.benchmark
    monkeypatch.setattr(compare, "benchmark", lambda timed, *a, **kw: calls.append(len(timed)) or real(timed, *a, **kw))
    batch = history_batch(full, [[1, 2, 3], [4, 5]], [6, 7])
    speed = measure_speed(full, models, batch, repeats=1, warmup=0).set_index("name")
    assert calls == [3]  # one run: full, then a (b shares its architecture), c
    assert (speed["full_latency_ms"] == speed.loc["full", "latency_ms"]).all()
    assert speed.loc["a"].equals(speed.loc["b"])
    assert speed.loc["full", "ideal_speedup"] == 1.0
    assert speed.loc["a", "ideal_speedup"] > speed.loc["c", "ideal_speedup"] > 1.0
    assert speed.loc["a", "params"] < speed.loc["c", "params"] < speed.loc["full", "params"]


def test_compact_eval_assembles_the_table():
    results = {"full": per_user(random_ndcg(0)), "x": per_user(random_ndcg(1)), "full2": per_user(random_ndcg(2))}
    variants = pd.DataFrame({"name": ["full", "x", "x2"], "reference": ["full", "full", "full2"],
                             "model": ["m", "m", "m2"], "criterion": ["none", "fisher", "fisher"],
                             "strategy": ["full", "top-k", "top-k"], "k": [6, 2, 2],
                             "kept_layers": ["0 1 2 3 4 5", "0 1", "0 1"], "healed": [False, True, True],
                             "adapter": ["none", "lora", "lora"], "base_model": ["t", "t", "t2"]})
    speed = pd.DataFrame({"name": ["full", "x"], "latency_ms": [2.0, 1.0], "speedup": [1.0, 2.0],
                          "ideal_speedup": [1.0, 2.5], "params": [100, 40], "full_latency_ms": [2.0, 2.0],
                          "sequences_per_s": [1.0, 2.0], "peak_memory_mb": [1.0, 0.5]})
    with pytest.raises(KeyError, match="'x2'"):
        compact_eval(variants, results, speed)
    results["x2"] = results["x"]
    table = compact_eval(variants, results, speed)
    assert list(table.columns[: len(EVAL_COLUMNS)]) == EVAL_COLUMNS and len(table) == 3
    assert table.loc[0, "quality_kept"] == 1.0 and table.loc[1, "speedup"] == 2.0 and np.isnan(table.loc[2, "speedup"])
    assert (table["dropped_replicates"] == 0).all()
    mean = {name: frame["ndcg@10"].mean() for name, frame in results.items()}
    assert table.loc[1, "quality_kept"] == pytest.approx(mean["x"] / mean["full"])
    assert table.loc[2, "quality_kept"] == pytest.approx(mean["x"] / mean["full2"])  # each against its reference


def test_compact_eval_adds_the_unmasked_protocol_when_given():
    results = {"full": per_user(random_ndcg(0)), "x": per_user(random_ndcg(1))}
    unmasked = {"full": per_user(random_ndcg(3)), "x": per_user(random_ndcg(4))}
    variants = pd.DataFrame({"name": ["full", "x"], "reference": ["full", "full"], "model": ["m", "m"],
                             "criterion": ["none", "fisher"], "strategy": ["full", "top-k"], "k": [6, 2],
                             "kept_layers": ["0 1 2 3 4 5", "0 1"], "healed": [False, False],
                             "adapter": ["none", "none"], "base_model": ["t", "t"]})
    speed = pd.DataFrame({"name": ["x"], "latency_ms": [1.0], "speedup": [2.0], "ideal_speedup": [2.5],
                          "params": [40], "full_latency_ms": [2.0], "sequences_per_s": [2.0], "peak_memory_mb": [0.5]})
    table = compact_eval(variants, results, speed, per_user_unmasked=unmasked)
    assert table["ndcg@10_unmasked"].tolist() == pytest.approx([unmasked[n]["ndcg@10"].mean() for n in ("full", "x")])
    assert table["ndcg@10"].tolist() == pytest.approx([results[n]["ndcg@10"].mean() for n in ("full", "x")])
    assert compact_eval(variants, results, speed)["ndcg@10_unmasked"].isna().all()


def test_training_compute_counts_each_route():
    table = pd.DataFrame({"model": ["m"] * 5, "criterion": ["none", "none", "none", "fisher", "fisher"],
                          "strategy": ["full", "scratch", "pretrained", "top-k", "top-k"], "k": [4, 2, 2, 2, 3],
                          "kept_layers": ["", "", "", "0 3", "0 1 3"], "healed": [False, False, False, True, True],
                          "adapter": ["none", "none", "none", "lora", "lora"],
                          "base_model": ["t", "m-2L", "m-2L-pt", "t", "t"], "ndcg@10": [0.3, 0.2, 0.22, 0.25, 0.27]})
    base = pd.DataFrame({"model": ["t", "m-2L", "m-2L-pt"], "arch": ["m"] * 3, "layers": [4, 2, 2],
                         "train_flops": [100.0, 40.0, 10.0], "pretrain_flops": [60.0, 0.0, 30.0]})
    healing = pd.DataFrame({"model": ["m", "m", "m"], "kept_layers": ["0 3", "0 3", "0 1 3"],
                            "adapter": ["lora"] * 3, "criterion": ["fisher", "random", "fisher"],
                            "train_flops": [5.0, 5.0, 7.0]})  # one run for the two criteria that keep 0 3
    routes = compare.training_compute(table, base, healing)
    at = routes[routes["k"] == 2].set_index("route")
    assert at.loc["from scratch (study data)", "train_flops"] == 40.0
    assert at.loc["from scratch (study data)", "ndcg@10"] == 0.2
    assert at.loc["pretrained + adapted", "train_flops"] == 40.0  # pretraining 30 + adaptation 10
    assert at.loc["prune + heal", "train_flops"] == 5.0
    assert at.loc["prune + heal, teacher amortised", "train_flops"] == 5.0 + 160.0 / 2  # teacher over 2 values of k
    assert at.loc["prune + heal, teacher included", "train_flops"] == 165.0
    assert at.loc["prune + heal", "method"] == "fisher / top-k + lora"
    assert set(compare.training_compute(table, base, None)["route"]) == {"from scratch (study data)",
                                                                         "pretrained + adapted"}
    unknown = compare.training_compute(table, base.assign(pretrain_flops=[60.0, 0.0, np.nan]), healing)
    assert np.isnan(unknown.set_index(["k", "route"]).loc[(2, "pretrained + adapted"), "train_flops"])  # not 10
    assert compare.route_compute(base.drop(columns="pretrain_flops")).isna().all()


def test_compute_to_reach_reads_the_first_epoch_at_the_target():
    history = pd.DataFrame({"valid_ndcg@10": [0.1, 0.3, 0.2, 0.4], "flops": [1.0, 2.0, 3.0, 4.0]})
    assert compare.compute_to_reach(history, 0.25) == 2.0
    assert compare.compute_to_reach(history, 0.35, offset=10.0) == 14.0
    assert np.isnan(compare.compute_to_reach(history, 0.5))


def test_holm_adjusts_in_step_down_order_and_keeps_the_order():
    adjusted = compare.holm([0.04, 0.01, 0.03])
    assert adjusted.tolist() == pytest.approx([0.06, 0.03, 0.06])  # 0.01 x 3, max(0.03 x 2, .03), max(0.04, .06)
    assert compare.holm([0.5, 0.9]).tolist() == pytest.approx([1.0, 1.0])
