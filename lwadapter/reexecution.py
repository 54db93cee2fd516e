"""A re-executed run against the committed one, within the training noise: the check that holds where bits cannot
(another CPU, another BLAS; lwadapter.numerics pins what it can).

`training_noise` measures, from one parameter set run under several seeds, how far each column of each results table
moves when only the seed changes. `compare_runs` then allows a re-execution to differ from the committed run by no
more than that: per numeric column, the root-mean-square difference over the table's rows at most TOLERANCE times
the one two seeds give (sqrt(2) x the pooled across-seed standard deviation, taken at the upper end of its 95%
confidence interval: a few rows and seeds estimate it loosely). A value missing in one run only (a target never
reached) is allowed where the seeds show it. Columns and text that the seeds leave unchanged must match exactly
(floats up to their printed precision); the rows (the keys) must match where the seeds give the same rows. Timings
measure the machine, not the study, and are left out, as are flags that threshold a compared number.
"""

import argparse
import re
from pathlib import Path

import numpy as np
import pandas as pd

from lwadapter.results import read_results_csv, write_csv

KEYS = {  # results table -> the columns that name a row
    "base_models": ["model"],
    "layer_scores": ["model", "criterion", "layer"],
    "criterion_costs": ["model", "criterion"],
    "selection": ["model", "criterion", "strategy", "k"],
    "healing": ["model", "criterion", "strategy", "k", "adapter", "rank"],
    "compact_eval": ["model", "criterion", "strategy", "k", "healed", "adapter", "base_model"],
    "versus_controls": ["model", "control", "criterion", "strategy", "k", "healed", "adapter"],
    "compute_to_target": ["model", "k", "route", "method"],
    "criteria_tests": ["model", "adapter", "a", "b"],
    "scenarios": ["model", "scenario", "group", "metric"],
}
TIMING = re.compile(r"seconds|latency|^speedup$|_per_s$|memory")
TIMED = {("criterion_costs", "epochs")}  # a criterion's seconds in units of a training epoch's
THRESHOLDS = {("criteria_tests", "significant"),  # p_holm < 0.05; p_holm itself is compared
              ("base_models", "stop_reason"), ("healing", "stop_reason")}  # epochs - best_epoch >= patience
TOLERANCE = 2.0
NOISE_FILE = "training_noise.csv"


def read_tables(folder: Path) -> dict[str, pd.DataFrame]:
    """Each results table of `folder` indexed by its row name (the KEYS joined as text)."""
    tables = {}
    for name, keys in KEYS.items():
        table = read_results_csv(Path(folder) / f"{name}.csv")
        table.index = table[keys].astype(str).agg(" | ".join, axis=1)
        tables[name] = table.drop(columns=keys)
    return tables


def _kind(table: str, column: str, values: pd.Series) -> str:
    if TIMING.search(column) or (table, column) in TIMED:
        return "timing"
    if (table, column) in THRESHOLDS:
        return "threshold"
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    return "numeric" if numeric else "text"


def _same(a: pd.Series, b: pd.Series) -> pd.Series:
    """Row-wise equality, NaN equal to NaN, floats compared at the precision write_csv prints (6 digits)."""
    if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b) and not pd.api.types.is_bool_dtype(a):
        return pd.Series(np.isclose(a.astype(float), b.astype(float), rtol=1e-5, atol=1e-12, equal_nan=True),
                         index=a.index)
    return (a.astype(str) == b.astype(str)) | (a.isna() & b.isna())


def sd_upper_bound(sd: float, df: int) -> float:
    """The upper end of the 95% confidence interval of a standard deviation estimated with `df` degrees of freedom
    (chi-square lower 5% quantile by the Wilson-Hilferty approximation)."""
    if df < 1:
        return float("inf")
    quantile = df * (1 - 2 / (9 * df) - 1.645 * np.sqrt(2 / (9 * df))) ** 3
    return sd * np.sqrt(df / max(quantile, 1e-9))


def training_noise(folders: list[Path]) -> pd.DataFrame:
    """One row per table and column of runs that differ only in the seed: its kind, the rows all runs share, whether
    the seed changes it (and, numeric columns, whether a value goes missing in some seeds only), the pooled
    across-seed standard deviation, and the allowed RMS difference of a re-execution (TOLERANCE x sqrt(2) x the
    upper 95% bound of that deviation)."""
    if len(folders) < 2:
        raise ValueError("the training noise needs runs of at least two seeds")
    runs = [read_tables(f) for f in folders]
    rows = []
    for name in KEYS:
        tables = [run[name] for run in runs]
        shared = tables[0].index
        for t in tables[1:]:
            shared = shared.intersection(t.index)
        rows.append({"table": name, "column": "(rows)", "kind": "keys", "rows": len(shared),
                     "varies": any(set(t.index) != set(tables[0].index) for t in tables[1:])})
        for column in tables[0].columns:
            values = [t.loc[shared, column] for t in tables]
            kind = _kind(name, column, values[0])
            row = {"table": name, "column": column, "kind": kind, "rows": len(shared),
                   "varies": not all(_same(values[0], v).all() for v in values[1:])}
            if kind == "numeric":
                stack = pd.concat(values, axis=1).astype(float)
                missing = stack.isna()
                complete = stack[~missing.any(axis=1)]
                variance = complete.var(axis=1, ddof=1)
                sd = float(np.sqrt(variance.mean())) if len(variance) else 0.0
                bound = sd_upper_bound(sd, len(complete) * (len(folders) - 1)) if len(variance) else 0.0
                row.update(seed_sd=sd, nan_varies=bool((missing.any(axis=1) & ~missing.all(axis=1)).any()),
                           allowed_rms=TOLERANCE * np.sqrt(2) * bound if row["varies"] else 0.0)
            rows.append(row)
    return pd.DataFrame(rows)


def compare_runs(expected: Path, actual: Path, noise: pd.DataFrame) -> pd.DataFrame:
    """One row per compared table and column of `actual` against `expected`: the observed difference (RMS for a
    numeric column the seed moves, else the number of rows that differ), what the noise allows, and `ok`."""
    want, got = read_tables(expected), read_tables(actual)
    rows = []
    for r in noise.itertuples():
        if r.kind in ("timing", "threshold") or (r.table, r.column) in THRESHOLDS:
            continue
        a, b = want[r.table], got[r.table]
        if r.kind == "keys":
            differ = len(set(a.index) ^ set(b.index))
            rows.append({"table": r.table, "column": r.column, "observed": differ, "allowed": "any" if r.varies else 0,
                         "ok": bool(r.varies or differ == 0)})
            continue
        shared = a.index.intersection(b.index)
        x, y = a.loc[shared, r.column], b.loc[shared, r.column]
        if r.kind == "numeric" and r.varies:
            diff = (x.astype(float) - y.astype(float)).to_numpy()
            both_nan = np.isnan(x.astype(float).to_numpy()) & np.isnan(y.astype(float).to_numpy())
            one_nan = np.isnan(diff) & ~both_nan
            rms = float(np.sqrt(np.mean(diff[~np.isnan(diff)] ** 2))) if (~np.isnan(diff)).any() else 0.0
            rows.append({"table": r.table, "column": r.column, "observed": rms, "allowed": r.allowed_rms,
                         "ok": bool(rms <= r.allowed_rms and (r.nan_varies or not one_nan.any()))})
        elif r.kind == "text" and r.varies:
            continue  # text the seed changes (kept layers, stop reasons, cache names): its numbers are compared
        else:
            differ = int((~_same(x, y)).sum())
            rows.append({"table": r.table, "column": r.column, "observed": differ, "allowed": 0, "ok": differ == 0})
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Training noise of a parameter set run under several seeds.")
    parser.add_argument("runs", nargs="+", type=Path, help="results folders of the same set and dataset, one a seed")
    parser.add_argument("--out", type=Path, help=f"where to write (default: <first run>/{NOISE_FILE})")
    args = parser.parse_args(argv)
    noise = training_noise(args.runs)
    write_csv(args.out or args.runs[0] / NOISE_FILE, noise)
    print(noise[noise["varies"]].to_string(index=False))


if __name__ == "__main__":
    main()
