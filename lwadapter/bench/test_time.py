"""The wall time of what CI runs: `make test` in a fresh clone of this checkout's HEAD, with an empty model cache.

`python -m lwadapter.bench.test_time` (`make benchmark-test`) clones HEAD beside the checkout (so that ../shared
resolves as it does in CI), runs `make test` there (its own .venv, every model trained), keeps what it printed in
build/test_time.log (and prints the failures' summary), removes the clone and appends a row (CPU, commit, date,
minutes, exit code, pytest's summary) to results/benchmarks/test_time.csv. A benchmark, never a test: it takes as
long as CI (45-50 minutes on 2 cores), so nothing else should run beside it.
"""

import datetime
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd

from lwadapter.numerics import cpu_name
from lwadapter.results import read_results_csv, write_csv
from lwadapter.runtime import RESULTS_DIR, ROOT

FILE = RESULTS_DIR / "benchmarks" / "test_time.csv"
LOG = ROOT / "build" / "test_time.log"
SUMMARY = re.compile(r"^=+ (.*?) in [\d.]+s(?: \([\d:]+\))? =+$", re.MULTILINE)
LOCAL = ("PYTHONPATH", "LWADAPTER_RUNS_DIR", "LWADAPTER_NUMERICS", "VIRTUAL_ENV")  # a session's, never CI's


def pytest_summary(output: str) -> str:
    """pytest's last summary line ('407 passed, 1 warning'), or a note that there was none."""
    found = SUMMARY.findall(output)
    return found[-1] if found else "no pytest summary (setup failed?)"


def failures(output: str) -> str:
    """pytest's 'short test summary info' lines (FAILED / ERROR ...), empty when there are none."""
    return "\n".join(line for line in output.splitlines() if line.startswith(("FAILED ", "ERROR ")))


def time_make_test(root: Path = ROOT, log: Path = LOG) -> dict:
    """`make test` in a fresh clone of `root`'s HEAD beside it, timed, its output written to `log`; the clone is
    removed afterwards."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                            check=True).stdout.strip()
    clone = Path(tempfile.mkdtemp(prefix=".test-time-", dir=root.parent))
    env = {key: value for key, value in os.environ.items() if key not in LOCAL}
    try:
        subprocess.run(["git", "clone", "--quiet", str(root), str(clone)], check=True)
        start = time.perf_counter()
        run = subprocess.run(["make", "test"], cwd=clone, capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(clone, ignore_errors=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(run.stdout + run.stderr)
    return {"cpu": cpu_name(), "commit": commit, "date": datetime.date.today().isoformat(),
            "minutes": seconds / 60, "exit_code": run.returncode, "summary": pytest_summary(run.stdout)}


def main() -> None:
    row = pd.DataFrame([time_make_test()])
    table = pd.concat([read_results_csv(FILE), row], ignore_index=True) if FILE.exists() else row
    write_csv(FILE, table)
    print(row.round(1).to_string(index=False))
    print(failures(LOG.read_text()) or f"no failures; make test's output: {LOG}")


if __name__ == "__main__":
    main()
