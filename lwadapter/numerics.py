"""The CPU's numeric code paths: pinned where a re-execution must match a committed one bit for bit, recorded in
every result's provenance.

Float rounding depends on the kernels a library picks for the CPU it finds (ATen's AVX-512 or AVX2 loops, MKL's
branch, oneDNN's ISA) and on the thread count; training amplifies a last-bit difference into another early-stopping
epoch. `pin` fixes them before torch starts (they are read once, at import): the tests, their notebook kernels and
in-place re-executions run pinned; `LWADAPTER_NUMERICS=native` keeps the machine's fastest paths (the study set).
MKL promises its AVX2 branch on Intel CPUs only (elsewhere it falls back to its automatic one), so results that
training shapes are also compared within the training noise (lwadapter.reexecution), not only bit for bit.
"""

import os
import platform
import sys

THREADS = 2
CHOICE = "LWADAPTER_NUMERICS"  # "pinned" (default) or "native"
X86_PINS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
THREAD_PINS = {"OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS)}


def pins() -> dict[str, str]:
    """The variables that pin this machine's numeric paths (the ISA ones only on x86-64)."""
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    return {**(X86_PINS if x86 else {}), **THREAD_PINS}


def requested(environ=os.environ) -> str:
    """What LWADAPTER_NUMERICS asks `pin` for: 'pinned' (the default) or 'native'."""
    value = environ.get(CHOICE, "pinned")
    if value not in ("pinned", "native"):
        raise ValueError(f"{CHOICE}={value!r}: use 'pinned' (reproducible paths) or 'native' (the CPU's fastest)")
    return value


def choice(environ=os.environ) -> str:
    """The paths in effect: 'pinned' when every pin is set in `environ`, else 'native' (e.g. a JupyterLab kernel)."""
    return "pinned" if all(environ.get(k) == v for k, v in pins().items()) else "native"


def pin(environ=os.environ) -> dict[str, str]:
    """Set the pinned paths in `environ` (inherited by every kernel started afterwards) unless LWADAPTER_NUMERICS is
    'native'; returns what was set. Raises if torch is already imported in this process with other paths."""
    if requested(environ) == "native":
        return {}
    wanted = pins()
    if "torch" in sys.modules and environ is os.environ and any(environ.get(k) != v for k, v in wanted.items()):
        raise RuntimeError("pin() must run before torch is imported: ATen and MKL read their paths once, at import")
    environ.update(wanted)
    return wanted


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else what the platform reports."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def current_paths() -> dict:
    """What this process computes with: CPU, ATen capability, MKL branch, oneDNN ISA limit, torch threads."""
    import torch

    return {"cpu": cpu_name(), "choice": choice(), "aten": torch.backends.cpu.get_cpu_capability(),
            "mkl_cbwr": os.environ.get("MKL_CBWR", "AUTO"),
            "onednn_max_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL"), "threads": torch.get_num_threads()}
