"""Run-time set-up shared by notebooks and tests: repository paths, each parameter set's folders, seeds, threads,
quiet libraries. Importing it does not start torch (lwadapter.numerics.pin must run first)."""

import os
import random
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lwadapter.numerics import THREADS

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "data"
RESULTS_DIR = ROOT / "results"
FIGURES_DIR = ROOT / "paper" / "figures"
CACHE_DIR = ROOT / "data" / "cache"
RUNS_DIR = RESULTS_DIR / "runs"  # the committed runs of the sets other than the study (the CI set: runs/ci)
STUDY_SET = "study"
RUNS_ENV = "LWADAPTER_RUNS_DIR"  # moves RUNS_DIR for a session (make test writes to build/test-runs)


@dataclass(frozen=True)
class RunFolders:
    """Where one parameter set's notebooks read and write, so that each set writes only its own results.

    The study set (notebooks/params/study.yaml), which the paper, the README and notebook 07 read: results/<dataset>/,
    paper/figures/, data/processed/<dataset>/. Any other set (the notebooks' defaults are the CI set, "ci"):
    results/runs/<set>/<dataset>/ and results/runs/<set>/figures/ ($LWADAPTER_RUNS_DIR moves results/runs),
    data/processed/<set>/<dataset>/.
    """

    dataset: str
    parameter_set: str = STUDY_SET

    def __post_init__(self):
        for value in (self.dataset, self.parameter_set):
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", str(value)):
                raise ValueError(f"{value!r} cannot name a results folder: use letters, digits, '.', '_' or '-'")

    @property
    def study(self) -> bool:
        return self.parameter_set == STUDY_SET

    @property
    def set_dir(self) -> Path:
        return Path(os.environ.get(RUNS_ENV, RUNS_DIR)) / self.parameter_set

    @property
    def results(self) -> Path:
        return RESULTS_DIR / self.dataset if self.study else self.set_dir / self.dataset

    @property
    def figures(self) -> Path:
        return FIGURES_DIR if self.study else self.set_dir / "figures"

    @property
    def processed(self) -> Path:
        return DATA_DIR / "processed" / (self.dataset if self.study else f"{self.parameter_set}/{self.dataset}")

    @property
    def sequences(self) -> Path:
        return self.processed / "sequences.json"

    @property
    def corpus(self) -> Path:
        return self.processed / "corpus.json"

    @property
    def corpus_mapping(self) -> Path:
        return self.processed / "corpus_mapping.json"


def set_seed(seed: int) -> None:
    """Seed random, numpy and torch, and fix the thread count so CPU runs are bit-identical."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(THREADS)


# (message regex, category, module regex) of each warning the pipeline's own runs emit and cannot act on:
KNOWN_WARNINGS = (
    # PeftModel.__init__ (peft 0.21) reads the property transformers 5 renamed: healing.attach_adapters, load_adapter
    (r"`is_gradient_checkpointing` is deprecated", FutureWarning, r"transformers\.modeling_utils"),
)


def quiet() -> None:
    """Silence known library chatter once, so notebook outputs stay stable under nbval: the KNOWN_WARNINGS by
    message (any other warning still shows), transformers' logging below errors (its load reports are raised by
    lwadapter.checkpoints.load_causal_lm instead) and its progress bars."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # the profiler (peak memory) prints timestamped lines otherwise
    for message, category, module in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
