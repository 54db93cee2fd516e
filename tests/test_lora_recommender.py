"""A pretrained checkpoint fine-tuned as LLM recommenders are: frozen body, LoRA, item tables trained; the cache keeps
the adapter folder only, and what comes back is the merged plain model."""

import json
import warnings

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig

from lwadapter import runtime
from lwadapter.lora_recommender import (attach_recommender_lora, fine_tune_or_load, load_checkpoint, train_or_fine_tune,
                                        trained_item_codes)
from lwadapter.models import item_logits, load_pretrained_recommender
from lwadapter.runtime import set_seed
from tests.synthetic import cyclic_data

TRAIN = dict(epochs=2, batch_size=16, lr=1e-2, patience=2, decay="constant")


@pytest.fixture
def checkpoint(tmp_path, monkeypatch):
    """A tiny tied-embedding Llama checkpoint (like SmolLM2) saved to disk, and a cache of its own."""
    monkeypatch.setattr(runtime, "CACHE_DIR", tmp_path / "cache")
    set_seed(0)
    lm = AutoModelForCausalLM.from_config(LlamaConfig(
        vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=8, max_position_embeddings=64, bos_token_id=1, eos_token_id=2,
        tie_word_embeddings=True))
    lm.save_pretrained(tmp_path / "lm")
    return tmp_path / "lm"


def spec(path, rank=2):
    return {"path": str(path), "max_len": 10, "item_init": "random", "text_vocabulary": False,
            "tie_item_head": False, "lora": {"rank": rank, "alpha": 4.0, "dropout": 0.0}}


def test_only_lora_and_the_item_tables_train(checkpoint):
    data = cyclic_data(n_users=24)
    model = attach_recommender_lora(load_pretrained_recommender(checkpoint, data.n_items, max_len=10,
                                                                item_init="random", text_vocabulary=False,
                                                                tie_item_head=False))
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "modules_to_save" in n for n in trainable)
    assert {n.split(".modules_to_save")[0].rsplit(".", 1)[-1] for n in trainable if "modules_to_save" in n} == \
        {"embed_tokens", "lm_head"}
    assert any("q_proj.lora_A" in n for n in trainable) and any("down_proj.lora_B" in n for n in trainable)
    tied = load_pretrained_recommender(checkpoint, data.n_items, max_len=10, item_init="random")
    with pytest.raises(ValueError, match="tie_item_head=False"):
        attach_recommender_lora(tied)


def test_fine_tuning_caches_the_adapter_and_returns_the_merged_model(checkpoint, monkeypatch):
    data = cyclic_data(n_users=24)
    tuned = fine_tune_or_load("tiny-lora", data, spec(checkpoint), TRAIN)
    assert sorted(p.name for p in tuned.path.glob("*.safetensors")) == ["adapter_model.safetensors"]  # no body
    assert not hasattr(tuned.model, "peft_config")  # merged: a plain transformers model
    base = load_pretrained_recommender(checkpoint, data.n_items, max_len=10, item_init="random",
                                       text_vocabulary=False, tie_item_head=False)
    ids = torch.tensor([[0, 3, 4, 5]])
    assert not torch.allclose(item_logits(tuned.model, ids, torch.ones_like(ids)),
                              item_logits(base, ids, torch.ones_like(ids)))  # it learned something
    assert tuned.history["train_loss"].iloc[-1] < tuned.history["train_loss"].iloc[0]

    def no_training(*args, **kwargs):
        raise AssertionError("the cached adapter should have been reused")

    monkeypatch.setattr("lwadapter.lora_recommender.train_recommender", no_training)
    again = train_or_fine_tune("tiny-lora", data, spec(checkpoint), TRAIN)
    loaded = load_checkpoint(tuned.path, data)
    for other in (again, loaded):
        assert other.path == tuned.path
        assert torch.equal(item_logits(other.model, ids, torch.ones_like(ids)),
                           item_logits(tuned.model, ids, torch.ones_like(ids)))


def test_the_cached_adapter_loads_after_its_checkpoint_folder_moved(checkpoint):
    data = cyclic_data(n_users=24)
    tuned = fine_tune_or_load("tiny-lora", data, spec(checkpoint), TRAIN)
    config = tuned.path / "adapter_config.json"  # PEFT records the absolute path the checkpoint was loaded from
    config.write_text(json.dumps({**json.loads(config.read_text()), "base_model_name_or_path": "/moved/away"}))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # PEFT guessing about a folder it cannot find
        loaded = load_checkpoint(tuned.path, data)
    ids = torch.tensor([[0, 3, 4, 5]])
    assert torch.equal(item_logits(loaded.model, ids, torch.ones_like(ids)),
                       item_logits(tuned.model, ids, torch.ones_like(ids)))


def test_low_dimensional_item_tables_train_few_numbers_and_fold_back_into_plain_tables(checkpoint):
    data = cyclic_data(n_users=24)
    load = lambda: load_pretrained_recommender(checkpoint, data.n_items, max_len=10, item_init="random",  # noqa: E731
                                               text_vocabulary=False, tie_item_head=False)
    low = attach_recommender_lora(load(), rank=2, item_dim=3)
    factored = {n.rsplit(".", 1)[-1] for n, p in low.named_parameters() if p.requires_grad and "modules_to_save" in n}
    assert factored == {"codes", "projection", "weight"}  # the factors, and the special rows (BOS, PAD)
    tuned = fine_tune_or_load("tiny-lora-dim", data, {**spec(checkpoint), "lora": {**spec(checkpoint)["lora"],
                                                                                    "item_dim": 3}}, TRAIN)
    plain, cfg = tuned.model, tuned.model.config
    assert type(plain.get_input_embeddings()) is torch.nn.Embedding and type(plain.get_output_embeddings()) is \
        torch.nn.Linear  # folded: scoring and compaction see a plain transformers model
    items = slice(cfg.item_token_offset, cfg.item_token_offset + cfg.num_items)
    assert torch.linalg.matrix_rank(plain.get_output_embeddings().weight.detach()[items]) <= 3
    again = load_checkpoint(tuned.path, data)  # the cache's route gives the same model
    ids = torch.tensor([[0, 3, 4, 5]])
    assert torch.equal(item_logits(plain, ids, torch.ones_like(ids)), item_logits(again.model, ids, torch.ones_like(ids)))
    assert tuned.history["train_loss"].iloc[-1] < tuned.history["train_loss"].iloc[0]
    with pytest.raises(ValueError, match="item_dim=99"):
        attach_recommender_lora(load(), item_dim=99)


def test_item_codes_start_from_a_trained_recommenders_item_rows(checkpoint):
    data = cyclic_data(n_users=24)
    small = train_or_fine_tune("tiny-2L", data, {"arch": "llama", "n_layers": 1, "hidden": 4, "heads": 1,
                                                 "kv_heads": 1, "max_len": 10}, TRAIN)
    codes = trained_item_codes(small.path.name, data)
    assert codes.shape == (data.n_items, 4)
    model = attach_recommender_lora(load_pretrained_recommender(checkpoint, data.n_items, max_len=10,
                                                                item_init="random", text_vocabulary=False,
                                                                tie_item_head=False), rank=2, item_codes=codes)
    table = model.get_input_embeddings().modules_to_save["default"]
    assert torch.equal(table.codes.detach(), codes)
    tuned = fine_tune_or_load("tiny-lora-codes", data, {**spec(checkpoint), "lora": {**spec(checkpoint)["lora"],
                                                                                      "item_codes": small.path.name}},
                              TRAIN)
    assert type(tuned.model.get_input_embeddings()) is torch.nn.Embedding
    frozen = fine_tune_or_load("tiny-lora-frozen", data, {**spec(checkpoint), "lora": {
        **spec(checkpoint)["lora"], "item_codes": small.path.name, "frozen_codes": True}}, TRAIN)
    rows, cfg = frozen.model.get_input_embeddings().weight.detach(), frozen.model.config
    items = rows[cfg.item_token_offset: cfg.item_token_offset + cfg.num_items]
    assert torch.allclose(codes @ torch.linalg.lstsq(codes, items).solution, items, atol=1e-5)  # in the codes' span
    with pytest.raises(ValueError, match="item codes for"):
        attach_recommender_lora(load_pretrained_recommender(checkpoint, data.n_items, max_len=10, item_init="random",
                                                            text_vocabulary=False, tie_item_head=False),
                                item_codes=codes[:3])
