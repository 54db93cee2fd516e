"""A missing, truncated or corrupt file one notebook hands to the next names the file and the notebook to rerun."""

import json

import pandas as pd
import pytest

from lwadapter.results import ResultsFileError, read_results_csv, read_results_json, write_csv
from lwadapter.runtime import RunFolders
from lwadapter.sequences import SequenceData
from tests.synthetic import cyclic_data


@pytest.fixture
def sequences(tmp_path):
    path = tmp_path / "sequences.json"
    cyclic_data().save(path)
    return path


def test_truncated_or_corrupt_sequences_name_the_file_and_notebook_01(sequences):
    assert SequenceData.load(sequences).n_users == 48
    text = sequences.read_text()
    sequences.write_text(text[: len(text) // 2])
    with pytest.raises(ResultsFileError, match=r"sequences.json: not valid JSON .*01_data_preparation.ipynb"):
        SequenceData.load(sequences)
    sequences.write_text(json.dumps({"name": "x", "item_ids": []}))
    with pytest.raises(ResultsFileError, match=r"sequences.json: not a prepared dataset .*01_data_preparation"):
        SequenceData.load(sequences)
    corpus = sequences.with_name("corpus.json")
    with pytest.raises(ResultsFileError, match=r"corpus.json: not found; notebooks/01_data_preparation.ipynb"):
        SequenceData.load(corpus)


def test_truncated_or_corrupt_results_name_the_notebook_that_writes_them(tmp_path):
    path = tmp_path / "layer_scores.csv"
    write_csv(path, pd.DataFrame({"model": ["llama"] * 3, "layer": [0, 1, 2], "score": [0.1, 0.2, 0.3]}))
    assert len(read_results_csv(path)) == 3
    path.write_text(path.read_text()[:-4])
    with pytest.raises(ResultsFileError, match=r"layer_scores.csv: the last line is cut off .*03_layer_scoring"):
        read_results_csv(path)
    path.write_bytes(b"\xff\xfe\x00garbage\n")
    with pytest.raises(ResultsFileError, match=r"layer_scores.csv: not a readable CSV"):
        read_results_csv(path)
    meta = tmp_path / "base_models.json"
    meta.write_text('{"config": {"models"')
    with pytest.raises(ResultsFileError, match=r"base_models.json: not valid JSON .*02_base_models.ipynb"):
        read_results_json(meta)


def test_each_parameter_set_has_its_own_folders(monkeypatch, tmp_path):
    from lwadapter import runtime

    monkeypatch.setenv(runtime.RUNS_ENV, str(tmp_path / "runs"))
    study, ci = RunFolders("ml-100k"), RunFolders("ml-100k", "ci")
    assert study.results == runtime.RESULTS_DIR / "ml-100k" and study.figures == runtime.FIGURES_DIR
    assert ci.results == tmp_path / "runs" / "ci" / "ml-100k" and ci.figures == tmp_path / "runs" / "ci" / "figures"
    assert study.sequences != ci.sequences and ci.corpus.parent == ci.processed
    with pytest.raises(ValueError, match="cannot name a results folder"):
        RunFolders("ml-100k", "../study")
