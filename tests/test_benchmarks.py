"""The benchmarks time every lever on the same tokens, and the README's benchmark sections come from their files."""

import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from lwadapter.bench.llm_speed import lever_batches
from lwadapter.report import benchmarks
from lwadapter.runner import record_seconds
from lwadapter.runtime import RunFolders
from lwadapter.sequences import padding_share


def test_every_lever_batches_the_same_examples_and_buckets_cut_the_padding():
    lengths = [1 + (7 * i) % 40 for i in range(500)]
    shuffled, bucketed = (lever_batches(lengths, 32, 4, bucket) for bucket in (0, 16))
    assert len(shuffled) == len(bucketed) == 4 and all(len(b) == 32 for b in shuffled + bucketed)
    assert sorted(sum(shuffled, [])) == sorted(sum(bucketed, []))  # the same 128 windows, grouped otherwise
    assert len(set(sum(shuffled, []))) == 128
    assert padding_share(lengths, bucketed) < padding_share(lengths, shuffled)


def test_llm_speed_section_states_the_cpu_the_passes_and_the_ratios(tmp_path):
    rows = [dict(model="machine", stage="matmul 2048x576x1536", lever="float32", achieved_tflops=0.5),
            dict(model="machine", stage="matmul 2048x576x1536", lever="bfloat16", achieved_tflops=4.0)]
    for lever, train, padding in (("before", 10.0, 0.4), ("after", 25.0, 0.05)):
        rows += [dict(model="m", stage="fine-tuning step", lever=lever, tokens_per_s=train, padding_share=padding),
                 dict(model="m", stage="evaluation pass", lever=lever, tokens_per_s=4 * train, padding_share=padding),
                 dict(model="m", stage="healing step (2 layers, LoRA r8 + KD)", lever=lever, tokens_per_s=train / 2)]
    rows.append(dict(model="m", stage="compact forward (2 of 4 layers)", lever="speed", speedup=1.9,
                     ideal_speedup=2.0))
    pd.DataFrame(rows).to_csv(tmp_path / "llm_speed.csv", index=False)
    (tmp_path / "llm_speed.json").write_text(json.dumps({"config": {
        "cpu": "Test CPU", "threads": 2, "command": "python -m lwadapter.bench.llm_speed", "dataset": "toy",
        "steps": 4, "repeats": 3}}))
    text = benchmarks.llm_speed(tmp_path)
    assert text.startswith("Measured on Test CPU, 2 threads") and "median of 3 passes" in text
    assert "padding share of the timed batches 40.0% before, 5.0% after" in text
    assert "| after / before | 2.50x | 2.50x |" in text
    assert "m: healing step 5 -> 12 tokens/s (2.50x); compact forward (2 of 4 layers): 1.90x measured / 2.00x" in text
    assert benchmarks.llm_speed(tmp_path / "none") == "not measured yet: run `make benchmark-llm`."
    memo = dict(model="m", stage="healing step (2 layers, LoRA r8 + KD)", lever="+ teacher logits memoised",
                tokens_per_s=30.0)
    pd.DataFrame(rows[:-1] + [memo, rows[-1]]).to_csv(tmp_path / "llm_speed_memo.csv", index=False)
    (tmp_path / "llm_speed_memo.json").write_text((tmp_path / "llm_speed.json").read_text())
    assert ("m: healing step 5 -> 12 tokens/s (2.50x), 30 with the teacher's logits memoised (every epoch after the "
            "first; 2.40x); compact" in benchmarks.llm_speed(tmp_path))
    for name in ("llm_speed_memo.csv", "llm_speed_memo.json"):
        (tmp_path / name).unlink()
    (tmp_path / "llm_speed_avx2.csv").write_text((tmp_path / "llm_speed.csv").read_text())  # another machine's run
    (tmp_path / "llm_speed_avx2.json").write_text(json.dumps({"config": {
        "cpu": "Other CPU", "threads": 2, "command": "python -m lwadapter.bench.llm_speed --out llm_speed_avx2",
        "dataset": "toy", "steps": 4, "repeats": 3}}))
    both = benchmarks.llm_speed(tmp_path)
    assert both.startswith(text) and "\n\nMeasured on Other CPU, 2 threads" in both


def test_step_times_come_from_the_runner_and_leave_out_the_notebook_writing_them(tmp_path, monkeypatch):
    monkeypatch.setenv("LWADAPTER_RUNS_DIR", str(tmp_path))
    folders = RunFolders("ml-100k", "ci")
    for notebook, seconds in (("01_data_preparation", 9.6), ("02_base_models", 1234.4), ("07_paper_figures", 30.0)):
        record_seconds(folders, notebook, seconds)
    record_seconds(folders, "02_base_models", 1000.2)  # a rerun replaces the notebook's row
    table = pd.read_csv(folders.results / "notebook_seconds.csv")
    assert list(table["notebook"]) == ["01_data_preparation", "02_base_models", "07_paper_figures"]
    text = benchmarks.step_times(runs=(("ci", tmp_path / "ci"),), datasets=("ml-100k",))
    assert "| 02_base_models | 1,000 s |" in text and "| total | 1,010 s |" in text
    assert "07_paper_figures" not in text


def test_llm_training_names_each_llm_row_with_its_cpu_and_precision(tmp_path):
    (tmp_path / "ml-100k").mkdir()
    pd.DataFrame({"model": ["llama-2L", "smollm2-135m-lora"], "route": ["study data", "pretrained LLM + LoRA"],
                  "epochs": [20, 4], "stop_reason": ["patience", "cap"], "train_seconds": [31.0, 1313.2]}).to_csv(
        tmp_path / "ml-100k" / "base_models.csv", index=False)
    (tmp_path / "ml-100k" / "base_models.json").write_text(json.dumps({
        "config": {"llm_models": ["smollm2-135m-lora"], "llm_recipes": {"llm_precision": "auto"}},
        "numerics": {"cpu": "Test CPU", "choice": "native"}}))
    text = benchmarks.llm_training(tmp_path, datasets=("ml-100k", "amazon-electronics"))
    assert "| ml-100k | smollm2-135m-lora | pretrained LLM + LoRA | 4 (cap) | 1,313 s | 328 s | Test CPU, native " \
           "paths, auto |" in text
    assert "llama-2L" not in text
    assert benchmarks.llm_training(tmp_path / "none") == benchmarks.MISSING.format("make reproduce")


def test_the_test_time_benchmark_times_make_test_in_a_fresh_clone_beside_the_checkout(tmp_path, monkeypatch):
    from lwadapter.bench import test_time

    root = tmp_path / "repo"
    root.mkdir()
    calls = []

    def run(args, cwd=None, env=None, **kwargs):
        calls.append((args, cwd, env))
        out = ("x\nFAILED tests/test_a.py::test_b - AssertionError\n======= 1 failed, 406 passed, 1 warning in 2756.14s "
               "(0:45:56) =======\n") if args == ["make", "test"] else "abc\n"
        return SimpleNamespace(stdout=out, stderr="", returncode=0)

    monkeypatch.setattr(test_time.subprocess, "run", run)
    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    row = test_time.time_make_test(root, tmp_path / "build" / "test_time.log")
    (clone_args, _, _), (make_args, cwd, env) = calls[1], calls[2]
    assert clone_args[:3] == ["git", "clone", "--quiet"] and Path(cwd).parent == tmp_path and cwd.name != "repo"
    assert make_args == ["make", "test"] and "PYTHONPATH" not in env and not cwd.exists()  # clone removed
    assert row["summary"] == "1 failed, 406 passed, 1 warning" and row["commit"] == "abc" and row["exit_code"] == 0
    log = (tmp_path / "build" / "test_time.log").read_text()
    assert test_time.failures(log) == "FAILED tests/test_a.py::test_b - AssertionError"
    assert test_time.pytest_summary("make: *** [setup] Error 1") == "no pytest summary (setup failed?)"
    pd.DataFrame([{**row, "cpu": "Test CPU", "date": "2026-12-07", "minutes": 47.2}]).to_csv(
        tmp_path / "test_time.csv", index=False)
    text = benchmarks.test_time(tmp_path)
    assert "| Test CPU | 2026-12-07 | abc | 47 | 1 failed, 406 passed, 1 warning |" in text
    assert benchmarks.test_time(tmp_path / "none") == ""
