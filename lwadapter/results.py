"""Result files: atomic writes, reads that name the notebook to rerun, provenance (config, seed, versions, git
commit, numeric paths), content hashes for caching."""

import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the permissions open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_csv(path: Path, frame) -> None:
    """Tidy CSV with fixed float precision so reruns give byte-identical files."""
    atomic_write_text(path, frame.to_csv(index=False, float_format="%.6g", lineterminator="\n"))


WRITERS = {  # file name -> the notebook that writes it
    "sequences.json": "01_data_preparation", "corpus.json": "01_data_preparation",
    "corpus_mapping.json": "01_data_preparation", "data_stats.json": "01_data_preparation",
    "corpus_stats.json": "01_data_preparation", "base_models.csv": "02_base_models",
    "base_models.json": "02_base_models", "layer_scores.csv": "03_layer_scoring",
    "criterion_costs.csv": "03_layer_scoring", "selection.csv": "04_layer_selection",
    "healing.csv": "05_adapter_healing", "healing.json": "05_adapter_healing",
    "compact_eval.csv": "06_evaluation", "versus_controls.csv": "06_evaluation",
    "compute_to_target.csv": "06_evaluation", "criteria_tests.csv": "06_evaluation", "scenarios.csv": "06_evaluation",
    "evaluation.json": "06_evaluation",
}


class ResultsFileError(ValueError):
    """A file one notebook writes and a later one reads is missing, truncated or corrupt."""

    def __init__(self, path: Path, problem: str):
        writer = WRITERS.get(Path(path).name)
        rerun = f"notebooks/{writer}.ipynb writes it: rerun that notebook" if writer else "rewrite it"
        super().__init__(f"{path}: {problem}; {rerun} (with the same parameter set)")


def read_results_json(path: Path):
    """A JSON file of the pipeline, or a ResultsFileError naming the file and the notebook that writes it."""
    path = Path(path)
    if not path.exists():
        raise ResultsFileError(path, "not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ResultsFileError(path, f"not valid JSON (truncated or corrupt: {err})") from None


def read_results_csv(path: Path, **read_csv):
    """A CSV file of the pipeline (pandas.read_csv keywords pass through), or a ResultsFileError naming the file and
    the notebook that writes it."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise ResultsFileError(path, "not found")
    if not path.read_bytes().endswith(b"\n"):  # write_csv ends every file with a line break
        raise ResultsFileError(path, "the last line is cut off (truncated)")
    try:
        frame = pd.read_csv(path, **read_csv)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as err:
        raise ResultsFileError(path, f"not a readable CSV table (truncated or corrupt: {err})") from None
    if frame.empty or frame.isna().all(axis=1).any():
        raise ResultsFileError(path, "no rows, or a row without values (truncated?)")
    return frame


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def content_hash(obj) -> str:
    """Stable short hash of a JSON-able object (configuration + input checksums) for artifact caching."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def provenance(config: dict, seed: int) -> dict:
    """Run information carried by every result file (PEFT method_comparison style)."""
    import peft
    import torch
    import transformers

    import lwadapter
    from lwadapter.numerics import current_paths

    return {
        "config": config,
        "seed": seed,
        "versions": {"lwadapter": lwadapter.__version__, "torch": torch.__version__,
                     "transformers": transformers.__version__, "peft": peft.__version__},
        "numerics": current_paths(),
        "git_commit": git_commit(),
    }
