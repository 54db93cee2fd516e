"""Numeric code paths: pinned before torch starts, in this process and in every notebook kernel started from it."""

import json
import os

import pytest

from lwadapter import numerics


def test_pin_sets_the_paths_unless_native_is_chosen():
    env = {}
    assert numerics.choice(env) == "native"  # nothing set: the CPU's own paths are in effect
    assert numerics.pin(env) == numerics.pins() and env["MKL_NUM_THREADS"] == str(numerics.THREADS)
    assert numerics.choice(env) == "pinned"
    native = {numerics.CHOICE: "native"}
    assert numerics.pin(native) == {} and set(native) == {numerics.CHOICE} and numerics.choice(native) == "native"
    with pytest.raises(ValueError, match="LWADAPTER_NUMERICS='fast'"):
        numerics.pin({numerics.CHOICE: "fast"})


def test_pin_refuses_to_run_after_torch_with_other_paths(monkeypatch):
    import torch  # noqa: F401  (already imported by the test session)

    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv(numerics.CHOICE, raising=False)
    with pytest.raises(RuntimeError, match="before torch is imported"):
        numerics.pin()


@pytest.mark.skipif(numerics.requested() == "native", reason="the session runs on the native paths by choice")
def test_a_notebook_kernel_runs_on_the_pinned_paths():
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3", cwd=os.getcwd())
    printed = []
    try:
        client.execute_interactive("import json; from lwadapter.numerics import current_paths; "
                                   "print(json.dumps(current_paths()))", timeout=120,
                                   output_hook=lambda msg: printed.append(msg["content"].get("text", "")))
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    paths = json.loads("".join(printed))
    assert paths["threads"] == numerics.THREADS and paths["choice"] == "pinned"
    if "ATEN_CPU_CAPABILITY" in numerics.pins():
        assert paths["aten"] == "AVX2" and paths["mkl_cbwr"] == "AVX2" and paths["onednn_max_isa"] == "AVX2"
