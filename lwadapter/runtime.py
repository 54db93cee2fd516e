"""Run-time set-up shared by notebooks and tests: repository paths, seeds, threads, quiet libraries."""

import os
import random
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "data"
RESULTS_DIR = ROOT / "results"
FIGURES_DIR = ROOT / "paper" / "figures"
CACHE_DIR = ROOT / "data" / "cache"

THREADS = 2


def set_seed(seed: int) -> None:
    """Seed random, numpy and torch, and fix the thread count so CPU runs are bit-identical."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(THREADS)


def quiet() -> None:
    """Silence known library chatter once, so notebook outputs stay stable under nbval."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # the profiler (peak memory) prints timestamped lines otherwise
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
