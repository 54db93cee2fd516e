"""Notebooks 03-06 load the checkpoints notebooks 02 and 05 recorded, checked by a weights hash, and stop instead of
retraining when one is missing or differs."""

import pytest

from lwadapter import recorded, runtime
from lwadapter.recorded import RecordedCheckpointError, recorded_checkpoint, weights_hash
from lwadapter.results import write_json
from lwadapter.runtime import RunFolders
from lwadapter.study.base_models import load_base_models
from lwadapter.train import train_or_load
from tests.synthetic import cyclic_data

SPEC = dict(arch="llama", n_layers=2, hidden=16, heads=2, kv_heads=1, max_len=10)
FAST = dict(epochs=1, batch_size=16, lr=1e-2, patience=1, decay="constant")


@pytest.fixture
def notebook_02(tmp_path, monkeypatch):
    """A base model trained into a temporary cache and recorded in base_models.json as notebook 02 does."""
    monkeypatch.setattr(runtime, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setenv(runtime.RUNS_ENV, str(tmp_path / "runs"))
    data = cyclic_data()
    trained = train_or_load("tiny-2L", data, SPEC, FAST)
    folders = RunFolders("cyclic", "test")
    write_json(folders.results / "base_models.json",
               {"config": {"models": {"tiny-2L": SPEC}, "train": FAST,
                           "checkpoints": {"tiny-2L": trained.path.name},
                           "weights": {trained.path.name: weights_hash(trained.path)}}, "seed": 0})
    return data, folders, trained


def test_the_recorded_checkpoint_loads_with_its_own_weights(notebook_02):
    data, folders, trained = notebook_02
    loaded = load_base_models(data, folders, ["tiny-2L"])["tiny-2L"]
    assert loaded.path == trained.path
    assert all((a == b).all() for a, b in zip(loaded.model.state_dict().values(), trained.model.state_dict().values()))


def test_a_missing_checkpoint_stops_instead_of_retraining(notebook_02):
    data, folders, trained = notebook_02
    (trained.path / "meta.json").unlink()  # the cache lost it (another machine, a cleaned cache)
    with pytest.raises(RecordedCheckpointError, match="not in the model cache.*rerun notebook 02"):
        load_base_models(data, folders, ["tiny-2L"])
    assert not (trained.path / "meta.json").exists()  # nothing was retrained behind the notebook's back


def test_other_weights_under_the_recorded_name_are_refused(notebook_02):
    data, folders, trained = notebook_02
    retrained = train_or_load("tiny-2L", data, SPEC, FAST, seed=1)  # another run's weights, moved into place
    (trained.path / "model.safetensors").write_bytes((retrained.path / "model.safetensors").read_bytes())
    with pytest.raises(RecordedCheckpointError, match="not the ones .*base_models.json recorded"):
        load_base_models(data, folders, ["tiny-2L"])


def test_a_results_file_without_hashes_asks_for_the_notebook_to_rerun(tmp_path, monkeypatch):
    monkeypatch.setattr(recorded.runtime, "CACHE_DIR", tmp_path)
    with pytest.raises(RecordedCheckpointError, match="no weights hash for m-1.*rerun notebook 05"):
        recorded_checkpoint("cyclic", "m-1", {}, "05", tmp_path / "healing.json")


def test_weights_hash_follows_the_weight_files_only(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"abc")
    first = weights_hash(tmp_path)
    (tmp_path / "meta.json").write_text("{}")
    assert weights_hash(tmp_path) == first
    (tmp_path / "model.safetensors").write_bytes(b"abd")
    assert weights_hash(tmp_path) != first
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecordedCheckpointError, match="no \\*.safetensors"):
        weights_hash(tmp_path / "empty")
