"""runtime.quiet silences the warnings it names, which the pipeline really emits, and lets every other through."""

import warnings

import pytest

from lwadapter.healing import attach_adapters
from lwadapter.runtime import quiet
from tests.synthetic import tiny


def caught(action, silence: bool) -> list[str]:
    """The messages of the warnings `action()` emits, every warning shown, after quiet() when `silence`."""
    with warnings.catch_warnings(record=True) as log:
        warnings.simplefilter("always")
        if silence:
            quiet()
        action()
    return [str(w.message) for w in log]


@pytest.mark.parametrize("category", [UserWarning, FutureWarning, DeprecationWarning])
def test_quiet_lets_an_unnamed_warning_through(category):
    assert caught(lambda: warnings.warn("an unrelated warning", category), silence=True) == ["an unrelated warning"]


def test_quiet_silences_the_named_warning_that_attaching_adapters_emits():
    attach = lambda: attach_adapters(tiny(), rank=1)  # noqa: E731
    assert any("is_gradient_checkpointing" in message for message in caught(attach, silence=False))
    assert caught(attach, silence=True) == []
