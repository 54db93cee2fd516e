"""The checkpoints a notebook recorded: a hash of each checkpoint's weight files, kept in base_models.json
(notebook 02) and healing.json (notebook 05), and the checked way back to exactly those files for notebooks 03-06,
which stop instead of retraining a model that would not be the one recorded."""

from pathlib import Path

from lwadapter import runtime
from lwadapter.results import content_hash, sha256_file


class RecordedCheckpointError(RuntimeError):
    """A recorded checkpoint is missing from the model cache, or its weights are not the recorded ones."""


def weights_hash(folder: Path) -> str:
    """A hash of every weight file (*.safetensors) in a checkpoint folder, by name and content."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise RecordedCheckpointError(f"{folder} holds no *.safetensors weights")
    return content_hash({f.name: sha256_file(f) for f in files})


def recorded_checkpoint(dataset: str, checkpoint: str, weights: dict, notebook: str, results_file: Path) -> Path:
    """The cache folder `checkpoint` of `dataset` that `notebook` recorded in `results_file` with its weights hash
    (`weights`: checkpoint -> hash); an error naming the model and what to rerun when it is missing or differs."""
    path = runtime.CACHE_DIR / "models" / dataset / checkpoint
    rerun = f"rerun notebook {notebook} (it trains or loads the model and records it), then this notebook"
    if checkpoint not in weights:
        raise RecordedCheckpointError(f"{results_file} records no weights hash for {checkpoint}: {rerun}")
    if not (path / "meta.json").exists():
        raise RecordedCheckpointError(f"{checkpoint}, recorded in {results_file}, is not in the model cache "
                                      f"({path}): {rerun}")
    if weights_hash(path) != weights[checkpoint]:
        raise RecordedCheckpointError(f"the weights in {path} are not the ones {results_file} recorded for "
                                      f"{checkpoint}: {rerun}")
    return path
