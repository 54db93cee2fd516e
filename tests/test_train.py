"""Training lowers the loss, is seeded, trains only what requires grad; cached checkpoints round-trip exactly."""

import re

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from lwadapter import train as train_module
from lwadapter.checkpoints import CheckpointError
from lwadapter.evaluate import evaluate_model, score_histories
from lwadapter.models import special_tokens
from lwadapter.sequences import IGNORE, SequenceData, collate, label_share, training_examples
from lwadapter.train import (learning_rate_factor, next_item_loss, stop_reason, train_or_load, train_recommender,
                             training_flops_per_token)
from tests.synthetic import cyclic_data, tiny

FAST = dict(epochs=4, batch_size=16, lr=1e-2, patience=2, decay="constant")
SPEC = dict(arch="qwen3", n_layers=2, hidden=16, heads=2, kv_heads=1, max_len=10)


@pytest.fixture(scope="module")
def data():
    return cyclic_data()


def train_loss(model, data) -> float:
    with torch.no_grad():
        return next_item_loss(model.eval(), collate(training_examples(data, 10), *special_tokens(model))).item()


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_training_lowers_the_loss_and_restores_the_best_epoch(arch, data):
    model = tiny(arch)
    before = train_loss(model, data)
    history = train_recommender(model, data, **FAST)
    assert list(history.columns) == ["epoch", "train_loss", "valid_ndcg@10", "lr", "steps", "tokens", "flops"]
    assert train_loss(model, data) < 0.8 * before
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    restored = evaluate_model(model, data, split="valid")["ndcg@10"].mean()
    assert restored == pytest.approx(history["valid_ndcg@10"].max())


def test_two_seeded_runs_give_identical_metrics(data):
    runs = []
    for _ in range(2):
        model = tiny()
        history = train_recommender(model, data, seed=3, **FAST)
        runs.append((history, evaluate_model(model, data)))
    assert runs[0][0].equals(runs[1][0]) and runs[0][1].equals(runs[1][1])
    other = train_recommender(tiny(), data, seed=4, **FAST)
    assert not other["train_loss"].equals(runs[0][0]["train_loss"])


def test_early_stopping_and_eval_every(data):
    history = train_recommender(tiny(), data, epochs=5, eval_every=2, batch_size=16, lr=1e-2, patience=5)
    assert history["valid_ndcg@10"].isna().tolist() == [True, False, True, False, False]
    frozen = train_recommender(tiny(), data, epochs=30, batch_size=16, lr=0.0, patience=2)
    assert len(frozen) == 3  # no change after epoch 1, so two evaluations without improvement stop it


def test_only_trainable_parameters_change_and_the_loss_is_pluggable(data):
    model = tiny()
    for name, p in model.named_parameters():
        p.requires_grad = "lm_head" in name
    frozen = {n: p.clone() for n, p in model.named_parameters() if not p.requires_grad}
    head = model.lm_head.weight.clone()
    calls = []

    def loss_fn(m, batch):
        calls.append(len(batch["input_ids"]))
        return next_item_loss(m, batch, reduction="sum") / len(batch["input_ids"])

    train_recommender(model, data, loss_fn=loss_fn, **FAST)
    assert calls and all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    assert not torch.equal(model.lm_head.weight, head)
    for p in model.parameters():
        p.requires_grad = False
    with pytest.raises(ValueError, match="requires grad"):
        train_recommender(model, data, **FAST)


def test_train_or_load_reuses_the_checkpoint_with_identical_output(data, tmp_path, monkeypatch):
    monkeypatch.setattr(train_module.runtime, "CACHE_DIR", tmp_path)
    fresh = train_or_load("tiny", data, SPEC, FAST, seed=1)
    assert (fresh.path / "model.safetensors").exists() and fresh.path.parent == tmp_path / "models" / "cyclic"

    def no_training(*args, **kwargs):
        raise AssertionError("the cached checkpoint should have been reused")

    monkeypatch.setattr(train_module, "train_recommender", no_training)
    cached = train_or_load("tiny", data, SPEC, FAST, seed=1)
    assert cached.path == fresh.path and cached.record() == fresh.record()
    assert cached.epochs == fresh.epochs == len(fresh.history)
    assert set(fresh.record()) == {"epochs", "best_epoch", "stop_reason", "steps", "train_tokens", "train_flops",
                                   "train_seconds"}
    pd.testing.assert_frame_equal(cached.history, fresh.history)
    histories, targets = data.histories("test")
    assert torch.equal(score_histories(cached.model, histories, targets),
                       score_histories(fresh.model, histories, targets))
    with pytest.raises(AssertionError, match="reused"):
        train_or_load("tiny", data, SPEC, FAST, seed=1, force=True)
    with pytest.raises(AssertionError, match="reused"):
        train_or_load("tiny", data, SPEC, {**FAST, "lr": 5e-3}, seed=1)  # changed inputs: a new checkpoint


def test_load_trained_places_the_model_in_the_requested_dtype_and_device(data, tmp_path, monkeypatch):
    monkeypatch.setattr(train_module.runtime, "CACHE_DIR", tmp_path)
    path = train_or_load("tiny", data, SPEC, FAST, seed=1).path
    default = train_module.load_trained(path).model
    assert next(default.parameters()).dtype == torch.float32 and not default.training
    low = train_module.load_trained(path, device="cpu", dtype="bfloat16").model
    assert {p.dtype for p in low.parameters()} == {torch.bfloat16} and not low.training
    mapped = train_module.load_trained(path, device_map="cpu", dtype=torch.float32).model
    assert next(mapped.parameters()).device.type == "cpu"
    histories, targets = data.histories("test")
    torch.testing.assert_close(score_histories(low, histories, targets), score_histories(default, histories, targets),
                               rtol=0.05, atol=0.1)
    with pytest.raises(ValueError, match="'bf16'"):
        train_module.load_trained(path, dtype="bf16")
    cached = train_or_load("tiny", data, SPEC, FAST, seed=1, device="cpu", dtype="bfloat16").model  # passed through
    assert {p.dtype for p in cached.parameters()} == {torch.bfloat16}


@pytest.mark.parametrize("change", ["missing", "unexpected"])
def test_load_trained_names_the_keys_a_checkpoint_lacks_or_adds(tmp_path, change):
    tiny().save_pretrained(tmp_path)
    (tmp_path / "meta.json").write_text("{}")
    pd.DataFrame({"epoch": [1]}).to_csv(tmp_path / "history.csv", index=False)
    weights = load_file(tmp_path / "model.safetensors")
    key = "model.layers.0.mlp.up_proj.weight"
    if change == "missing":
        del weights[key]  # from_pretrained alone would initialise it at random and only log it
    else:
        key = "model.layers.0.mlp.extra_proj.weight"
        weights[key] = torch.zeros(2)  # from_pretrained alone would drop it and only log it
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=rf"{re.escape(str(tmp_path))}: 1 {change} keys, e\.g\. "
                                              rf"\['{re.escape(key)}'\]\. .*delete the folder"):
        train_module.load_trained(tmp_path)


@pytest.mark.parametrize("stride", [None, 10, 4, 1])
def test_every_training_item_is_a_label_exactly_once_and_never_a_held_out_item(stride):
    data = SequenceData("toy", [f"i{i}" for i in range(100)], ["a", "b", "c"],
                        [list(range(23)), list(range(30, 37)), [50]], [90, 91, 92], [95, 96, 97])
    examples = training_examples(data, 10, stride)
    labels = [lab for _, labels in examples for lab in labels if lab != IGNORE]
    assert sorted(labels) == sorted(i for items in data.train for i in items)
    assert not set(labels) & (set(data.valid) | set(data.test))
    assert all(len(labels) <= 10 and len(inputs) == len(labels) - 1 for inputs, labels in examples)
    for inputs, labels in examples:  # a label's input context is the items just before it, in order
        window = inputs + [labels[-1]]
        assert window == sorted(window) and all(b - a == 1 for a, b in zip(window, window[1:]))
    assert label_share(data, 10, stride) == 1.0
    if stride == 4:  # overlapping windows: later windows label only their last 4 items
        assert next(labels for _, labels in examples if 22 in labels) == [IGNORE] * 6 + [19, 20, 21, 22]
    with pytest.raises(ValueError, match="stride"):
        training_examples(data, 10, 11)


def test_learning_rate_warms_up_then_decays_to_the_floor():
    factors = [learning_rate_factor(s, 10, 110, "cosine", 0.1) for s in range(111)]
    assert factors[0] < factors[9] < 1.0 and factors[10] == 1.0
    assert factors[110] == pytest.approx(0.1) and all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert learning_rate_factor(60, 10, 110, "linear", 0.0) == pytest.approx(0.5)
    assert learning_rate_factor(60, 10, 110, "constant") == 1.0
    with pytest.raises(ValueError, match="decay"):
        learning_rate_factor(60, 10, 110, "step")


def test_stop_reason_and_compute_columns(data):
    capped = train_recommender(tiny(), data, epochs=2, batch_size=16, lr=1e-2, patience=5)
    assert stop_reason(capped, 5) == "cap"
    frozen = train_recommender(tiny(), data, epochs=30, batch_size=16, lr=0.0, patience=2)
    assert stop_reason(frozen, 2) == "patience"
    steps_per_epoch = -(-len(training_examples(data, 10)) // 16)
    assert capped["steps"].tolist() == [steps_per_epoch, 2 * steps_per_epoch]
    tokens = sum(len(inputs) + 1 for inputs, _ in training_examples(data, 10))
    assert capped["tokens"].tolist() == [tokens, 2 * tokens]
    model = tiny()
    assert capped["flops"].tolist() == pytest.approx([f * training_flops_per_token(model) for f in (tokens, 2 * tokens)])
    full = training_flops_per_token(model)
    for p in model.parameters():  # nothing trainable: forward + the backward through the activations only
        p.requires_grad = False
    assert training_flops_per_token(model) == pytest.approx(full * 2 / 3)
