"""Cold-start items: the held-out items leave every training input, the scenario ranks them among all items and
among themselves, popularity knows nothing of them, and a model's rows of them go back to their start."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from lwadapter import runtime
from lwadapter.cold_items import (
    cold_item_metrics, cold_item_table, cold_users, held_out_items, popularity_scorer, restore_item_rows,
    without_items)
from lwadapter.sequences import SequenceData
from lwadapter.study import evaluation, llm_teachers
from lwadapter.train import data_checksum
from tests.synthetic import cyclic_data, tiny


def hand_made() -> SequenceData:
    """Four users over 6 items; items 4 and 5 are test targets of users 0 and 1."""
    return SequenceData("hand", [f"i{i}" for i in range(6)], [f"u{u}" for u in range(4)],
                        [[0, 1, 5], [1, 2, 3], [0, 2, 4], [3, 4, 0]], [2, 4, 1, 2], [4, 5, 3, 1])


def test_held_out_items_are_a_seeded_sample_of_distinct_test_targets():
    data = cyclic_data(n_users=48)
    items = held_out_items(data, 5, seed=3)
    assert items == sorted(set(items)) and len(items) == 5 and set(items) <= set(data.test)
    assert items == held_out_items(data, 5, seed=3) and items != held_out_items(data, 5, seed=4)
    with pytest.raises(ValueError, match="held_out_items=0: hold out between 1 and"):
        held_out_items(data, 0)


def test_held_out_items_leave_every_training_input_and_the_last_warm_item_validates():
    cold = without_items(hand_made(), [4, 5])
    assert cold.train == [[0, 1], [1, 2], [0, 2], [3, 0]]
    assert cold.valid == [2, 3, 1, 2]
    assert cold.test == [4, 5, 3, 1]  # test targets kept: users 0 and 1 are the cold-start cases
    assert list(cold_users(cold, [4, 5])) == [0, 1]
    histories, _ = cold.histories("test")
    assert not {4, 5} & {i for h in histories for i in h}
    with pytest.raises(ValueError, match="user u1 of hand keeps 1 item"):
        without_items(hand_made(), [1, 2, 4])


def test_the_target_is_ranked_among_all_items_history_masked_and_among_the_held_out_items():
    cold = without_items(hand_made(), [4, 5])
    scores = torch.tensor([[9.0, 8.0, 0.0, 7.0, 1.0, 2.0],   # user 0: history 0 1 2 masked; 3, 5 above target 4
                           [3.0, 9.0, 9.0, 9.0, 5.0, 1.0]])  # user 1: history 1 2 3 masked; 0, 4 above target 5
    per_user = cold_item_metrics(lambda h, t: scores, cold, [4, 5]).set_index(["scope", "user"])
    assert per_user.loc[("all items", 0), "mrr"] == pytest.approx(1 / 3)
    assert per_user.loc[("held-out items", 0), "mrr"] == pytest.approx(1 / 2)
    assert per_user.loc[("all items", 1), "mrr"] == pytest.approx(1 / 3)  # items 0 and 4 above it
    assert per_user.loc[("held-out items", 1), "mrr"] == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match="no test target of hand is among the 1 held-out items"):
        cold_item_metrics(lambda h, t: scores, without_items(hand_made(), [0]), [0])


def test_popularity_ranks_every_held_out_item_below_the_items_it_has_seen():
    data = cyclic_data(n_users=200, n_items=30)
    items = held_out_items(data, 6)
    cold = without_items(data, items)
    per_user = cold_item_metrics(popularity_scorer(cold), cold, items)
    seen = len({i for h in cold.train for i in h})
    assert (1 / per_user[per_user["scope"] == "all items"]["mrr"] > seen - 12).all()  # below the seen items
    among = per_user[per_user["scope"] == "held-out items"]["mrr"]
    assert 1 / 6 <= among.min() and among.max() <= 1 and among.nunique() > 1  # a random order, not one fixed rank


def test_restored_rows_are_the_starting_rows_and_nothing_else_moves():
    start, model = tiny(n_layers=1), tiny(n_layers=1)
    with torch.no_grad():
        for table in (model.get_input_embeddings(), model.get_output_embeddings()):
            table.weight.add_(1.0)
    before = model.get_input_embeddings().weight.clone()
    restore_item_rows(model, start, [2, 5])
    offset = model.config.item_token_offset
    after = model.get_input_embeddings().weight
    assert torch.equal(after[offset + 2], start.get_input_embeddings().weight[offset + 2])
    assert torch.equal(model.get_output_embeddings().weight[offset + 5],
                       start.get_output_embeddings().weight[offset + 5])
    assert torch.equal(after[offset + 3], before[offset + 3])
    with pytest.raises(ValueError, match="same item layout"):
        restore_item_rows(model, tiny(n_layers=1, n_items=10), [2])


def test_the_baseline_trains_again_without_the_held_out_items_and_an_llm_needs_title_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "CACHE_DIR", tmp_path / "cache")
    data = cyclic_data(n_users=40)
    spec = dict(arch="llama", n_layers=1, hidden=16, heads=2, kv_heads=1, max_len=10)
    train = dict(epochs=1, batch_size=16, lr=1e-2, patience=1, decay="constant")
    baseline = SimpleNamespace(meta={"config": {"model": spec, "train": train}})
    items, models = llm_teachers.held_out_models(data, 3, {}, {"llama-1L": baseline}, None)
    assert items == held_out_items(data, 3) and list(models) == ["llama-1L-held-out-items"]
    assert models["llama-1L-held-out-items"].meta["data"] == data_checksum(without_items(data, items))
    assert llm_teachers.held_out_models(data, 0, {}, {"llama-1L": baseline}, None) == ([], {})
    codes = SimpleNamespace(meta={"config": {"model": {"path": "m", "item_init": "random", "lora": {}},
                                             "train": train}})
    with pytest.raises(ValueError, match="m-lora does not start its item rows from titles"):
        llm_teachers.held_out_models(data, 3, {"m-lora": codes}, {}, None)


def test_the_scenario_table_has_both_scopes_for_each_model_and_popularity():
    data = cyclic_data(n_users=60)
    items = held_out_items(data, 4)
    cold = without_items(data, items)
    table = cold_item_table({"tiny": tiny(n_layers=1)}, cold, items, n_boot=50)
    assert set(table["model"]) == {"tiny", "most-popular"}
    assert set(table["group"]) == {"among all items", "among held-out items"}
    assert (table["n"] == len(cold_users(cold, items))).all() and table["value"].notna().all()


def test_the_study_cuts_the_teachers_held_out_copy_to_the_chosen_kept_layers(tmp_path, monkeypatch):
    data = cyclic_data(n_users=60)
    items = held_out_items(data, 4)
    config = {"models": {"llama-4L": {"arch": "llama"}, "llama-1L": {"arch": "llama"}},
              "held_out": {"items": items, "checkpoints": {"llama-4L-held-out-items": "a", "llama-1L-held-out-items":
                                                           "b"}}, "weights": {}}
    (tmp_path / "base_models.json").write_text(json.dumps({"config": config}))
    teachers = {"a": tiny(n_layers=4), "b": tiny(n_layers=1)}
    monkeypatch.setattr(evaluation, "recorded_checkpoint", lambda dataset, checkpoint, *args: checkpoint)
    monkeypatch.setattr(evaluation, "load_checkpoint", lambda path, data: SimpleNamespace(model=teachers[path]))
    study = evaluation.Study.__new__(evaluation.Study)
    study.teacher_of = {"llama": "llama-4L"}
    chosen = pd.DataFrame([{"model": "llama", "criterion": "taylor", "strategy": "top-k", "k": 2, "kept_layers": "0 3"},
                           {"model": "llama", "criterion": "none", "strategy": "full", "k": 4, "kept_layers": ""}])
    cases = study.cold_item_cases(data, SimpleNamespace(results=tmp_path), chosen, n_boot=20)
    assert set(cases["model"]) == {"llama-4L-held-out-items", "llama-4L-held-out-items taylor top-k k=2",
                                   "llama-1L-held-out-items", "most-popular"}
    assert (cases["scenario"] == "cold-start items").all() and np.isfinite(cases["value"]).all()
    (tmp_path / "base_models.json").write_text(json.dumps({"config": {"models": {}}}))
    empty = study.cold_item_cases(data, SimpleNamespace(results=tmp_path), chosen)
    assert empty.empty and list(empty.columns) == list(cases.columns)


def test_an_llm_fine_tuned_without_the_items_keeps_their_title_rows_and_gets_its_head_rows_back(tmp_path,
                                                                                              monkeypatch):
    import dataclasses

    from lwadapter.cold_items import initial_model
    from tests.test_checkpoints import _tiny_checkpoint

    monkeypatch.setattr(runtime, "CACHE_DIR", tmp_path / "cache")
    path = _tiny_checkpoint(tmp_path / "lm")
    titles = ["star wars", "toy story", "the godfather", "alien", "heat", "star heat"]
    data = dataclasses.replace(cyclic_data(n_users=40, n_items=6), item_titles=titles)
    spec = {"path": str(path), "max_len": 10, "item_init": "title", "text_vocabulary": False, "tie_item_head": False,
            "lora": {"rank": 2, "alpha": 4.0, "dropout": 0.0}}
    teacher = SimpleNamespace(meta={"config": {"model": spec, "train": dict(epochs=2, batch_size=8, lr=1e-2,
                                                                            patience=2, decay="constant")}})
    items, models = llm_teachers.held_out_models(data, 2, {"tiny-lora": teacher, "tiny-scratch": teacher}, {}, None)
    model, start = models["tiny-lora-held-out-items"].model, initial_model(spec, data)
    rows = model.config.item_token_offset + torch.tensor(items)
    warm = model.config.item_token_offset + torch.tensor(sorted(set(range(6)) - set(items)))
    start_in, start_head = start.get_input_embeddings().weight, start.get_output_embeddings().weight
    assert list(models) == ["tiny-lora-held-out-items"]  # only the LoRA teachers of the LLMs
    assert torch.equal(model.get_input_embeddings().weight[rows], start_in[rows])  # never an input: untouched
    assert not torch.allclose(model.get_input_embeddings().weight[warm], start_in[warm])  # the others trained
    assert not torch.allclose(model.get_output_embeddings().weight[rows], start_head[rows])  # pushed as negatives
    restore_item_rows(model, start, items)
    assert torch.equal(model.get_output_embeddings().weight[rows], start_head[rows])
