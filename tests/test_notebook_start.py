"""report.notebook: the first call of every study notebook seeds, styles and finds the prepared data."""

import matplotlib.pyplot as plt
import pytest
import torch

from lwadapter import runtime
from lwadapter.report import notebook
from lwadapter.results import ResultsFileError
from tests.synthetic import cyclic_data


def test_start_seeds_styles_and_names_the_sets_folders(monkeypatch, tmp_path):
    monkeypatch.setenv(runtime.RUNS_ENV, str(tmp_path))
    plt.rcParams["savefig.dpi"] = 50
    folders = notebook.start("toy", "scratch", seed=3)
    first = torch.rand(4)
    assert folders == runtime.RunFolders("toy", "scratch") and folders.results == tmp_path / "scratch" / "toy"
    assert plt.rcParams["savefig.dpi"] == 200  # the paper's style
    notebook.start("toy", "scratch", seed=3)
    assert torch.equal(torch.rand(4), first)


def test_start_on_prepared_loads_notebook_01s_sequences_or_names_it(monkeypatch, tmp_path):
    monkeypatch.setattr(runtime, "DATA_DIR", tmp_path)
    with pytest.raises(ResultsFileError, match="notebooks/01_data_preparation.ipynb writes it"):
        notebook.start_on_prepared("toy", "scratch")
    data = cyclic_data()
    path = runtime.RunFolders("toy", "scratch").sequences
    path.parent.mkdir(parents=True)
    data.save(path)
    folders, loaded = notebook.start_on_prepared("toy", "scratch")
    assert folders.dataset == "toy" and loaded == data
