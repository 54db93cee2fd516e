"""Notebook 02, part 3 (lwadapter.study.llm_teachers): which LLM teachers and controls it plans, on which users, and
which pairs it tests."""

import json

import pytest

from lwadapter.models import build_recommender
from lwadapter.sequences import label_share
from lwadapter.study import llm_teachers
from tests.synthetic import cyclic_data

LLM_MODEL = dict(max_len=50, item_init="title", text_vocabulary=False, tie_item_head=False)
LORA = dict(rank=16, alpha=32.0, dropout=0.0)
SMOLLM2 = dict(model_type="llama", num_hidden_layers=30, hidden_size=576, num_attention_heads=9,
               num_key_value_heads=3, intermediate_size=1536)


def test_each_checkpoint_is_a_lora_teacher_with_the_controls_asked_for(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(SMOLLM2))
    controls = {str(tmp_path): ["random-items", "random-init"]}
    specs = llm_teachers.llm_specs([str(tmp_path)], LLM_MODEL, LORA, controls)
    name = f"{tmp_path}-lora"
    assert list(specs) == [name, f"{name}-random-items", f"{tmp_path}-scratch"]
    assert specs[name] == {"path": str(tmp_path), **LLM_MODEL, "lora": LORA}
    assert specs[f"{name}-random-items"] == {**specs[name], "item_init": "random"}
    assert specs[f"{tmp_path}-scratch"] == dict(arch="llama", n_layers=30, hidden=576, heads=9, kv_heads=3,
                                                intermediate=1536, max_len=50, tie_embeddings=False)
    assert list(llm_teachers.llm_specs([str(tmp_path)], LLM_MODEL, LORA)) == [name]


def test_the_random_init_control_of_a_compact_model_cuts_the_architecture_to_its_depth(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(SMOLLM2))
    specs = llm_teachers.llm_specs([str(tmp_path)], LLM_MODEL, LORA, control_depths={str(tmp_path): [8]})
    assert list(specs) == [f"{tmp_path}-lora", f"{tmp_path}-8L-scratch"]
    assert specs[f"{tmp_path}-8L-scratch"] == dict(arch="llama", n_layers=8, hidden=576, heads=9, kv_heads=3,
                                                    intermediate=1536, max_len=50, tie_embeddings=False)
    with pytest.raises(ValueError, match="llm_control_depths: 30 layers for .*, which has 30: give a depth from 1 to 29"):
        llm_teachers.llm_specs([str(tmp_path)], LLM_MODEL, LORA, control_depths={str(tmp_path): [30]})
    with pytest.raises(ValueError, match=r"llm_control_depths name \['n'\]"):
        llm_teachers.llm_specs([str(tmp_path)], LLM_MODEL, LORA, control_depths={"n": [8]})


def test_random_item_rows_are_a_control_only_where_the_teacher_starts_from_titles(tmp_path):
    specs = llm_teachers.llm_specs(["m"], {**LLM_MODEL, "item_init": "random"}, LORA, {"m": ["random-items"]})
    assert list(specs) == ["m-lora"]
    assert list(llm_teachers.llm_specs(["m"], LLM_MODEL, LORA, {"m": ["own-items"]})) == ["m-lora"]  # no codes


def test_item_codes_get_a_control_with_item_tables_of_its_own():
    coded = {**LORA, "item_codes": "llama-2L-0a1b", "frozen_codes": True}
    specs = llm_teachers.llm_specs(["m"], LLM_MODEL, coded, {"m": ["own-items"]})
    assert specs["m-lora"]["lora"] == coded and specs["m-lora-own-items"]["lora"] == LORA
    with pytest.raises(ValueError, match=r"unknown llm_controls \['random-layers'\] for m"):
        llm_teachers.llm_specs(["m"], LLM_MODEL, LORA, {"m": ["random-layers"]})
    with pytest.raises(ValueError, match=r"llm_controls name \['n'\], which are not among llms=\['m'\]"):
        llm_teachers.llm_specs(["m"], LLM_MODEL, LORA, {"n": ["random-items"]})


def test_a_random_init_control_needs_an_architecture_built_from_a_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({**SMOLLM2, "model_type": "gemma3_text"}))
    with pytest.raises(ValueError, match="gemma3_text model: its random-init control needs one of"):
        llm_teachers.llm_specs([str(tmp_path)], LLM_MODEL, LORA, {str(tmp_path): ["random-init"]})


def test_the_random_init_control_builds_the_checkpoints_architecture(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({**SMOLLM2, "num_hidden_layers": 2, "hidden_size": 36,
                                                      "intermediate_size": 48}))
    model = build_recommender(n_items=10, **llm_teachers.architecture_spec(str(tmp_path), 20))
    config = model.config
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads, config.num_key_value_heads,
            config.intermediate_size, config.head_dim) == (2, 36, 9, 3, 48, 4)
    assert model.get_output_embeddings().weight is not model.get_input_embeddings().weight


def test_training_users_are_a_seeded_sample_with_their_own_splits():
    data = cyclic_data(n_users=48)
    users = llm_teachers.training_users(data, 10, seed=3)
    assert users.n_users == 10 and users.n_items == data.n_items and users.name == data.name
    assert llm_teachers.training_users(data, 10, seed=3) == users
    assert llm_teachers.training_users(data, 10, seed=4) != users
    for u, user in enumerate(users.user_ids):
        k = data.user_ids.index(user)
        assert (users.train[u], users.valid[u], users.test[u]) == (data.train[k], data.valid[k], data.test[k])
    assert llm_teachers.training_users(data, None) is data and llm_teachers.training_users(data, 48) is data
    with pytest.raises(ValueError, match="llm_users=0"):
        llm_teachers.training_users(data, 0)


def test_the_label_share_counts_the_sampled_users_interactions_against_the_studys():
    data = cyclic_data(n_users=48, length=8)
    assert llm_teachers.study_label_share(data, data, 50) == pytest.approx(label_share(data, 50)) == 1.0
    assert llm_teachers.study_label_share(llm_teachers.training_users(data, 12), data, 50) == pytest.approx(0.25)


def test_each_teacher_is_tested_against_the_baseline_the_references_and_its_controls():
    specs = {"a-lora": {}, "a-lora-random-items": {}, "a-scratch": {}, "b-lora": {}, "b-lora-own-items": {},
             "b-scratch": {}}
    assert llm_teachers.llm_pairs(specs, "llama-2L", ["llama-32L-pretrained"]) == [
        ("a-lora", "llama-2L"), ("a-lora", "llama-32L-pretrained"), ("a-lora", "a-lora-random-items"),
        ("a-lora", "a-scratch"), ("b-lora", "llama-2L"), ("b-lora", "llama-32L-pretrained"),
        ("b-lora", "b-lora-own-items"), ("b-lora", "b-scratch"), ("b-lora-own-items", "b-scratch")]


def test_the_test_table_names_each_models_architecture_depth_route_and_label_share(tmp_path):
    import pandas as pd

    from lwadapter.study import base_models
    from lwadapter.train import Trained
    from tests.synthetic import tiny

    data = cyclic_data(n_users=20)
    history = pd.DataFrame({"valid_ndcg@10": [0.1, 0.2], "steps": [1, 2], "tokens": [10, 20], "flops": [1.0, 2.0]})
    meta = {"stop_reason": "patience", "train_seconds": 1.0}
    trained = {"qwen3-2L": Trained(tiny("qwen3", n_layers=2), history, meta, tmp_path / "qwen3-2L-0a1b")}
    llms = {"m-lora": Trained(tiny("llama", n_layers=3), history, meta, tmp_path),
            "m-scratch": Trained(tiny("llama", n_layers=1), history, meta, tmp_path),
            "n-lora": Trained(tiny("llama", n_layers=2), history, meta, tmp_path)}
    specs = {"qwen3-2L": dict(arch="qwen3", n_layers=2), "m-lora": {"path": "m", "lora": LORA},
             "m-scratch": dict(arch="llama", n_layers=1),
             "n-lora": {"path": "n", "lora": llm_teachers.with_item_codes(LORA, "qwen3-2L", trained)}}
    results, per_user = base_models.results_on_test(data, specs, trained, {}, {}, llms,
                                                    {"qwen3-2L": 1.0, "m-lora": 0.25, "m-scratch": 0.25})
    table = results.set_index("model")
    assert table.loc["qwen3-2L", ["arch", "layers", "route", "label_share"]].tolist() == ["qwen3", 2, "study data", 1.0]
    assert table.loc["m-lora", ["arch", "layers", "route", "label_share"]].tolist() == [
        "llama", 3, "pretrained LLM + LoRA", 0.25]
    assert table.loc["m-scratch", "route"] == "LLM architecture, random init"
    assert table.loc["n-lora", ["route", "pretrain_epochs", "pretrain_seconds"]].tolist() == [
        "pretrained LLM + LoRA, item codes of qwen3-2L", 2, 1.0]  # the codes' training counted
    assert specs["n-lora"]["lora"]["item_codes"] == "qwen3-2L-0a1b"
    assert specs["n-lora"]["lora"]["frozen_codes"] is True
    with pytest.raises(ValueError, match="llm_item_codes='llama-2L' is not a base model"):
        llm_teachers.with_item_codes(LORA, "llama-2L", trained)
    assert pd.isna(table.loc["most-popular", "label_share"]) and set(per_user) == {*trained, *llms, "most-popular"}
    assert llm_teachers.with_item_codes(LORA, None, {}) == LORA


def test_a_recipe_of_its_own_must_name_a_checkpoint_of_the_study():
    with pytest.raises(ValueError, match=r"llm_train_for names \['gemma'\], which are not among llms=\['m'\]"):
        llm_teachers.fine_tune_llms(cyclic_data(n_users=10), ["m"], LLM_MODEL, LORA, None, None, {}, {},
                                    train_for={"gemma": {"lr": 1e-3}})
