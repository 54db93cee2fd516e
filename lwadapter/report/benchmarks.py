"""The benchmark sections from the files the benchmarks and the runner write: LLM training times, LLM speed per lever,
training throughput per lever, the recipe search and the scale benchmark (results/benchmarks/README.md), and each
notebook's wall time (the README's step table). Every section names the CPU it was measured on."""

import json

import pandas as pd

from lwadapter.report.tables import markdown_table
from lwadapter.runtime import RESULTS_DIR, RUNS_DIR

BENCHMARKS_DIR = RESULTS_DIR / "benchmarks"
README = BENCHMARKS_DIR / "README.md"
MISSING = "not measured yet: run `{}`."
README_WRITER = "07_paper_figures"


def _cpu(info: dict) -> str:
    return info.get("cpu") or (info.get("numerics") or {}).get("cpu", "a CPU not recorded")


def llm_speed(folder=BENCHMARKS_DIR) -> str:
    """Tokens/s of SmolLM2 and Gemma-3 per cumulative speed lever, healing before -> after, compact speed-up: one
    paragraph per machine measured (llm_speed*.csv, e.g. llm_speed_avx2.csv from `--out llm_speed_avx2`)."""
    paths = sorted(folder.glob("llm_speed*.csv"))
    if not paths:
        return MISSING.format("make benchmark-llm")
    return "\n\n".join(_llm_speed(path) for path in paths)


def _llm_speed(path) -> str:
    table, info = pd.read_csv(path), json.loads(path.with_suffix(".json").read_text())["config"]
    matmul = table[table["model"] == "machine"].set_index("lever")["achieved_tflops"]
    models = [m for m in table["model"].unique() if m != "machine"]
    rows = table[table["stage"].isin(["fine-tuning step", "evaluation pass"])]
    cells = rows.pivot_table(index="lever", columns=["model", "stage"], values="tokens_per_s", sort=False)
    levers = list(dict.fromkeys(rows["lever"]))
    out = pd.DataFrame({"lever": levers})
    for model in models:
        for stage in ("fine-tuning step", "evaluation pass"):
            out[f"{model} {stage}"] = [f"{cells.loc[lever, (model, stage)]:.1f}" for lever in levers]
    ratio = {col: float(out[col].iloc[-1]) / float(out[col].iloc[0]) for col in out.columns[1:]}
    out.loc[len(out)] = ["after / before", *[f"{ratio[col]:.2f}x" for col in out.columns[1:]]]
    extra = []
    for model in models:
        healing = table[(table["model"] == model) & table["stage"].str.startswith("healing")]
        memoised = healing["lever"].str.contains("memoised")
        heal, memo = healing[~memoised]["tokens_per_s"].to_numpy(), healing[memoised]["tokens_per_s"].to_numpy()
        compact = table[(table["model"] == model) & table["stage"].str.startswith("compact")].iloc[0]
        extra.append(f"{model}: healing step {heal[0]:.0f} -> {heal[-1]:.0f} tokens/s ({heal[-1] / heal[0]:.2f}x)"
                     + "".join(f", {m:.0f} with the teacher's logits memoised (every epoch after the first; "
                               f"{m / heal[-1]:.2f}x)" for m in memo) +
                     f"; {compact['stage']}: {compact['speedup']:.2f}x measured / {compact['ideal_speedup']:.2f}x "
                     "FLOP-ideal")
    padding = rows.groupby("lever", sort=False)["padding_share"].first()
    return (f"Measured on {_cpu(info)}, {info['threads']} threads (`{info['command'].strip()}`): "
            f"{info.get('steps', 2)} batches of 32 windows of the {info['dataset']} sample per lever, "
            f"median of {info.get('repeats', 1)} passes; non-padding tokens per second, levers cumulative; padding "
            f"share of the timed batches {padding.iloc[0]:.1%} before, {padding.iloc[-1]:.1%} after. A "
            f"2048x576x1536 matmul runs at {matmul['float32']:.3f} TFLOP/s in float32 and "
            f"{matmul['bfloat16']:.3f} in bf16 here.\n\n" + markdown_table(out) + "\n\n" + "; ".join(extra) + ".")


def throughput(folder=BENCHMARKS_DIR) -> str:
    """Training throughput of the proxies per lever at each depth, as a ratio to the landed loop."""
    path = folder / "training_throughput.csv"
    if not path.exists():
        return MISSING.format("make benchmark-training")
    table, info = pd.read_csv(path), json.loads(path.with_suffix(".json").read_text())["config"]
    spread = "speedup_low" in table
    table["cell"] = [f"{r.speedup_vs_landed:.2f}x" + (f" ({r.speedup_low:.2f}-{r.speedup_high:.2f})" if spread else "")
                     for r in table.itertuples()]
    wide = table.pivot_table(index="lever", columns="layers", values="cell", aggfunc="first", sort=False)
    wide.columns = [f"{n} layers" for n in wide.columns]
    repeats = int(table["repeats"].iloc[0]) if "repeats" in table else 1
    seconds = table.groupby("layers")["epoch_seconds_all_users"].first()
    return (f"Measured on {_cpu(info)} (`{info['command'].strip()}`): one epoch of every {info['dataset']} user per "
            f"depth and lever, {repeats} pass(es); tokens per second against the landed loop"
            + (" (median, lowest-highest over the passes)" if spread else "") + ". The landed loop's epoch takes "
            + ", ".join(f"{s:.1f} s at {n} layers" for n, s in seconds.items()) + ".\n\n"
            + markdown_table(wide.reset_index()))


def tuning(results_dir=RESULTS_DIR, dataset: str = "ml-100k") -> str:
    """Every recipe of the proxies' search on validation users (bench.tuning)."""
    paths = sorted((results_dir / dataset).glob("tuning_llama-*L.csv"))
    if not paths:
        return MISSING.format("python -m lwadapter.bench.tuning")
    table = pd.concat([pd.read_csv(p) for p in paths])
    shown = table[["layers", "lr", "dropout", "valid_ndcg@10", "epochs", "stop_reason", "train_seconds"]]
    return (f"`results/{dataset}/{paths[0].name}`, validation users only:\n\n"
            + markdown_table(shown.round({"valid_ndcg@10": 4, "train_seconds": 0})))


def scale(folder=BENCHMARKS_DIR) -> str:
    """Memory and time per criterion of random Llama-3-shaped models at 10M-1B, the 8B extrapolation."""
    path = folder / "scale.csv"
    if not path.exists():
        return MISSING.format("make scale")
    table, info = pd.read_csv(path), json.loads(path.with_suffix(".json").read_text())
    measured = table[table["kind"] == "measured"]
    worst = measured[measured["measurement"].isin(["taylor", "grad_norm", "fisher_empirical", "fisher_true"])]
    peak = worst.groupby("size", sort=False)["peak_over_weights"].max()
    per_seq = measured.pivot_table(index="measurement", columns="size", values="seconds_per_sequence", sort=False)
    speed = measured[measured["measurement"] == "speed"].set_index("size")
    sizes = list(peak.index)
    extrapolated = table[table["kind"] == "extrapolated"].set_index("measurement")
    out = pd.DataFrame({"": ["peak memory above the weights, worst criterion", "Fisher (empirical) s per sequence",
                             "Taylor s per sequence", "8-of-32 layers speed-up, measured / FLOP-ideal"]})
    for size in sizes:
        out[size] = [f"{peak[size]:.1f}x", f"{per_seq.loc['fisher_empirical', size]:.2f}",
                     f"{per_seq.loc['taylor', size]:.2f}",
                     f"{speed.loc[size, 'speedup']:.2f} / {speed.loc[size, 'ideal_speedup']:.2f}"]
    out["8B, extrapolated (GPU minutes per 1,024 sequences)"] = [
        "", f"{extrapolated.loc['fisher_empirical', 'gpu_minutes_1024']:.1f}",
        f"{extrapolated.loc['taylor', 'gpu_minutes_1024']:.1f}", ""]
    return (f"Random 32-layer Llama-3-shaped models in {info['config']['dtype']}, {info['config']['sequences']} "
            f"calibration sequences of {info['config']['length']} tokens, {info['config']['threads']} thread; the 8B "
            f"column extrapolates a log-log line and assumes a GPU at {info['assumed_gpu_tflops']:.0f} TFLOP/s, "
            f"{info['gpu_cpu_ratio']:.0f}x this CPU's matmul rate:\n\n" + markdown_table(out))


def step_times(runs=(("ci", RUNS_DIR / "ci"), ("study", RESULTS_DIR)), datasets=("ml-100k", "amazon-electronics")) -> str:
    """Each pipeline notebook's latest wall time per parameter set and dataset (notebook_seconds.csv, written by the
    runner); notebook 07, which writes the README, is left out."""
    frames = []
    for name, folder in runs:
        for dataset in datasets:
            path = folder / dataset / "notebook_seconds.csv"
            if path.exists():
                frames.append(pd.read_csv(path).assign(run=f"{name} set, {dataset}"))
    table = pd.concat(frames) if frames else pd.DataFrame({"notebook": []})
    table = table[table["notebook"] != README_WRITER]  # it writes this table, so its own time lands after it
    if table.empty:
        return MISSING.format("python -m lwadapter.runner")
    wide = table.pivot_table(index="notebook", columns="run", values="seconds", aggfunc="first", sort=False)
    wide.loc["total"] = wide.sum()
    wide = wide.map(lambda s: "" if pd.isna(s) else f"{s:,.0f} s")
    machines = table.groupby("run").agg(cpu=("cpu", "first"), numerics=("numerics", "first"), date=("date", "max"))
    where = "; ".join(f"{run}: {r.cpu}, {r.numerics} paths, {r.date}" for run, r in machines.iterrows())
    return f"Wall time per notebook, 2 threads ({where}):\n\n" + markdown_table(wide.reset_index()) + test_time()


def test_time(folder=BENCHMARKS_DIR) -> str:
    """`make test` on a fresh clone per CPU and commit (test_time.csv of lwadapter.bench.test_time), or nothing."""
    path = folder / "test_time.csv"
    if not path.exists():
        return ""
    table = pd.read_csv(path)
    rows = pd.DataFrame({"CPU": table["cpu"], "date": table["date"], "commit": table["commit"],
                         "minutes": table["minutes"].map(lambda m: f"{m:.0f}"), "pytest": table["summary"]})
    return ("\n\n`make test` on a fresh clone, every model trained from an empty cache (what CI runs, 2 threads; "
            "`make benchmark-test`):\n\n" + markdown_table(rows))


def llm_training(results_dir=RESULTS_DIR, datasets=("ml-100k", "amazon-electronics")) -> str:
    """Training wall time of each LLM row of the study set's base_models.csv: the checkpoint's own record (validation
    epochs included), whatever the cache held when notebook 02 ran, with the CPU, numeric paths and precision."""
    rows = []
    for dataset in datasets:
        path = results_dir / dataset / "base_models.csv"
        if not path.exists():
            continue
        info = json.loads(path.with_suffix(".json").read_text())
        llms = pd.read_csv(path).set_index("model").loc[info["config"].get("llm_models", [])]
        precision = info["config"].get("llm_recipes", {}).get("llm_precision", "float32")
        rows += [{"dataset": dataset, "model": name, "route": row.route, "epochs (stop)":
                  f"{row.epochs} ({row.stop_reason})", "training": f"{row.train_seconds:,.0f} s",
                  "per epoch": f"{row.train_seconds / row.epochs:,.0f} s",
                  "where": f"{_cpu(info)}, {info['numerics']['choice']} paths, {precision}"}
                 for name, row in llms.iterrows()]
    if not rows:
        return MISSING.format("make reproduce")
    return ("Training of each pretrained LLM and its controls in the study set (notebook 02, part 3; the checkpoint's "
            "record, so it holds when the model came from the cache), 2 threads; precision `auto` is bf16 autocast where the CPU "
            "has AMX, float32 elsewhere:\n\n" + markdown_table(pd.DataFrame(rows)))


SECTIONS = {"llm-speed": llm_speed, "throughput": throughput, "tuning": tuning, "scale": scale,
            "llm-training": llm_training}


def benchmark_sections() -> dict[str, str]:
    """name -> text of every section of results/benchmarks/README.md."""
    return {name: build() for name, build in SECTIONS.items()}
