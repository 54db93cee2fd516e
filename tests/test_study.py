"""The study's steps (lwadapter.study): which models and runs each notebook plans, and the tables it shows."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from lwadapter import runtime
from lwadapter.train import Trained
from lwadapter.study import adapter_healing, base_models, layer_scoring, layer_selection
from lwadapter import selection
from lwadapter.evaluate import evaluate_model
from lwadapter.study import evaluation
from tests.synthetic import cyclic_data, identity_layers, tiny

MODEL = dict(hidden=32, heads=2, kv_heads=1, max_len=50, tie_embeddings=True, scaled_init=True, dropout=0.0)


# ---------------------------------------------------------------------------------------------- 02 base models
def test_depths_must_hold_the_full_model_control_and_baseline():
    base_models.check_depths([2, 8, 32], 32, 8, 2, ["llama"], ["llama"], [8, 32])
    with pytest.raises(ValueError, match=r"must include \[8\]"):
        base_models.check_depths([2, 32], 32, 8, 2, ["llama"], [], [])
    with pytest.raises(ValueError, match="teacher's 32"):
        base_models.check_depths([2, 8, 32], 32, 8, 2, ["llama"], ["llama"], [8])
    with pytest.raises(ValueError, match="among archs"):
        base_models.check_depths([2, 8, 32], 32, 8, 2, ["llama"], ["qwen3"], [32])


def test_model_specs_every_depth_deepest_first_and_a_checkpoint_replaces_the_full_model():
    specs = base_models.model_specs(["llama", "qwen3"], [2, 32, 8], MODEL, {"qwen3": "/models/Qwen3-8B"}, 32)
    assert list(specs) == ["llama-32L", "llama-8L", "llama-2L", "qwen3-32L", "qwen3-8L", "qwen3-2L"]
    assert specs["llama-8L"] == dict(arch="llama", n_layers=8, **MODEL)
    assert specs["qwen3-32L"] == {"arch": "qwen3", "n_layers": 32, "path": "/models/Qwen3-8B", "max_len": 50}


def test_depth_pairs_compare_each_depth_with_the_full_model_the_baseline_and_its_pretrained_twin():
    pairs = base_models.depth_pairs(["llama"], [2, 8, 32], 32, 2, 8, ["llama"],
                                    {"llama-32L-pretrained": None, "llama-8L-pretrained": None})
    assert pairs == [("llama-2L", "llama-32L"), ("llama-8L", "llama-32L"), ("llama-8L", "llama-2L"),
                     ("llama-32L-pretrained", "llama-32L"), ("llama-8L-pretrained", "llama-8L"),
                     ("llama-32L-pretrained", "llama-2L"), ("llama-32L-pretrained", "llama-8L")]


def test_model_families_label_a_built_model_by_its_architecture_and_an_llm_by_its_checkpoint():
    config = {"models": {"llama-32L-pretrained": {"arch": "llama", "n_layers": 32},
                         "smollm2-135m-lora": {"path": "smollm2-135m", "lora": {"rank": 16}},
                         "smollm2-135m-lora-own-items": {"path": "smollm2-135m", "lora": {"rank": 16}},
                         "smollm2-135m-scratch": {"arch": "llama", "n_layers": 30}},
              "llm_models": ["smollm2-135m-lora", "smollm2-135m-lora-own-items", "smollm2-135m-scratch"]}
    assert base_models.model_families(config) == {"llama-32L-pretrained": "llama", "smollm2-135m-lora": "smollm2-135m",
                                                  "smollm2-135m-lora-own-items": "smollm2-135m",
                                                  "smollm2-135m-scratch": "smollm2-135m"}


def test_results_table_puts_each_interval_beside_its_metric():
    row = {"model": "m", "layers": 8, "route": "study data", "params": 10}
    for metric in ("ndcg@10", "hr@10", "mrr"):
        row.update({metric: 0.5, f"{metric}_low": 0.4, f"{metric}_high": 0.6})
    for metric in ("ndcg@10", "hr@10"):
        row.update({f"{metric}_unmasked": 0.3, f"{metric}_low_unmasked": 0.25, f"{metric}_high_unmasked": 0.35})
    table = base_models.results_table(pd.DataFrame([row]))
    assert table.loc["m", "ndcg@10 95% CI"] == "[0.4000, 0.6000]"
    assert table.loc["m", "hr@10_unmasked 95% CI"] == "[0.2500, 0.3500]"
    assert list(table.columns[:5]) == ["layers", "route", "params", "ndcg@10", "ndcg@10 95% CI"]


# ---------------------------------------------------------------------------------------------- 03 scoring
@pytest.fixture
def scores():
    rows = []
    for criterion, values in {"fisher_empirical": [3, 1, 2, 0], "random": [0, 1, 2, 3],
                              "removal_loss": [3, 1, 2, 0], "removal_ndcg@10": [3, 2, 1, 0]}.items():
        rows += [{"model": "llama", "criterion": criterion, "layer": l, "score": float(v), "ci_low": np.nan,
                  "ci_high": np.nan, "rank": int(4 - np.argsort(np.argsort(values))[l])} for l, v in enumerate(values)]
    return pd.DataFrame(rows)


def test_top_layers_lists_the_most_important_first(scores):
    top = layer_scoring.top_layers(scores, ["fisher_empirical", "random", "removal_loss", "removal_ndcg@10"], n=2)
    assert top.loc["fisher_empirical", "llama"] == "0 2"
    assert top.loc["random", "llama"] == "3 2"


def test_agreement_with_both_ground_truths(scores):
    table = layer_scoring.agreement(scores, layer_scoring.criteria_order())
    assert table.loc[("llama", "fisher_empirical"), ("spearman", "removal_loss")] == pytest.approx(1.0)
    assert table.loc[("llama", "random"), ("spearman", "removal_loss")] == pytest.approx(-0.8)
    assert set(table.columns.get_level_values("reference")) == {"removal_loss", "removal_ndcg@10"}


def test_score_teachers_scores_every_criterion_fusion_and_truth_on_every_layer():
    data, model = cyclic_data(), tiny(n_layers=3).requires_grad_(False)  # frozen, as a merged LoRA teacher
    train = dict(epochs=1, batch_size=16, lr=1e-3)
    layer_scores, costs = layer_scoring.score_teachers({"llama": model}, data, train, calibration_sequences=16,
                                                       calibration_batch=8, n_boot=5, truth_users=16,
                                                       fusion=["fisher_empirical", "taylor"])
    assert set(layer_scores["criterion"]) == set(layer_scoring.criteria_order())
    assert (layer_scores.groupby("criterion")["layer"].nunique() == 3).all()
    assert sorted(layer_scores[layer_scores["criterion"] == "taylor"]["rank"]) == [1, 2, 3]
    assert "removal (ground truth)" in set(costs["criterion"]) and (costs["epochs"] > 0).all()
    assert not any(p.requires_grad for p in model.parameters())  # the epoch is timed on a trainable copy


# ---------------------------------------------------------------------------------------------- 04 selection
def test_kept_layers_round_trip_as_text():
    assert selection.kept_text([0, 3, 7]) == "0 3 7"
    assert selection.kept_list("0 3 7") == [0, 3, 7]
    assert layer_selection.jaccard([0, 1, 2], [1, 2, 3]) == pytest.approx(0.5)


def test_select_layers_gives_every_strategy_k_layers_and_evaluates_each_set():
    data = cyclic_data()
    model = identity_layers(tiny(n_layers=4), [1])
    scores = pd.DataFrame([{"model": "llama", "criterion": "fisher_empirical", "layer": l, "score": s}
                           for l, s in enumerate([4.0, 0.0, 3.0, 2.0])])
    selected = layer_selection.select_layers({"llama": model}, scores, data, [2, 3], calibration_sequences=16,
                                             calibration_batch=8, sleb_sequences=8)
    assert (selected.groupby("strategy")["criterion"].first().to_dict()
            == {"block": "angular", "evenly-spaced": "position", "first-k": "position", "full": "none",
                "greedy": "calibration_loss", "top-k": "fisher_empirical"})
    assert selected.query("strategy == 'first-k' and k == 3")["kept"].iloc[0] == [0, 1, 2]
    assert all(len(kept) == k for kept, k in zip(selected["kept"], selected["k"]))
    assert selected.query("strategy == 'top-k' and k == 2")["kept"].iloc[0] == [0, 2]
    table = layer_selection.evaluate_selection({"llama": model}, selected, data)
    assert list(table.columns) == layer_selection.SELECTION_COLUMNS
    full = evaluate_model(model, data, split="test")["ndcg@10"].mean()
    assert table.query("strategy == 'full'")["ndcg@10"].iloc[0] == pytest.approx(full)
    # layer 1 is an identity: the 3 layers without it rank exactly as the full model
    assert table.query("strategy == 'top-k' and k == 3")["ndcg@10"].iloc[0] == pytest.approx(full)
    assert layer_selection.kept_at(selected, 3).loc[("greedy", "calibration_loss"), "llama"].count(" ") == 2


def test_depth_shares_add_the_mean_over_pruning_criteria_only():
    shares = pd.DataFrame([{"model": "llama", "criterion": c, "strategy": "top-k", "lower": lo, "middle": 0.0,
                            "upper": 1 - lo} for c, lo in (("fisher_empirical", 0.0), ("taylor", 0.5),
                                                          ("random", 1.0))])
    mean = layer_selection.depth_shares(shares).loc[("llama", "all", "mean of criteria")]
    assert mean["lower"] == pytest.approx(0.25) and mean["upper"] == pytest.approx(0.75)


# ---------------------------------------------------------------------------------------------- 05 healing
@pytest.fixture
def compact():
    rows = [("fisher_empirical", "top-k", 8, "0 1"), ("taylor", "top-k", 8, "0 2"), ("angular", "block", 8, "0 3"),
            ("random", "top-k", 8, "1 2"), ("position", "first-k", 8, "0 1"), ("fisher_empirical", "top-k", 4, "0"),
            ("taylor", "top-k", 4, "1"), ("position", "first-k", 4, "0")]
    return pd.DataFrame([{"model": "llama", "criterion": c, "strategy": s, "k": k, "kept_layers": kept,
                          "valid_before": v} for (c, s, k, kept), v in zip(rows, [0.3, 0.2, 0.25, 0.1, 0.3, 0.05, 0.04,
                                                                                   0.05])])


def test_best_published_is_chosen_on_validation(compact):
    assert adapter_healing.best_published(compact, 8, ["taylor", "angular"]) == {"llama": ("angular", "block")}


def test_healing_plan_heals_fisher_best_and_random_and_fisher_alone_at_other_k(compact):
    best = {"llama": ("angular", "block")}
    plan = adapter_healing.healing_plan(compact, 8, "fisher_empirical", best)
    lora = plan[plan["adapter"] == "lora"]
    assert sorted(zip(lora["criterion"], lora["k"])) == [("angular", 8), ("fisher_empirical", 4),
                                                         ("fisher_empirical", 8), ("position", 8), ("random", 8)]
    assert plan[plan["adapter"] == "lora+bridge"][["criterion", "k"]].values.tolist() == [["fisher_empirical", 8]]
    assert plan[plan["adapter"] == "lora-no-kd"][["strategy", "k"]].values.tolist() == [["first-k", 8]]
    scarce = adapter_healing.healing_plan(compact, 8, "fisher_empirical", best, heal_all=True, scarce_rank=1)
    assert len(scarce[scarce["adapter"] == "lora"]) == 6  # every method at k = 8, Fisher at k = 4
    assert len(scarce[scarce["adapter"] == "lora-r1"]) == 5
    headline = adapter_healing.healing_plan(compact, 8, "fisher_empirical", best, heal_all=True, scarce_rank=1,
                                            scarce_all=False)
    assert sorted(headline[headline["adapter"] == "lora-r1"]["criterion"]) == ["angular", "fisher_empirical",
                                                                               "position", "random"]  # not taylor
    swept = adapter_healing.healing_plan(compact, 8, "fisher_empirical", best, sweep_all=True)
    assert ("taylor", 4) not in set(zip(swept["criterion"], swept["k"]))  # not best, not random, not Fisher


def test_adapter_specs_weight_hidden_matching_by_fisher_scores():
    scores = pd.DataFrame({"model": "llama", "criterion": "fisher_empirical", "layer": [1, 0], "score": [2.0, 5.0]})
    lora = dict(rank=8, alpha=16.0)
    specs = adapter_healing.adapter_specs(scores, ["llama"], lora, "fisher_empirical", 4, 0.5, scarce_rank=1)
    assert list(specs["llama"]) == ["lora", "lora+bridge", "lora-no-kd", "lora-r1"]
    assert specs["llama"]["lora-no-kd"] == {**lora, "kd_weight": 0.0}
    assert specs["llama"]["lora+bridge"] == {**lora, "bridge_rank": 4, "hidden_weight": 0.5, "layer_scores": [5.0, 2.0]}
    assert specs["llama"]["lora-r1"]["rank"] == 1
    assert adapter_healing.healing_recipe({"weight_decay": 0.1, "decay": "cosine", "lr_floor": 0.1, "stride": None,
                                           "lr": 1e-3}, {"lr": 3e-3})["lr"] == 3e-3


def test_budget_spread_is_best_minus_worst_method(compact):
    results = compact[compact["k"] == 8].assign(adapter="lora", valid_first=[0.4, 0.3, 0.35, 0.3, 0.32],
                                                valid_after=[0.5, 0.45, 0.5, 0.48, 0.46])
    budget = adapter_healing.healing_budget(results, 8)
    assert set(budget["budget"]) == {"0 steps", "1 epoch", "converged"}
    spread = adapter_healing.budget_spread(budget)["spread"]
    assert spread[("llama", "lora", "0 steps")] == pytest.approx(0.2)
    assert spread[("llama", "lora", "converged")] == pytest.approx(0.05)
    shares = adapter_healing.before_after(results.assign(epochs=3, stop_reason="patience"), {"llama": 0.5})
    assert shares["after / full"].max() == pytest.approx(1.0)


def test_heal_repeats_heals_the_headline_runs_again_under_each_other_seed(tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "CACHE_DIR", tmp_path)
    data, teacher = cyclic_data(), tiny(n_layers=4)
    teachers = {"llama": Trained(teacher, pd.DataFrame(), {}, Path("teacher-0123"))}
    runs = [("fisher_empirical", "top-k", "0 1"), ("taylor", "top-k", "0 2"), ("random", "top-k", "1 3"),
            ("position", "first-k", "0 1"), ("angular", "block", "2 3")]
    plan = pd.DataFrame([{"model": "llama", "criterion": c, "strategy": s, "k": 2, "kept_layers": kept,
                          "adapter": "lora", "valid_before": 0.1} for c, s, kept in runs])
    adapters = {"llama": {"lora": {"rank": 2}}}
    train = dict(epochs=1, batch_size=16, lr=1e-2, patience=1)
    results = adapter_healing.healing_results(plan, adapter_healing.heal_plan(plan, teachers, data, adapters, train),
                                              adapters)
    best = {"llama": ("taylor", "top-k")}  # angular is neither headline nor best: not repeated
    repeats, repeated = adapter_healing.heal_repeats(results, 2, "fisher_empirical", best, [0, 1], teachers, data,
                                                     adapters, train)
    assert sorted(zip(repeats["seed"], repeats["criterion"])) == [
        (0, "fisher_empirical"), (0, "position"), (0, "random"), (0, "taylor"),
        (1, "fisher_empirical"), (1, "position"), (1, "random"), (1, "taylor")]
    assert len(repeated) == 3  # Fisher and first-k keep the same layers: healed once a seed
    again = repeats[repeats["seed"] == 1].set_index("criterion")["checkpoint"]
    first = repeats[repeats["seed"] == 0].set_index("criterion")["checkpoint"]
    assert not set(again) & set(first)  # another seed, another checkpoint
    adapter_healing.write_repeats(SimpleNamespace(results=tmp_path, dataset="cyclic"), repeats, repeated)
    assert json.loads((tmp_path / "healing_seeds.json").read_text())["config"]["seeds"] == [0, 1]
    assert list(pd.read_csv(tmp_path / "healing_seeds.csv").columns) == adapter_healing.REPEAT_COLUMNS


# ---------------------------------------------------------------------------------------------- 06 evaluation
def test_headline_keeps_k_and_the_full_models_best_first():
    table = pd.DataFrame({"model": "llama", "criterion": ["none", "a", "b", "a"], "strategy": ["full", "top-k",
                          "top-k", "top-k"], "k": [32, 8, 8, 4], "healed": False, "adapter": "none",
                          "quality_kept": [1.0, 0.5, 0.7, 0.3]})
    for column in set(evaluation.HEADLINE) - set(table):
        table[column] = 0.0
    shown = evaluation.headline(table, 8)
    assert shown["quality_kept"].tolist() == [1.0, 0.7, 0.5]
    assert list(shown.columns) == evaluation.HEADLINE


def _study(rows):
    """A Study holding only its variants table (what the comparisons read)."""
    study = evaluation.Study.__new__(evaluation.Study)
    study.variants = pd.DataFrame(rows)
    return study


def _variant(name, criterion, strategy, k, healed=False, adapter="none", kept=""):
    return dict(name=name, model="llama", criterion=criterion, strategy=strategy, k=k, kept_layers=kept,
                healed=healed, adapter=adapter)


def test_criteria_tests_pair_every_healed_criterion_once_with_holm():
    rng = np.random.default_rng(0)
    study = _study([_variant("llama fisher_empirical top-k k=8 lora", "fisher_empirical", "top-k", 8, True, "lora",
                             "0 1"),
                    _variant("llama taylor top-k k=8 lora", "taylor", "top-k", 8, True, "lora", "0 2"),
                    _variant("llama angular top-k k=8 lora", "angular", "top-k", 8, True, "lora", "0 2"),
                    _variant("llama random top-k k=8 lora", "random", "top-k", 8, True, "lora", "1 2")])
    per_user = {name: pd.DataFrame({"ndcg@10": rng.random(200) + shift}) for name, shift in
                zip(study.variants["name"], [0.5, 0.0, 0.0, 0.0])}
    tests = study.criteria_tests(per_user, 8)
    assert len(tests) == 3  # angular keeps taylor's layers: one healed model, tested once
    assert set(tests["a"]) | set(tests["b"]) == {"fisher_empirical / top-k", "taylor / top-k", "random / top-k"}
    assert (tests["p_holm"] >= tests["p_value"]).all()
    assert tests.set_index(["a", "b"]).loc[("fisher_empirical / top-k", "random / top-k"), "significant"]


def test_versus_controls_pairs_each_compact_model_with_the_controls_of_its_depth():
    study = _study([_variant("fisher", "fisher_empirical", "top-k", 8), _variant("llama-8L", "none", "scratch", 8),
                    _variant("llama-8L-pretrained", "none", "pretrained", 8),
                    _variant("llama-2L", "none", "scratch", 2)])
    per_user = {name: pd.DataFrame({"user": range(50), "hr@10": value, "ndcg@10": np.full(50, value)})
                for name, value in zip(study.variants["name"], [0.2, 0.4, 0.1, 0.3])}
    versus = study.versus_controls(per_user, 8, n_boot=50).set_index("control")["vs_control"]
    assert versus["from scratch (study data)"] == pytest.approx(0.5)
    assert versus["pretrained + adapted"] == pytest.approx(2.0)


def test_versus_controls_is_an_empty_table_when_no_control_has_k_layers():
    study = _study([_variant("fisher", "fisher_empirical", "top-k", 8),
                    _variant("smollm2-scratch", "none", "scratch", 30)])
    per_user = {name: pd.DataFrame({"user": range(50), "hr@10": 0.2, "ndcg@10": np.full(50, 0.2)})
                for name in study.variants["name"]}
    versus = study.versus_controls(per_user, 8, n_boot=50)
    assert versus.empty and list(versus.columns) == [c if c != "quality_kept" else "vs_control"
                                                     for c in evaluation.VERSUS]


def test_repeats_measure_each_seed_against_random_and_first_k_of_the_same_seed(tmp_path, monkeypatch):
    methods = [("fisher_empirical", "top-k"), ("random", "top-k"), ("position", "first-k")]
    shift = {("fisher_empirical", 0): 0.3, ("random", 0): 0.1, ("position", 0): 0.2,
             ("fisher_empirical", 1): 0.25, ("random", 1): 0.15, ("position", 1): 0.3}
    runs = pd.DataFrame([{"model": "llama", "criterion": c, "strategy": s, "k": 2, "kept_layers": "0 1",
                          "adapter": "lora", "seed": seed, "checkpoint": f"{c}-{seed}"}
                         for seed in (0, 1) for c, s in methods])
    runs.to_csv(tmp_path / "healing_seeds.csv", index=False)
    (tmp_path / "healing_seeds.json").write_text(json.dumps({"config": {"weights": {}}, "seed": 0}))
    frame = {c: pd.DataFrame({"user": range(20), "ndcg@10": np.full(20, shift[c.rsplit("-", 1)[0], 1])})
             for c in runs["checkpoint"]}
    monkeypatch.setattr(evaluation, "recorded_checkpoint", lambda dataset, checkpoint, *args: checkpoint)
    monkeypatch.setattr(evaluation, "load_healed", lambda path, teacher: SimpleNamespace(model=path))
    monkeypatch.setattr(evaluation, "merged", lambda model: model)
    monkeypatch.setattr(evaluation, "evaluate_model", lambda model, data, split: frame[model])
    study = evaluation.Study.__new__(evaluation.Study)
    study.full, study.n_full = {"llama": SimpleNamespace(model=None)}, {"llama": 4}
    per_user = {f"llama {c} {s} k=2 lora": pd.DataFrame({"user": range(20), "ndcg@10": np.full(20, shift[c, 0])})
                for c, s in methods} | {"llama none full k=4": pd.DataFrame({"user": range(20),
                                                                              "ndcg@10": np.full(20, 0.5)})}
    repeats = study.repeats(SimpleNamespace(name="x"), SimpleNamespace(results=tmp_path), per_user)
    fisher = repeats[repeats["criterion"] == "fisher_empirical"].set_index("seed")
    assert fisher["quality_kept"].tolist() == pytest.approx([0.6, 0.5])
    assert fisher["minus_random"].tolist() == pytest.approx([0.2, 0.1])
    assert fisher["minus_first_k"].tolist() == pytest.approx([0.1, -0.05])
    table = pd.DataFrame({"model": "llama", "criterion": "fisher_empirical", "strategy": "top-k", "k": 2,
                          "healed": True, "adapter": "lora", "ci_low": [0.5], "ci_high": [0.7]}, index=[0])
    noise = evaluation.noise_table(repeats, table).set_index("criterion")
    assert noise.loc["fisher_empirical", "seeds"] == 2
    assert noise.loc["fisher_empirical", "minus_first_k_min"] == pytest.approx(-0.05)
    assert noise.loc["fisher_empirical", "bootstrap_half_width"] == pytest.approx(0.1)
    assert np.isnan(noise.loc["random", "bootstrap_half_width"])  # not in the table: no interval
