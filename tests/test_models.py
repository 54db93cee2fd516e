"""Recommenders built from configs or local HF checkpoints, and access to their decoder layers."""

import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, LlamaConfig, Qwen3Config

from lwadapter.checkpoints import CheckpointError
from lwadapter.evaluate import evaluate_model
from lwadapter.models import (activation_checkpointing, build_recommender, decoder_layers, item_logits,
                              load_pretrained_recommender, recommender_from_spec, special_tokens)
from lwadapter.runtime import set_seed
from lwadapter.train import train_recommender
from tests.synthetic import cyclic_data, tiny

TINY_LM = dict(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
               num_key_value_heads=1, head_dim=8, max_position_embeddings=64)


@pytest.mark.parametrize("arch,cls", [("llama", "LlamaForCausalLM"), ("qwen3", "Qwen3ForCausalLM")])
def test_build_recommender_layout(arch, cls):
    model = build_recommender(arch, n_items=30, n_layers=3, hidden=16, heads=2, kv_heads=1, max_len=12)
    assert type(model).__name__ == cls and len(decoder_layers(model)) == 3
    assert special_tokens(model) == (2, 1, 0) and model.config.vocab_size == 32
    ids = torch.tensor([[1, 2, 5, 31]])
    assert item_logits(model, ids, torch.ones_like(ids)).shape == (1, 4, 30)
    assert recommender_from_spec(dict(arch=arch, n_layers=3, hidden=16, heads=2, kv_heads=1), 30).config.num_items == 30
    with pytest.raises(ValueError, match="unknown arch 'gpt2'"):
        build_recommender("gpt2", n_items=30)


def test_item_logits_through_a_distributed_wrapper(tmp_path):
    """Under `accelerate launch` the training loss sees the model wrapped in DistributedDataParallel."""
    model = build_recommender("llama", n_items=30, n_layers=2, hidden=16, heads=2, kv_heads=1, max_len=12)
    ids = torch.tensor([[1, 2, 5, 31]])
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0,
                                         world_size=1)
    try:
        wrapped = torch.nn.parallel.DistributedDataParallel(model)
        assert torch.equal(item_logits(wrapped, ids, torch.ones_like(ids)), item_logits(model, ids, torch.ones_like(ids)))
    finally:
        torch.distributed.destroy_process_group()


def test_decoder_layers_sees_through_peft_and_names_unsupported_classes():
    model = tiny()
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    assert decoder_layers(peft_model) is decoder_layers(model)
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=20, n_positions=16))
    with pytest.raises(TypeError, match="GPT2LMHeadModel"):
        decoder_layers(gpt2)


@pytest.mark.parametrize("config_cls", [LlamaConfig, Qwen3Config])
def test_pretrained_checkpoint_route(config_cls, tmp_path):
    set_seed(0)
    lm = AutoModelForCausalLM.from_config(config_cls(**TINY_LM, bos_token_id=3, eos_token_id=[4, 5],
                                                     pad_token_id=None, tie_word_embeddings=False))
    lm.save_pretrained(tmp_path)
    data = cyclic_data(n_users=24)
    model = load_pretrained_recommender(tmp_path, n_items=data.n_items, max_len=10)
    assert special_tokens(model) == (50, 3, 4)  # items after the 50 text tokens; PAD falls back to EOS
    assert model.get_input_embeddings().num_embeddings == 50 + data.n_items
    assert model.get_output_embeddings().weight.shape[0] == 50 + data.n_items
    text = lm.get_input_embeddings().weight
    assert torch.equal(model.get_input_embeddings().weight[:50], text)  # the text vocabulary is kept
    history = train_recommender(model, data, epochs=2, batch_size=8, lr=1e-2, patience=2)
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert len(evaluate_model(model, data)) == data.n_users


def test_a_checkpoint_without_its_untied_head_is_refused(tmp_path):
    AutoModelForCausalLM.from_config(LlamaConfig(**TINY_LM, tie_word_embeddings=False)).save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    del weights["lm_head.weight"]  # from_pretrained alone would draw a random head and only log it
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"1 missing keys, e\.g\. \['lm_head\.weight'\]\. Point to a complete"):
        load_pretrained_recommender(tmp_path, n_items=5)


def test_pretrained_checkpoint_without_bos_gets_a_new_token(tmp_path):
    lm = AutoModelForCausalLM.from_config(Qwen3Config(**TINY_LM, bos_token_id=None, eos_token_id=None,
                                                      pad_token_id=None))
    lm.save_pretrained(tmp_path)
    model = recommender_from_spec({"path": str(tmp_path), "max_len": 6}, n_items=7)
    assert special_tokens(model) == (50, 57, 57) and model.config.vocab_size == 58
    assert model.config.max_history == 6 and model.config.num_items == 7
    spec = {"path": str(tmp_path), "arch": "qwen3", "n_layers": 2}
    assert len(decoder_layers(recommender_from_spec(spec, n_items=7))) == 2
    with pytest.raises(ValueError, match="is a 2-layer qwen3 model, but the spec says arch='llama', n_layers=32"):
        recommender_from_spec({**spec, "arch": "llama", "n_layers": 32}, n_items=7)


def test_tied_embeddings_and_depth_scaled_init(tmp_path):
    set_seed(0)
    plain = build_recommender("llama", n_items=30, n_layers=8, hidden=32, heads=2, kv_heads=1)
    set_seed(0)
    model = build_recommender("llama", n_items=30, n_layers=8, hidden=32, heads=2, kv_heads=1,
                              tie_embeddings=True, scaled_init=True)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert plain.lm_head.weight is not plain.model.embed_tokens.weight
    for name in ("self_attn.o_proj", "mlp.down_proj"):
        w, w0 = (decoder_layers(m)[3].get_submodule(name).weight for m in (model, plain))
        assert torch.allclose(w * 4, w0)  # divided by sqrt(2 * 8)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert loaded.lm_head.weight is loaded.model.embed_tokens.weight
    ids = torch.tensor([[1, 2, 5, 31]])
    assert torch.equal(item_logits(loaded, ids, torch.ones_like(ids)), item_logits(model, ids, torch.ones_like(ids)))


def test_activation_checkpointing_recomputes_layers_in_eval_mode_and_restores():
    model = tiny("llama", n_layers=2).eval()
    calls, mlp = [], decoder_layers(model)[0].mlp
    forward = mlp.forward
    mlp.forward = lambda *args: calls.append(1) or forward(*args)  # the recompute runs no module hooks
    ids = torch.tensor([[1, 3, 4, 5]])

    def backward_calls():
        calls.clear()
        model(input_ids=ids).logits.sum().backward()
        return len(calls)

    assert backward_calls() == 1
    with activation_checkpointing(model):
        assert backward_calls() == 2 and model.is_activation_checkpointing
        with activation_checkpointing(model, False):
            assert backward_calls() == 1
        assert backward_calls() == 2
    assert backward_calls() == 1 and not model.is_activation_checkpointing
    assert not any(layer.training for layer in decoder_layers(model))
