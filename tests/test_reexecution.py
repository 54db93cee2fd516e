"""Re-executed results against committed ones within the training noise (lwadapter.reexecution): the comparison
itself on small tables, then the CI set nbval re-executed in this session against results/runs/ci/."""

import numpy as np
import pandas as pd
import pytest

from lwadapter import reexecution
from lwadapter.results import read_results_csv, write_csv
from lwadapter.runtime import RUNS_DIR, RunFolders

MODELS = [f"m{i}" for i in range(8)]


def run(folder, seed, ndcg_noise=0.01, **changes):
    """A base_models table of one seed: ndcg moves with the seed, params never, stop reason sometimes."""
    rng = np.random.default_rng(seed)
    table = pd.DataFrame({"model": MODELS, "params": [1000 * (i + 1) for i in range(8)],
                          "ndcg@10": 0.1 + ndcg_noise * rng.standard_normal(8),
                          "stop_reason": ["patience"] * 8, "route": ["scratch"] * 8,
                          "train_seconds": rng.uniform(10, 100, 8)})
    table.loc[seed % 8, "stop_reason"] = "cap"
    for column, value in changes.items():
        table[column] = value
    write_csv(folder / "base_models.csv", table)
    return folder


@pytest.fixture
def noise(tmp_path, monkeypatch):
    monkeypatch.setattr(reexecution, "KEYS", {"base_models": ["model"]})
    seeds = [run(tmp_path / f"seed{s}", s) for s in range(3)]
    return reexecution.training_noise(seeds).set_index("column")


def test_few_rows_and_seeds_widen_the_bound_on_the_deviation():
    # sqrt(df / chi-square 5% quantile), the quantiles from a printed table: 0.3518 (3), 1.6354 (6), 18.4927 (30);
    # Wilson-Hilferty's approximation errs by 3.6% at 3 degrees of freedom (wider: on the safe side), 0.5% at 6
    for df, quantile, error in ((3, 0.3518, 0.04), (6, 1.6354, 0.006), (30, 18.4927, 0.001)):
        assert reexecution.sd_upper_bound(2.0, df) == pytest.approx(2.0 * (df / quantile) ** 0.5, rel=error)
    assert reexecution.sd_upper_bound(1.0, 0) == float("inf")


def test_the_noise_table_tells_what_the_seed_moves(noise):
    assert noise.loc["ndcg@10", "varies"] and 0.003 < noise.loc["ndcg@10", "seed_sd"] < 0.03
    assert not noise.loc["params", "varies"] and noise.loc["params", "allowed_rms"] == 0
    assert noise.loc["stop_reason", "varies"] and not noise.loc["route", "varies"]
    assert noise.loc["train_seconds", "kind"] == "timing" and noise.loc["(rows)", "kind"] == "keys"


def test_a_rerun_within_the_noise_passes_and_one_beyond_it_fails(noise, tmp_path):
    noise = noise.reset_index()
    committed = run(tmp_path / "seed0", 0)
    assert reexecution.compare_runs(committed, run(tmp_path / "other", 7), noise)["ok"].all()
    report = reexecution.compare_runs(committed, run(tmp_path / "far", 7, ndcg_noise=0.2), noise).set_index("column")
    assert not report.loc["ndcg@10", "ok"] and report.loc["params", "ok"]
    for changed in ({"params": 999}, {"route": "pretrained"}):
        report = reexecution.compare_runs(committed, run(tmp_path / "det", 0, **changed), noise)
        assert report.set_index("column").loc[list(changed)[0], "observed"] == 8 and not report["ok"].all()
    steady = reexecution.training_noise([run(tmp_path / f"steady{s}", s, stop_reason="patience") for s in range(3)])
    flipped = run(tmp_path / "flipped", 0, stop_reason=["patience"] * 3 + ["cap"] + ["patience"] * 4)  # 2 rows differ
    assert reexecution.compare_runs(committed, flipped, steady)["ok"].all()
    assert "stop_reason" not in set(reexecution.compare_runs(committed, flipped, steady)["column"])
    missing = reexecution.compare_runs(committed, run(tmp_path / "nan", 0, **{"ndcg@10": float("nan")}), noise)
    assert not missing.set_index("column").loc["ndcg@10", "ok"]  # the seeds never lose a value here
    fewer = tmp_path / "fewer"
    fewer.mkdir()
    write_csv(fewer / "base_models.csv", read_results_csv(committed / "base_models.csv").iloc[:-1])
    report = reexecution.compare_runs(committed, fewer, noise).set_index("column")
    assert report.loc["(rows)", "observed"] == 1 and not report.loc["(rows)", "ok"]


@pytest.mark.after_notebooks
@pytest.mark.parametrize("dataset", ["ml-100k"])
def test_the_re_executed_ci_set_agrees_with_the_committed_run_within_the_training_noise(dataset):
    committed = RUNS_DIR / "ci" / dataset  # this session's run: RunFolders("ci"), under build/test-runs
    noise = read_results_csv(committed / reexecution.NOISE_FILE)
    report = reexecution.compare_runs(committed, RunFolders(dataset, "ci").results, noise)
    assert len(report) > 50, "too few columns compared"
    failed = report[~report["ok"]]
    assert failed.empty, f"differs beyond the training noise:\n{failed.to_string()}"
