"""The speed levers: item-only logits (same numbers as the full head), bf16 autocast (bfloat16 indeed, quality within
a margin of float32's), length-bucketed batches (every example once, less padding)."""

import random
from dataclasses import replace

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, Gemma3TextConfig

from lwadapter import models
from lwadapter.evaluate import evaluate_model, flops_per_token
from lwadapter.metrics import paired_test
from lwadapter.models import (ItemHead, autocast_dtype, build_recommender, decoder_layers,
                              full_vocabulary_item_logits, item_head, item_logits, load_pretrained_recommender)
from lwadapter.runtime import set_seed
from lwadapter.sequences import LengthBucketBatches, padding_share, training_examples
from lwadapter.train import train_recommender
from tests.synthetic import cyclic_data, tiny

TINY_GEMMA = dict(vocab_size=60, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=1, head_dim=8, max_position_embeddings=64, final_logit_softcapping=3.0,
                  sliding_window=4, layer_types=["sliding_attention", "full_attention"])


def _batch():
    ids = torch.randint(2, 26, (6, 9), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[:2, 5:] = 0
    return ids, mask


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
@pytest.mark.parametrize("tied", [False, True])
def test_item_logits_equal_the_full_heads_item_columns(arch, tied):
    set_seed(0)
    model = build_recommender(arch, n_items=24, n_layers=2, hidden=16, heads=2, kv_heads=1, tie_embeddings=tied)
    ids, mask = _batch()
    # the same dot products; MKL's reproducible branches block a 24-column and a 27-column product differently, so
    # they agree to float rounding, not bit for bit
    torch.testing.assert_close(item_logits(model, ids, mask), full_vocabulary_item_logits(model, ids, mask),
                               rtol=1e-6, atol=1e-6)
    assert type(model.get_output_embeddings()) is torch.nn.Linear  # the head is restored after the call
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    torch.testing.assert_close(item_logits(peft_model, ids, mask), full_vocabulary_item_logits(peft_model, ids, mask),
                               rtol=1e-6, atol=1e-6)


def test_item_logits_keep_the_architectures_soft_capping_and_train_only_item_rows(tmp_path):
    """Gemma caps its logits after the head; the cap must apply to the item logits too. Gradients reach the
    item rows of the (tied) embedding, never the text rows."""
    set_seed(0)
    AutoModelForCausalLM.from_config(Gemma3TextConfig(**TINY_GEMMA, tie_word_embeddings=True)).save_pretrained(tmp_path)
    model = load_pretrained_recommender(tmp_path, n_items=10, max_len=8, item_init="random", item_init_std=1.0)
    ids = torch.tensor([[60, 61, 65, 69, 62]])
    mask = torch.ones_like(ids)
    logits = item_logits(model, ids, mask)
    assert torch.allclose(logits, full_vocabulary_item_logits(model, ids, mask), atol=1e-6)
    assert logits.abs().max() <= 3.0
    logits.sum().backward()
    grad = model.get_output_embeddings().weight.grad  # tied: input and output rows in one table
    assert torch.count_nonzero(grad[60:70].abs().sum(1)) == 10 and grad[:60].abs().sum() == 0


def test_item_head_counts_only_the_items():
    model = tiny()
    with item_head(model) as items_only:
        assert items_only and isinstance(model.get_output_embeddings(), ItemHead)
    cfg = model.config
    assert flops_per_token(cfg) - flops_per_token(cfg.__class__(**{**cfg.to_dict(), "num_items": None})) \
        == -2 * cfg.hidden_size * (cfg.vocab_size - cfg.num_items)


def test_precision_setting(monkeypatch):
    assert autocast_dtype("bf16", "cpu") is torch.bfloat16
    assert autocast_dtype("float32", "cpu") is None
    for speedup, dtype in ((1.9, None), (2.0, torch.bfloat16)):  # "auto": bf16 where its matmuls are 2x as fast
        monkeypatch.setattr(models, "_BF16_FAST", {})
        monkeypatch.setattr(models, "bf16_matmul_speedup", lambda device: speedup)
        assert autocast_dtype("auto", "cpu") is dtype
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        autocast_dtype("fp8", "cpu")


def noisy_walks(n_users, seed):
    """cyclic_data's walks with each item replaced by a random one with probability 1/2: the walk is learnable, the
    noise is not, so NDCG@10 stays far below 1 and a loss of quality would show."""
    data = cyclic_data(n_users=n_users, n_items=24, length=10, seed=seed)
    rng = random.Random(seed)
    noise = lambda i: rng.randrange(data.n_items) if rng.random() < 0.5 else i  # noqa: E731
    return replace(data, train=[[noise(i) for i in t] for t in data.train], valid=[noise(i) for i in data.valid],
                   test=[noise(i) for i in data.test])


BF16_MARGIN = 0.02  # NDCG@10, absolute


def test_bf16_training_runs_in_bfloat16_and_matches_float32_within_the_margin():
    """precision="bf16" (forced: "auto" keeps float32 on a CPU without fast bf16) really autocasts: the projections
    give bfloat16 and the losses differ from float32's in the last digits. Quality is equivalent: on a task float32
    does not saturate, the 90% interval of the paired NDCG@10 difference on 2,000 fresh users lies inside
    ±BF16_MARGIN (two one-sided tests at 5%)."""
    data, fresh = noisy_walks(128, seed=0), noisy_walks(2000, seed=1)
    dtypes, losses, scores = {}, {}, {}
    for precision in ("float32", "bf16"):
        set_seed(0)
        model = build_recommender("llama", n_items=data.n_items, n_layers=2, hidden=32, heads=2, kv_heads=1,
                                  max_len=12)
        seen = dtypes[precision] = set()  # what the first query projection gives, in training and evaluation
        decoder_layers(model)[0].self_attn.q_proj.register_forward_hook(lambda module, args, out: seen.add(out.dtype))
        history = train_recommender(model, data, epochs=5, batch_size=32, lr=1e-2, patience=5, precision=precision)
        losses[precision] = history["train_loss"].iloc[0]
        scores[precision] = evaluate_model(model, fresh, split="test", precision=precision)["ndcg@10"]
    assert dtypes == {"float32": {torch.float32}, "bf16": {torch.bfloat16}}
    assert 0 < abs(losses["bf16"] / losses["float32"] - 1) < 0.01  # the same steps, rounded differently
    assert 0.3 < scores["float32"].mean() < 0.6  # learnt (random ranking: ~0.2), far from saturated
    equivalence = paired_test(scores["bf16"], scores["float32"], seed=0, alpha=0.1)
    assert -BF16_MARGIN < equivalence["ci_low"] and equivalence["ci_high"] < BF16_MARGIN, equivalence


def test_length_buckets_cover_every_example_once_and_cut_padding():
    lengths = [1 + (i * 7) % 50 for i in range(1000)]
    sampler = LengthBucketBatches(lengths, batch_size=32, seed=0, bucket=10)
    first, second = list(sampler), list(sampler)
    assert sorted(i for b in first for i in b) == list(range(1000)) and len(first) == len(sampler) == 32
    assert first != second  # a fresh order each epoch...
    assert [b for b in LengthBucketBatches(lengths, 32, seed=0, bucket=10)] == first  # ...from the seed
    shuffled = torch.randperm(1000, generator=torch.Generator().manual_seed(0)).tolist()
    plain = [shuffled[s:s + 32] for s in range(0, 1000, 32)]
    assert padding_share(lengths, first) < 0.15 < 0.3 < padding_share(lengths, plain)
    with pytest.raises(ValueError, match="bucket=0"):
        LengthBucketBatches(lengths, 32, seed=0, bucket=0)


def test_training_with_length_buckets_uses_every_label():
    data = cyclic_data(n_users=40, length=9)
    data.train = [items[: 3 + u % 7] for u, items in enumerate(data.train)]
    set_seed(0)
    model = tiny(n_items=data.n_items)
    history = train_recommender(model, data, epochs=2, batch_size=8, lr=1e-2, patience=2, length_buckets=2)
    tokens = sum(len(inputs) + 1 for inputs, _ in training_examples(data, model.config.max_history))
    assert history["tokens"].iloc[0] == tokens and history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
