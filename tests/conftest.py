"""Shared test set-up: quiet libraries, no progress bars, small synthetic data made by the tests themselves."""

import os

import pytest

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from lwadapter.runtime import quiet  # noqa: E402

quiet()

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "amazon-electronics")


@pytest.fixture
def isolated_outputs(tmp_path, monkeypatch):
    """Point data/ and results/ at a temporary folder so tests never touch the repository's files."""
    from lwadapter import data, raw_files

    monkeypatch.setattr(data, "DATA_DIR", tmp_path / "data")
    monkeypatch.setattr(raw_files, "DATA_DIR", tmp_path / "data")
    monkeypatch.setattr(data, "RESULTS_DIR", tmp_path / "results")
    return tmp_path
