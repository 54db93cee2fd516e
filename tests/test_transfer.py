"""Vocabulary transfer: matched items keep their embeddings exactly, the decoder is untouched, fresh rows are seeded."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from lwadapter.models import build_recommender, item_logits
from lwadapter.transfer import _embedding_keys, transfer_items

MAPPING = [3, -1, 0, 29, -1, 3, 17, -1]  # study item -> corpus item (item 3 twice, three unmatched)


def corpus_model(arch, tie):
    torch.manual_seed(0)
    return build_recommender(arch, n_items=30, n_layers=2, hidden=16, heads=2, kv_heads=1, max_len=10,
                             tie_embeddings=tie).eval()


def embeddings(model):
    return model.get_input_embeddings().weight, model.get_output_embeddings().weight


@pytest.fixture(params=[("llama", False), ("llama", True), ("qwen3", False), ("qwen3", True)],
                ids=lambda p: f"{p[0]}-{'tied' if p[1] else 'untied'}")
def pair(request):
    model = corpus_model(*request.param)
    return model, transfer_items(model, MAPPING, seed=1), request.param[1]


def test_matched_items_and_special_tokens_keep_their_embeddings(pair):
    old, new, _ = pair
    offset = old.config.item_token_offset
    assert (new.config.num_items, new.config.vocab_size) == (len(MAPPING), offset + len(MAPPING))
    for before, after in zip(embeddings(old), embeddings(new)):
        assert after.shape == (offset + len(MAPPING), before.shape[1])
        assert torch.equal(after[:offset], before[:offset])
        for i, j in enumerate(MAPPING):
            if j >= 0:
                assert torch.equal(after[offset + i], before[offset + j])
            else:
                assert not any(torch.equal(after[offset + i], row) for row in before)


def test_decoder_and_norms_identical(pair):
    old, new, _ = pair
    skip_old, skip_new = set(_embedding_keys(old)), set(_embedding_keys(new))
    rest_old = {k: v for k, v in old.state_dict().items() if k not in skip_old}
    rest_new = {k: v for k, v in new.state_dict().items() if k not in skip_new}
    assert rest_old.keys() == rest_new.keys() and len(rest_old) > 10
    assert all(torch.equal(rest_old[k], rest_new[k]) for k in rest_old)
    assert skip_new == skip_old


def test_tying_is_kept(pair):
    _, new, tie = pair
    inp, out = embeddings(new)
    assert (inp is out) == tie and new.config.tie_word_embeddings == tie


def test_forward_scores_matched_items_as_the_corpus_model_did(pair):
    old, new, _ = pair
    offset = old.config.item_token_offset
    study_items = [0, 2, 3, 5, 6]  # matched ones
    bos = torch.tensor([[old.config.bos_token_id]])
    new_ids = torch.cat([bos, torch.tensor([[offset + i for i in study_items]])], dim=1)
    old_ids = torch.cat([bos, torch.tensor([[offset + MAPPING[i] for i in study_items]])], dim=1)
    mask = torch.ones_like(new_ids)
    with torch.no_grad():
        new_logits, old_logits = item_logits(new, new_ids, mask), item_logits(old, old_ids, mask)
    assert new_logits.shape == (1, 6, len(MAPPING))
    torch.testing.assert_close(new_logits[..., study_items], old_logits[..., [MAPPING[i] for i in study_items]],
                               rtol=0, atol=1e-6)


def test_save_reload_round_trip(pair, tmp_path):
    _, new, tie = pair
    new.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert loaded.config.num_items == len(MAPPING) and loaded.config.item_token_offset == new.config.item_token_offset
    assert new.state_dict().keys() == loaded.state_dict().keys()
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in new.state_dict().items())
    assert (loaded.get_input_embeddings().weight is loaded.get_output_embeddings().weight) == tie


def test_fresh_rows_are_seeded_and_leave_the_callers_random_state():
    model = corpus_model("llama", False)
    state = torch.get_rng_state()
    a, b, c = (transfer_items(model, MAPPING, seed=s) for s in (1, 1, 2))
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(x, y) for x, y in zip(embeddings(a), embeddings(b)))
    unmatched = [model.config.item_token_offset + i for i, j in enumerate(MAPPING) if j < 0]
    assert not torch.equal(embeddings(a)[0][unmatched], embeddings(c)[0][unmatched])


@pytest.mark.parametrize("mapping", [[0, 30], [-2, 1], []])
def test_bad_mapping_names_the_values(mapping):
    with pytest.raises(ValueError, match=r"corpus item index in 0\.\.29 or -1"):
        transfer_items(corpus_model("llama", False), mapping)


def test_item_tokens_must_end_the_vocabulary():
    model = corpus_model("llama", False)
    model.resize_token_embeddings(model.config.vocab_size + 1)
    with pytest.raises(ValueError, match="vocab_size 33 != item_token_offset 2 \\+ num_items 30"):
        transfer_items(model, [0, 1])
