"""Healing: bridges start as identity, distillation vanishes for a perfect student, adapters save, reload and merge
without changing scores, and training the adapters lowers the compact model's validation loss."""

import copy
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from lwadapter import healing, runtime
from lwadapter.checkpoints import CheckpointError
from lwadapter.compact import compact_model
from lwadapter.evaluate import history_batch, score_histories
from lwadapter.healing import (
    DistillationLoss, adapter_size, add_bridges, attach_adapters, distillation_loss, gap_positions, heal,
    heal_or_load, hidden_matching_loss, load_adapter, merged, save_adapter)
from lwadapter.models import decoder_layers, special_tokens
from lwadapter.sequences import collate, training_examples
from lwadapter.train import Trained, next_item_loss, train_recommender
from tests.synthetic import cyclic_data, tiny

KEEP = [0, 3, 5]  # gaps before positions 1 (layer 3) and 2 (layer 5)
FAST = dict(batch_size=16, patience=2)
LAYERS = 6


def scores(model, data):
    return score_histories(model.eval(), *data.histories("valid"))


def valid_loss(model, data) -> float:
    model.eval()
    with torch.no_grad():
        return next_item_loss(model, history_batch(model, *data.histories("valid"))).item()


def perturb_adapters(model, scale=0.3):
    """Move every trainable (adapter) weight off its initial value, so adapters really change the function."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(scale * torch.randn(p.shape, generator=g))
    return model


@pytest.fixture(scope="module")
def data():
    return cyclic_data()


@pytest.fixture(scope="module")
def teacher(data):
    model = tiny(n_layers=LAYERS)
    train_recommender(model, data, epochs=12, lr=2e-2, batch_size=16, patience=12)
    return model


def test_gap_positions():
    assert gap_positions([0, 2, 3, 5]) == [1, 3]
    assert gap_positions([0, 1, 2]) == []
    assert gap_positions([2, 3, 7]) == [0, 2]


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_bridges_start_as_identity_and_are_applied(arch, data):
    compact = compact_model(tiny(arch, n_layers=LAYERS), KEEP)
    before = scores(compact, data)
    healed = attach_adapters(copy.deepcopy(compact), rank=2, bridge_rank=2)
    layers = decoder_layers(healed)
    assert [i for i, layer in enumerate(layers) if hasattr(layer, "bridge")] == [1, 2]
    trainable = [n for n, p in healed.named_parameters() if p.requires_grad]
    assert any(".bridge." in n for n in trainable) and any("lora_B" in n for n in trainable)
    assert torch.equal(scores(healed, data), before)
    with torch.no_grad():  # a non-zero bridge must change the output: the pre-hook really runs
        layers[2].bridge.modules_to_save["default"].up.weight.fill_(0.5)
    assert not torch.allclose(scores(healed, data), before, atol=1e-3)


def test_add_bridges_rejects_twice_and_bad_rank():
    compact = compact_model(tiny(n_layers=LAYERS), KEEP)
    with pytest.raises(ValueError, match="positive integer"):
        add_bridges(compact, 0)
    add_bridges(compact, 2)
    with pytest.raises(ValueError, match="already has bridges"):
        add_bridges(compact, 2)


def test_distillation_vanishes_only_for_a_perfect_student():
    g = torch.Generator().manual_seed(0)
    teacher_logits = torch.randn(2, 5, 7, generator=g)
    mask = torch.ones(2, 5, dtype=torch.bool)
    student = teacher_logits.clone().requires_grad_(True)
    loss = distillation_loss(student, teacher_logits, mask, temperature=2.0)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert student.grad.abs().max().item() < 1e-6
    other = torch.randn(2, 5, 7, generator=g)
    t = 3.0
    p = torch.softmax(teacher_logits / t, -1)
    expected = (p * (p.log() - torch.log_softmax(other / t, -1))).sum(-1).mean() * t * t
    assert distillation_loss(other, teacher_logits, mask, t).item() == pytest.approx(expected.item(), rel=1e-5)
    assert expected.item() > 0.01
    mask[:, 2:] = False  # masked positions do not count
    masked = (p * (p.log() - torch.log_softmax(other / t, -1))).sum(-1)[:, :2].mean() * t * t
    assert distillation_loss(other, teacher_logits, mask, t).item() == pytest.approx(masked.item(), rel=1e-5)


def test_hidden_matching_weights_layers():
    a, b = torch.zeros(1, 3, 4), torch.ones(1, 3, 4)
    mask = torch.ones(1, 3, dtype=torch.bool)
    assert hidden_matching_loss([a, a], [b, a], torch.tensor([0.0, 1.0]), mask).item() == 0.0
    assert hidden_matching_loss([a, a], [b, a], torch.tensor([1.0, 0.0]), mask).item() == pytest.approx(1.0)


def test_full_student_pays_only_cross_entropy(teacher, data):
    """A student keeping every layer equals the teacher: distillation and hidden matching add exactly nothing."""
    student = compact_model(teacher, range(LAYERS))
    batch = history_batch(student, *data.histories("valid"))
    loss = DistillationLoss(teacher, kd_weight=1.0, hidden_weight=1.0)(student, batch)
    assert loss.item() == pytest.approx(next_item_loss(student, batch).item(), abs=1e-6)
    compact = compact_model(teacher, KEEP)
    gap = DistillationLoss(teacher, kd_weight=1.0, hidden_weight=1.0)(compact, batch)
    assert gap.item() > next_item_loss(compact, batch).item() + 1e-3


def test_without_distillation_the_teacher_never_runs_and_costs_nothing(teacher, data, monkeypatch):
    compact = compact_model(teacher, KEEP)
    batch = history_batch(compact, *data.histories("valid"))
    plain = DistillationLoss(teacher, kd_weight=0.0, hidden_weight=0.0)
    monkeypatch.setattr(teacher, "forward", lambda *args, **kwargs: pytest.fail("the teacher ran"))
    assert plain(compact, batch).item() == pytest.approx(next_item_loss(compact, batch).item(), abs=1e-6)
    assert plain.extra_flops_per_token == 0 and DistillationLoss(compact).extra_flops_per_token > 0


def test_memoised_teacher_runs_once_per_window_and_gives_the_live_loss(teacher, data, monkeypatch):
    """The memo computes a batch's teacher logits the first time (the live loss, exactly), then reads them back for
    any batch of the same windows, also regrouped with other padding, and counts the teacher's FLOPs once."""
    compact = compact_model(teacher, KEEP)
    examples = training_examples(data, 20)
    first = collate(examples[:8], *special_tokens(teacher))
    regrouped = collate(examples[6:8] + examples[:3], *special_tokens(teacher))
    live, memo = DistillationLoss(teacher), DistillationLoss(teacher, memo=True)
    live_first = live(compact, first).item()
    assert memo(compact, first).item() == live_first
    assert memo.extra_flops_per_token == 0 < live.extra_flops_per_token
    assert memo.teacher_flops == live.extra_flops_per_token * int(first["attention_mask"].sum())
    expected = live(compact, regrouped).item()
    monkeypatch.setattr(teacher, "forward", lambda *args, **kwargs: pytest.fail("the teacher ran again"))
    assert memo(compact, first).item() == live_first
    assert memo(compact, regrouped).item() == pytest.approx(expected, rel=1e-5)
    assert DistillationLoss(teacher, hidden_weight=1.0, memo=True).memo is None  # hidden states are not memoised


def test_memoised_healing_follows_the_live_curve_and_counts_the_teacher_once(teacher, data):
    runs = {memo: heal(compact_model(teacher, KEEP), teacher, data, rank=4, epochs=3, lr=1e-2, memo_teacher=memo,
                       **FAST)[1] for memo in (False, True)}
    pd.testing.assert_frame_equal(runs[True].drop(columns="flops"), runs[False].drop(columns="flops"), rtol=1e-4)
    teacher_epoch = DistillationLoss(teacher).extra_flops_per_token * runs[False]["tokens"].iloc[0]
    saved = (runs[False]["epoch"] - 1) * teacher_epoch  # the teacher's forward passes after the first epoch
    assert runs[True]["flops"].tolist() == pytest.approx((runs[False]["flops"] - saved).tolist(), rel=1e-9)


def test_layer_scores_must_match_the_teacher(teacher):
    with pytest.raises(ValueError, match="6 non-negative values"):
        DistillationLoss(teacher, layer_scores=[1.0, 2.0])
    with pytest.raises(ValueError, match="6 non-negative values"):
        DistillationLoss(teacher, layer_scores=[1.0, -1.0, 1.0, 1.0, 1.0, 1.0])


@pytest.mark.parametrize("bridge_rank", [None, 2])
def test_merged_and_unmerged_give_the_same_scores(teacher, data, bridge_rank):
    compact = compact_model(teacher, KEEP)
    base = scores(compact, data)
    healed = perturb_adapters(attach_adapters(compact, rank=4, bridge_rank=bridge_rank))
    unmerged = scores(healed, data)
    inference = merged(healed)
    assert not any("lora" in n for n, _ in inference.named_parameters())
    assert not torch.allclose(unmerged, base, atol=1e-3)
    torch.testing.assert_close(scores(inference, data), unmerged, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("bridge_rank", [None, 2])
def test_saved_adapter_reloads_to_identical_scores(teacher, data, bridge_rank, tmp_path):
    compact = compact_model(teacher, KEEP)
    healed = perturb_adapters(attach_adapters(copy.deepcopy(compact), rank=4, bridge_rank=bridge_rank))
    save_adapter(healed, tmp_path)
    reloaded = load_adapter(copy.deepcopy(compact), tmp_path)
    assert torch.equal(scores(reloaded, data), scores(healed, data))
    assert not torch.allclose(scores(compact, data), scores(healed, data), atol=1e-3)


def test_load_adapter_names_the_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="save_adapter"):
        load_adapter(tiny(), tmp_path)


@pytest.mark.filterwarnings("ignore:Found missing adapter keys")  # PEFT's own warning, LoRA keys only
@pytest.mark.parametrize("change, part", [("missing", "lora_B"), ("unexpected", "lora_A")])
def test_load_adapter_names_the_keys_the_file_lacks_or_adds(tmp_path, change, part):
    compact = compact_model(tiny(n_layers=LAYERS), KEEP)
    save_adapter(attach_adapters(copy.deepcopy(compact), rank=2, bridge_rank=2), tmp_path)
    file = tmp_path / "adapter_model.safetensors"
    weights = load_file(file)
    key = min(k for k in weights if f".{part}." in k)
    if change == "missing":
        del weights[key]  # PEFT alone would keep it at zero, that LoRA a no-op, and only warn
    else:
        key = key.replace(".layers.0.", ".layers.9.")
        weights[key] = torch.zeros(2)  # PEFT alone would ignore it
    save_file(weights, file)
    with pytest.raises(CheckpointError, match=rf"1 {change} keys, e\.g\. \['{re.escape(key)}'\]\. .*heal again"):
        load_adapter(copy.deepcopy(compact), tmp_path)


@pytest.mark.parametrize("bridge_rank, hidden_weight", [(None, 0.0), (2, 1.0)])
def test_healing_lowers_the_compact_validation_loss(teacher, data, bridge_rank, hidden_weight):
    compact = compact_model(teacher, KEEP)
    before = valid_loss(compact, data)
    healed, history = heal(compact, teacher, data, rank=4, bridge_rank=bridge_rank, hidden_weight=hidden_weight,
                           layer_scores=[1.0, 0.5, 2.0, 1.0, 0.0, 3.0], epochs=3, lr=1e-2, **FAST)
    # patience 2 cannot stop 3 epochs early: the cap ends it
    assert list(history.columns[:2]) == ["epoch", "train_loss"] and history["epoch"].tolist() == [1, 2, 3]
    assert valid_loss(healed, data) < 0.9 * before


def test_heal_or_load_reuses_the_adapter_with_identical_output(teacher, data, tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "CACHE_DIR", tmp_path)
    full = Trained(teacher, pd.DataFrame(), 0.0, Path("full-0123"))
    adapter, train = {"rank": 4, "bridge_rank": 2}, {"epochs": 1, **FAST}
    fresh = heal_or_load("healed", data, full, [5, 0, 3], adapter, train)
    assert fresh.path.parent == tmp_path / "models" / "cyclic" and (fresh.path / "bridges.json").exists()
    expected = attach_adapters(compact_model(teacher, KEEP), rank=4, bridge_rank=2).get_nb_trainable_parameters()[0]
    assert adapter_size(fresh.path)["adapter_params"] == expected

    def no_healing(*args, **kwargs):
        raise AssertionError("the cached adapter should have been reused")

    monkeypatch.setattr(healing, "heal", no_healing)
    cached = heal_or_load("healed", data, full, KEEP, adapter, train)
    assert cached.path == fresh.path and cached.train_seconds == fresh.train_seconds
    pd.testing.assert_frame_equal(cached.history, fresh.history)
    assert torch.equal(scores(cached.model, data), scores(fresh.model, data))
    with pytest.raises(AssertionError, match="reused"):
        heal_or_load("healed", data, full, KEEP, {**adapter, "bridge_rank": None}, train)
    with pytest.raises(AssertionError, match="reused"):
        heal_or_load("healed", data, full, [0, 3, 4], adapter, train)


def test_checkpointed_healing_trains_the_same_adapter(teacher, data):
    runs = [heal(compact_model(teacher, KEEP), teacher, data, rank=4, epochs=1, lr=1e-2, checkpointing=flag, **FAST)
            for flag in (False, True)]
    (plain, plain_history), (recomputed, recomputed_history) = runs
    pd.testing.assert_frame_equal(plain_history, recomputed_history, rtol=1e-4)
    assert not recomputed.is_activation_checkpointing
