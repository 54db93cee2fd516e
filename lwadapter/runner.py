"""Run the ordered notebooks headless with papermill: `python -m lwadapter.runner [01 02 ...] [-p key value]`.

Executed copies go to results/executed/<dataset>/ (gitignored), each with a .log of what its kernel printed (shown
when a notebook fails); the console gets one line per notebook with its elapsed time. `--params file.yaml` and
`-p key value` set parameters; `--inplace` writes the executed notebook back over the committed one (how committed
outputs are refreshed).
"""

import argparse
import contextlib
import os
import shutil
import sys
import time

import papermill as pm
import yaml

from lwadapter.runtime import RESULTS_DIR, ROOT

NOTEBOOKS_DIR = ROOT / "notebooks"
EXECUTED_DIR = RESULTS_DIR / "executed"


def notebooks(selection: list[str] | None = None) -> list:
    """The ordered notebooks (01_*.ipynb ...), optionally only those whose number or name is selected."""
    found = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
    if not selection:
        return found
    chosen = [nb for nb in found if any(nb.name.startswith(s) or nb.stem == s for s in selection)]
    missing = [s for s in selection if not any(nb.name.startswith(s) or nb.stem == s for nb in found)]
    if missing:
        raise SystemExit(f"no notebook matches {missing}; available: {[nb.name for nb in found]}")
    return chosen


@contextlib.contextmanager
def stderr_to(path):
    """Send this process's and its children's (the kernel's) file descriptor 2 to `path` while the block runs."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "w") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def run(selection=None, parameters: dict | None = None, timeout: int = 3600, kernel: str = "python3",
        inplace: bool = False) -> list:
    """Execute the selected notebooks in order; stops at the first failure (papermill raises)."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    parameters = parameters or {}
    folder = EXECUTED_DIR / str(parameters.get("dataset", "default"))
    folder.mkdir(parents=True, exist_ok=True)
    outputs = []
    for nb in notebooks(selection):
        out, log = folder / nb.name, folder / f"{nb.stem}.log"
        print(f"{nb.name:<28}", end=" ", flush=True)
        start = time.perf_counter()
        try:
            with stderr_to(log):
                pm.execute_notebook(str(nb), str(out), parameters=parameters, kernel_name=kernel,
                                    cwd=str(NOTEBOOKS_DIR), execution_timeout=timeout, progress_bar=False,
                                    report_mode=False)
        except Exception:
            print(f"FAILED; kernel log {log.relative_to(ROOT)}, executed copy {out.relative_to(ROOT)}:", flush=True)
            print("".join(log.read_text().splitlines(keepends=True)[-20:]), file=sys.stderr)
            raise
        print(f"done in {time.perf_counter() - start:6.0f} s -> {out.relative_to(ROOT)}", flush=True)
        if inplace:
            shutil.copyfile(out, nb)
        outputs.append(out)
    return outputs


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="numbers or names, e.g. 01 02 (default: all, in order)")
    parser.add_argument("--params", action="append", default=[],
                        help="YAML file of parameters, e.g. notebooks/params/amazon.yaml (repeatable: later files win)")
    parser.add_argument("-p", nargs=2, action="append", metavar=("KEY", "VALUE"), default=[],
                        help="override one parameter (VALUE parsed as YAML)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--kernel", default="python3")
    parser.add_argument("--inplace", action="store_true", help="write executed notebooks over the committed ones")
    args = parser.parse_args(argv)
    params = {}
    for path in args.params:
        params.update(yaml.safe_load(open(path)) or {})
    params.update({k: yaml.safe_load(v) for k, v in args.p})
    run(args.notebooks, params, args.timeout, args.kernel, args.inplace)


if __name__ == "__main__":
    sys.exit(main())
