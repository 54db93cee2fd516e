"""Pretrained base models: corpus pretraining, transfer onto the study's items, adaptation, caching."""

import json

import pandas as pd
import pytest
import torch

from lwadapter import pretrain, train as train_module
from lwadapter.pretrain import adapt_or_load, pretrained_spec
from lwadapter.results import write_json
from lwadapter.train import train_or_load
from lwadapter.transfer import transfer_items
from tests.synthetic import cyclic_data

FAST = dict(epochs=3, batch_size=16, lr=1e-2, patience=2, decay="constant")
SPEC = dict(arch="llama", n_layers=2, hidden=16, heads=2, kv_heads=1, max_len=10)
MAPPING = [*range(10), -1, -1]  # study items 0-9 are corpus items 0-9; 10 and 11 are new


@pytest.fixture
def setting(tmp_path, monkeypatch, isolated_outputs):
    monkeypatch.setattr(train_module.runtime, "CACHE_DIR", tmp_path / "cache")
    corpus = cyclic_data(n_users=40, n_items=20, seed=1)
    corpus.name = "cyclic-corpus"
    study = cyclic_data(n_users=24, n_items=12, seed=2)
    write_json(isolated_outputs / "corpus_mapping.json", MAPPING)
    pre = train_or_load("tiny", corpus, SPEC, FAST)
    return corpus, study, pre, pretrained_spec(SPEC, pre, MAPPING)





def test_adapted_model_starts_from_the_transferred_corpus_model(setting, monkeypatch, isolated_outputs):
    corpus, study, pre, spec = setting
    mapping = isolated_outputs / "corpus_mapping.json"
    assert pre.path.parent.name == "cyclic-corpus" and spec["pretrained"]["checkpoint"].startswith("models/")
    starts = []

    def no_training(model, data, **kwargs):
        starts.append({k: v.clone() for k, v in model.state_dict().items()})
        return pd.DataFrame({"epoch": [1], "train_loss": [1.0], "valid_ndcg@10": [0.1], "lr": [0.0], "steps": [1],
                             "tokens": [1], "flops": [1.0]})

    monkeypatch.setattr(pretrain, "train_recommender", no_training)
    adapted = adapt_or_load("tiny-pretrained", study, spec, FAST, mapping_file=mapping)
    expected = transfer_items(pre.model, MAPPING).state_dict()
    assert starts and all(torch.equal(starts[0][k], v) for k, v in expected.items())
    assert adapted.model.config.num_items == study.n_items
    assert adapted.path.parent.name == study.name


def test_adaptation_is_cached(setting, monkeypatch, isolated_outputs):
    corpus, study, pre, spec = setting
    mapping = isolated_outputs / "corpus_mapping.json"
    adapted = adapt_or_load("tiny-pretrained", study, spec, FAST, mapping_file=mapping)

    def no_training(*args, **kwargs):
        raise AssertionError("the cached checkpoint should have been reused")

    monkeypatch.setattr(pretrain, "train_recommender", no_training)
    assert adapt_or_load("tiny-pretrained", study, spec, FAST, mapping_file=mapping).path == adapted.path


def test_a_changed_mapping_or_a_missing_corpus_checkpoint_is_a_clear_error(setting, isolated_outputs):
    corpus, study, pre, spec = setting
    mapping = isolated_outputs / "corpus_mapping.json"
    with pytest.raises(ValueError, match="pass the corpus item mapping"):
        adapt_or_load("tiny-pretrained", study, spec, FAST)
    write_json(mapping, [0] * len(MAPPING))
    with pytest.raises(ValueError, match="corpus_mapping.json is not the item mapping .* rerun notebook 02"):
        adapt_or_load("tiny-pretrained", study, spec, FAST, mapping_file=mapping)
    write_json(mapping, MAPPING)
    missing = {**spec, "pretrained": {**spec["pretrained"], "checkpoint": "models/cyclic-corpus/gone"}}
    with pytest.raises(FileNotFoundError, match="gone is missing: run notebook 02"):
        adapt_or_load("tiny-pretrained", study, missing, FAST, mapping_file=mapping)
    mapping.unlink()
    with pytest.raises(FileNotFoundError, match="run notebook 01"):
        adapt_or_load("tiny-pretrained", study, spec, FAST, mapping_file=mapping)
    assert json.loads(json.dumps(spec)) == spec  # the spec goes into base_models.json as it is
