"""Run the ordered notebooks headless with papermill: `python -m lwadapter.runner [01 02 ...] [-p key value]`.

Executed copies go to results/executed/<parameter set>/<dataset>/ (gitignored), each with a .log of what its kernel
printed (shown when a notebook fails); the console gets one line per notebook with its elapsed time. `--params
file.yaml` and `-p key value` set parameters, checked against the notebooks' parameters cells before anything runs;
`--inplace` writes the executed notebooks back over the committed ones (how committed outputs are refreshed: the
notebooks' own defaults only). Kernels run on the pinned numeric paths (lwadapter.numerics) unless `--numerics
native`.
"""

import argparse
import ast
import contextlib
import difflib
import json
import os
import shutil
import sys
import time

import pandas as pd
import papermill as pm
import yaml

from lwadapter import numerics
from lwadapter.results import read_results_csv, write_csv
from lwadapter.runtime import RESULTS_DIR, ROOT, RunFolders

NOTEBOOKS_DIR = ROOT / "notebooks"
EXECUTED_DIR = RESULTS_DIR / "executed"
SECONDS_FILE = "notebook_seconds.csv"  # per set and dataset: each notebook's latest wall time
DATASET_KEYS = {"dataset", "data_path", "min_rating", "k_core", "n_users", "n_items", "corpus_users"}  # which data


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


def notebook_parameters(notebook) -> dict:
    """name -> value of the assignments in the notebook's cell tagged `parameters` (a recipe `dict(...)` as a dict)."""
    cells = json.loads(notebook.read_text())["cells"]
    source = next("".join(c["source"]) for c in cells if "parameters" in c["metadata"].get("tags", []))
    return {node.targets[0].id: ast.literal_eval(node.value) if not isinstance(node.value, ast.Call) else
            {k.arg: ast.literal_eval(k.value) for k in node.value.keywords}
            for node in ast.parse(source).body if isinstance(node, ast.Assign)}


def known_parameters() -> dict:
    """Every notebook's parameters and defaults (a parameter set is shared by the notebooks, so any of them counts)."""
    known = {}
    for nb in notebooks():
        known.update(notebook_parameters(nb))
    return known


def check_parameters(parameters: dict, source: str = "parameters") -> None:
    """Stop on a name no notebook's parameters cell has (papermill would inject it silently) or on a recipe dict that
    leaves out one of the default's keys (it may add others, e.g. heal's precision); the message names the closest
    valid name."""
    known = known_parameters()
    for key, value in parameters.items():
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid names: {sorted(known)}"
            raise SystemExit(f"{source}: unknown parameter {key!r}{hint} (nothing was run)")
        if isinstance(known[key], dict) and known[key] and not (isinstance(value, dict) and
                                                                 set(known[key]) <= set(value)):
            raise SystemExit(f"{source}: {key} replaces the recipe whole: give every key of {sorted(known[key])} "
                             "(and any other the recipe takes)")


def check_set_name(parameters: dict) -> None:
    """Parameters that change what the CI set computes (beyond which data it reads) need a set name of their own,
    so they never write over the CI set's results."""
    changed = sorted(set(parameters) - DATASET_KEYS - {"parameter_set"})
    if changed and "parameter_set" not in parameters:
        raise SystemExit(f"{changed} change what the notebooks' default set computes: name your set with "
                         "-p parameter_set NAME (it writes results/runs/NAME/<dataset>/; nothing was run)")


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


def record_seconds(folders: RunFolders, notebook: str, seconds: float) -> None:
    """The notebook's wall time, CPU and numeric paths in the set's notebook_seconds.csv (one row a notebook, the
    latest run's): what the README's step-time table shows."""
    path = folders.results / SECONDS_FILE
    rows = read_results_csv(path) if path.exists() else pd.DataFrame(columns=["notebook"])
    row = {"notebook": notebook, "seconds": round(seconds, 1), "cpu": numerics.cpu_name(),
           "numerics": numerics.choice(), "date": time.strftime("%Y-%m-%d")}
    rows = pd.concat([rows[rows["notebook"] != notebook], pd.DataFrame([row])], ignore_index=True)
    write_csv(path, rows.sort_values("notebook", kind="stable"))


def run(selection=None, parameters: dict | None = None, timeout: int = 3600, kernel: str = "python3",
        inplace: bool = False) -> list:
    """Execute the selected notebooks in order, their kernels on the numeric paths the environment chooses
    (numerics.pin); stops at the first failure (papermill raises)."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    parameters = parameters or {}
    check_parameters(parameters)
    check_set_name(parameters)
    if inplace and parameters:
        raise SystemExit("--inplace stores the notebooks' own defaults (the CI set): run it without parameters")
    numerics.pin()
    chosen = {**known_parameters(), **parameters}
    folder = EXECUTED_DIR / str(chosen["parameter_set"]) / str(chosen["dataset"])
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
        seconds = time.perf_counter() - start
        print(f"done in {seconds:6.0f} s -> {out.relative_to(ROOT)}", flush=True)
        record_seconds(RunFolders(chosen["dataset"], chosen["parameter_set"]), nb.stem, seconds)
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
    parser.add_argument("--numerics", choices=("pinned", "native"), default=os.environ.get(numerics.CHOICE, "pinned"),
                        help="pinned: the reproducible numeric paths (default); native: the CPU's fastest")
    args = parser.parse_args(argv)
    params = {}
    for path in args.params:
        with open(path) as text:
            loaded = yaml.safe_load(text) or {}
        check_parameters(loaded, path)
        params.update(loaded)
    params.update({k: yaml.safe_load(v) for k, v in args.p})
    os.environ[numerics.CHOICE] = args.numerics
    run(args.notebooks, params, args.timeout, args.kernel, args.inplace)


if __name__ == "__main__":
    sys.exit(main())
