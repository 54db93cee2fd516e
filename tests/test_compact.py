"""Compact models are real, smaller HF models: same function as skipping, cache-safe, save/load-safe."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from lwadapter.compact import compact_model, kept_layers, only_layers
from lwadapter.models import build_recommender, decoder_layers
from lwadapter.runtime import set_seed
from tests.synthetic import identity_layers, tiny

ARCHS = ["llama", "qwen3"]


def batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(2, 26, (3, 9), generator=g)
    ids[:, 0] = 1
    mask = torch.ones_like(ids)
    mask[2, 6:] = 0
    return ids, mask


def logits(model):
    ids, mask = batch()
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits


@pytest.mark.parametrize("arch", ARCHS)
def test_compact_is_smaller_renumbered_and_leaves_input_alone(arch):
    model = tiny(arch, n_layers=6)
    before = logits(model)
    small = compact_model(model, [4, 0, 2])
    assert len(decoder_layers(small)) == 3 and small.config.num_hidden_layers == 3
    assert [b.self_attn.layer_idx for b in decoder_layers(small)] == [0, 1, 2]
    assert small.config.kept_layers == [0, 2, 4] and small.config.source_num_hidden_layers == 6
    if arch == "qwen3":
        assert small.config.layer_types == ["full_attention"] * 3
    per_layer = sum(p.numel() for p in decoder_layers(model)[0].parameters())
    assert model.num_parameters() - small.num_parameters() == 3 * per_layer
    assert len(decoder_layers(model)) == 6 and model.config.num_hidden_layers == 6
    assert [b.self_attn.layer_idx for b in decoder_layers(model)] == list(range(6))
    assert torch.equal(logits(model), before)
    assert decoder_layers(small)[0].self_attn.o_proj.weight.data_ptr() != \
        decoder_layers(model)[0].self_attn.o_proj.weight.data_ptr()


@pytest.mark.parametrize("arch", ARCHS)
def test_dropping_identity_layers_keeps_the_function(arch):
    model = identity_layers(tiny(arch, n_layers=6), [1, 3])
    small = compact_model(model, [0, 2, 4, 5])
    torch.testing.assert_close(logits(small), logits(model), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(logits(compact_model(model, [0, 1, 3, 4])), logits(model), atol=1e-3)


@pytest.mark.parametrize("arch", ARCHS)
def test_compacting_twice_composes(arch):
    model = tiny(arch, n_layers=6)
    twice = compact_model(compact_model(model, [0, 2, 4, 5]), [1, 3])
    once = compact_model(model, [2, 5])
    assert twice.config.kept_layers == [2, 5] == kept_layers(once)
    assert twice.config.source_num_hidden_layers == 6
    assert torch.equal(logits(twice), logits(once))


@pytest.mark.parametrize("arch", ARCHS)
def test_generation_with_and_without_cache_agrees(arch):
    small = compact_model(tiny(arch, n_layers=6), [1, 3, 5])
    ids = torch.tensor([[1, 5, 9, 17]])
    kwargs = dict(max_new_tokens=8, do_sample=False, pad_token_id=0, eos_token_id=None)
    with torch.no_grad():
        cached = small.generate(ids, attention_mask=torch.ones_like(ids), use_cache=True, **kwargs)
        plain = small.generate(ids, attention_mask=torch.ones_like(ids), use_cache=False, **kwargs)
    assert cached.shape == (1, 12)
    assert torch.equal(cached, plain)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("tied", [False, True])
def test_save_and_reload_gives_identical_logits(arch, tied, tmp_path):
    set_seed(0)
    model = build_recommender(arch, n_items=24, n_layers=6, hidden=16, heads=2, kv_heads=1, max_len=10,
                              tie_embeddings=tied).eval()
    small = compact_model(model, [0, 3, 5])
    assert (small.lm_head.weight is small.get_input_embeddings().weight) == tied
    small.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert loaded.config.num_hidden_layers == 3 and loaded.config.kept_layers == [0, 3, 5]
    assert [b.self_attn.layer_idx for b in decoder_layers(loaded)] == [0, 1, 2]
    assert torch.equal(logits(loaded), logits(small))


@pytest.mark.parametrize("keep, match", [
    ([], "between 1 and 6"),
    (list(range(7)), "between 1 and 6"),
    ([0, 2, 2], "duplicate"),
    ([0, 6], "out of range"),
    ([-1, 2], "out of range"),
    ([0, 1.5], "integers"),
    ([True], "integers"),
])
def test_invalid_keep_raises(keep, match):
    with pytest.raises(ValueError, match=match):
        compact_model(tiny("llama", n_layers=6), keep)


@pytest.mark.parametrize("arch", ARCHS)
def test_only_layers_is_the_compact_model_without_a_copy_and_restores(arch):
    model = tiny(arch, n_layers=6)
    before = logits(model)
    layers = list(decoder_layers(model))
    small = logits(compact_model(model, [1, 2, 5]))
    with only_layers(model, [5, 1, 2]) as view:
        assert view is model and model.config.num_hidden_layers == 3
        assert decoder_layers(model)[0] is layers[1]
        assert torch.equal(logits(view), small)
    assert list(decoder_layers(model)) == layers and model.config.num_hidden_layers == 6
    assert [b.self_attn.layer_idx for b in layers] == list(range(6))
    if arch == "qwen3":
        assert len(model.config.layer_types) == 6
    assert torch.equal(logits(model), before)
    with pytest.raises(ValueError, match="duplicate"):
        with only_layers(model, [1, 1]):
            pass
    assert len(decoder_layers(model)) == 6
