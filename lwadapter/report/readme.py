"""The README's generated sections, each between its own markers so that no number in it is typed by hand: the
placement (readme_sections, also of results/benchmarks/README.md), the finding and the results tables from
results/<dataset>/ (report.benchmarks builds the step table and the benchmarks' sections)."""

import json
import re
from pathlib import Path

import pandas as pd

from lwadapter.models import ARCHS
from lwadapter.report import benchmarks
from lwadapter.report.evaluation_figures import method_name
from lwadapter.report.layer_figures import GROUND_TRUTH
from lwadapter.report.paper import DATASET_TITLES
from lwadapter.report.tables import markdown_table
from lwadapter.study.adapter_healing import FIRST_K
from lwadapter.runtime import RESULTS_DIR, ROOT

README = ROOT / "README.md"


def method_label(row) -> str:
    if row.strategy == "scratch":
        return f"{row.k} layers trained from scratch (study data)"
    if row.strategy == "pretrained":
        return f"{row.k} layers pretrained + adapted"
    if row.strategy == "full":
        return "full model"
    return method_name(row.criterion, row.strategy) + (f" + {row.adapter}" if row.healed else " (not healed)")


def seed_ranges(path, k: int) -> dict[tuple, tuple[float, float, float, int]]:
    """(model, criterion, strategy, adapter) -> (mean, min, max test quality kept in %, seeds) over the training seeds
    of notebook 06's seed_repeats.csv at k (runs healed under more than one seed only; none without the file)."""
    if not Path(path).exists():
        return {}
    repeats = pd.read_csv(path)
    return {key: (100 * f["quality_kept"].mean(), 100 * f["quality_kept"].min(), 100 * f["quality_kept"].max(),
                  f["seed"].nunique())
            for key, f in repeats[repeats["k"] == k].groupby(["model", "criterion", "strategy", "adapter"])
            if f["seed"].nunique() > 1}


# healed rows of the README's table, besides the best published ("position": SLMRec's first-k cut)
HEADLINE_CRITERIA = ["fisher_empirical", "random", "position"]


def headline(datasets, k: int = 8, results_dir=RESULTS_DIR) -> pd.DataFrame:
    """Test NDCG@10 and quality kept [95% CI] at k layers next to the full model, one column per dataset with a
    compact_eval.csv: Fisher, random, the first-k cut and the best published criterion (healing.json) healed, the
    controls of the same depth (from scratch on the study data, pretrained + adapted) and the from-scratch model as deep
    as the full one; measured / FLOP-ideal speed-up of the k-layer model. The LLM teachers' rows come first."""
    frames = []
    for dataset in datasets:
        path = results_dir / dataset / "compact_eval.csv"
        if not path.exists():
            continue
        ev = pd.read_csv(path)
        ev["healed"] = ev["healed"].astype(bool)
        healing = results_dir / dataset / "healing.json"
        best = json.loads(healing.read_text())["config"]["best_published"] if healing.exists() else {}
        method = list(zip(ev["model"], ev["criterion"], ev["strategy"]))
        shown = pd.Series([criterion in HEADLINE_CRITERIA or [criterion, strategy] == best.get(model)
                           for model, criterion, strategy in method], index=ev.index)
        controls = ev["strategy"].isin(["scratch", "pretrained"])
        rows = ev[(ev["strategy"] == "full") | ((ev["strategy"] == "scratch") & (ev["k"] == ev["k"].max()))
                  | ((ev["k"] == k) & ((ev["healed"] & shown) | controls))]
        cell = [f"{r.ndcg_10:.4f}" if r.strategy == "full" else
                f"{r.ndcg_10:.4f} ({100 * r.quality_kept:.1f}% [{100 * r.ci_low:.1f}, {100 * r.ci_high:.1f}])"
                for r in rows.rename(columns={"ndcg@10": "ndcg_10"}).itertuples()]
        speed = [f"{r.speedup:.2f}x / {r.ideal_speedup:.2f}x" if r.strategy not in ("scratch", "pretrained", "full")
                 else "" for r in rows.itertuples()]
        title, seeds = DATASET_TITLES.get(dataset, dataset), seed_ranges(results_dir / dataset / "seed_repeats.csv", k)
        frame = pd.DataFrame({"model": rows["model"].to_numpy(), "method": [method_label(r) for r in rows.itertuples()],
                              f"{title} NDCG@10 (kept [95% CI])": cell, f"{title} speed-up measured / ideal": speed})
        if seeds:
            frame[f"{title} kept over training seeds: mean (range)"] = [
                "{:.1f}% ({:.1f} to {:.1f}; {} seeds)".format(*seeds[key]) if key in seeds else ""
                for key in zip(rows["model"], rows["criterion"], rows["strategy"], rows["adapter"])]
        frames.append(frame)
    if not frames:
        return pd.DataFrame()
    table = pd.concat([f.set_index(["model", "method"]) for f in frames], axis=1).fillna("").reset_index()
    return table.sort_values("model", key=lambda models: models.isin(list(ARCHS)), kind="stable")\
        .reset_index(drop=True)  # the LLM teachers first, then the proxies (an architecture built here)


LLM_VARIANTS = ("-lora", "-lora-random-items", "-lora-own-items", "-scratch")  # an LLM's teacher, then its controls


def _base_order(name: str) -> tuple:
    """Sort key of a base model: the depth models by architecture, study-data models before pretrained ones, deepest
    first ('llama-32L' -> (0, 'llama', False, -32)); then the LLM rows by checkpoint, the teacher before its controls
    ('smollm2-135m-scratch' -> (1, 'smollm2-135m', False, 2)); baselines without either (most-popular) last."""
    found = re.fullmatch(r"(.+)-(\d+)L(-pretrained)?", name)
    if found:
        return 0, found[1], bool(found[3]), -int(found[2])
    for order, variant in sorted(enumerate(LLM_VARIANTS), key=lambda pair: -len(pair[1])):
        if name.endswith(variant):
            return 1, name.removesuffix(variant), False, order
    return 2, name, False, 0


def base_headline(datasets, results_dir=RESULTS_DIR) -> pd.DataFrame:
    """Test NDCG@10 of the models trained from scratch to convergence, masked / unmasked, and epochs run (what
    stopped them), one column pair per dataset with a base_models.csv."""
    frames = []
    for dataset in datasets:
        path = results_dir / dataset / "base_models.csv"
        if not path.exists():
            continue
        base = pd.read_csv(path)
        title = DATASET_TITLES.get(dataset, dataset)
        frames.append(pd.DataFrame({
            "model": base["model"],
            f"{title} NDCG@10 masked / unmasked": [f"{m:.4f} / {u:.4f}" for m, u in
                                                   zip(base["ndcg@10"], base["ndcg@10_unmasked"])],
            f"{title} epochs (stop)": ["" if n == 0 else f"{n} ({reason})"
                                       for n, reason in zip(base["epochs"], base["stop_reason"].fillna(""))]}))
    if not frames:
        return pd.DataFrame()
    table = pd.concat([f.set_index("model") for f in frames], axis=1).fillna("").reset_index()
    return table.sort_values("model", key=lambda names: names.map(_base_order), kind="stable").reset_index(drop=True)


FINDING_BESIDE = (("fisher_empirical", "top-k"), ("random", "top-k"), FIRST_K)  # healed methods the finding quotes


def finding(datasets, k: int = 8, results_dir=RESULTS_DIR) -> str:
    """The README's first sentence per teacher, the LLMs' before the proxies' (an architecture built here, e.g.
    `llama`), from compact_eval.csv and healing.csv: what its k-layer cuts keep before healing (the range over the
    selection methods), and after healing with LoRA + distillation the method chosen on validation users, empirical
    Fisher, random and SLMRec's first-k cut (quality kept on test, paired 95% interval), and the range of those healed
    under several training seeds (seed_repeats.csv)."""
    pct = lambda row: f"{100 * row.quality_kept:.1f}% [{100 * row.ci_low:.1f}, {100 * row.ci_high:.1f}]"  # noqa: E731
    sentences = []
    for dataset in datasets:
        path, healing_path = results_dir / dataset / "compact_eval.csv", results_dir / dataset / "healing.csv"
        if not (path.exists() and healing_path.exists()):
            continue
        ev, healing = pd.read_csv(path), pd.read_csv(healing_path)
        for model, frame in ev.groupby("model", sort=False):
            full = frame[frame["strategy"] == "full"].iloc[0]
            at_k = frame[(frame["k"] == k) & ~frame["criterion"].isin(["none", *GROUND_TRUTH])]
            cut = at_k[~at_k["healed"]].sort_values("quality_kept")
            healed = at_k[at_k["healed"] & (at_k["adapter"] == "lora")].set_index(["criterion", "strategy"])
            runs = healing[(healing["model"] == model) & (healing["k"] == k) & (healing["adapter"] == "lora")
                           & ~healing["criterion"].isin(GROUND_TRUTH)]
            if cut.empty or runs.empty:
                continue
            chosen = runs.sort_values("best_valid_ndcg@10", ascending=False, kind="stable").iloc[0]
            best = healed.loc[(chosen["criterion"], chosen["strategy"])]
            said = [f"{method_name(c, s)} {pct(healed.loc[(c, s)])}" for c, s in FINDING_BESIDE
                    if (c, s) in healed.index and (c, s) != (chosen["criterion"], chosen["strategy"])]
            low, high = cut.iloc[0], cut.iloc[-1]
            seeds = seed_ranges(results_dir / dataset / "seed_repeats.csv", k)
            over = [(*seeds[model, c, s, "lora"], method_name(c, s)) for c, s in
                    dict.fromkeys([(chosen["criterion"], chosen["strategy"]), *FINDING_BESIDE])
                    if (model, c, s, "lora") in seeds]
            teacher = (f"the {full.k}-layer proxy teacher `{model}` (" if model in ARCHS else
                       f"the LoRA-tuned LLM `{model}` ({full.k} layers, ")
            sentences.append((model in ARCHS,
                f"On {DATASET_TITLES.get(dataset, dataset)}, {teacher}test NDCG@10 "
                f"{full['ndcg@10']:.4f}) cut to {k} layers keeps {100 * low.quality_kept:.0f}% "
                f"({method_name(low.criterion, low.strategy)}) to {100 * high.quality_kept:.0f}% "
                f"({method_name(high.criterion, high.strategy)}) of its quality before healing; healed with LoRA + "
                f"distillation, the method chosen on validation users, {method_name(*best.name)}, keeps {pct(best)}"
                + (f" (beside it: {'; '.join(said)})" if said else "") + "."
                + (f" Healed under {over[0][3]} training seeds, test quality kept ranges: "
                   + "; ".join(f"{name} {least:.1f}% to {most:.1f}%" for _, least, most, _, name in over) + "."
                   if over else "")))
    return "\n\n".join(text for _, text in sorted(sentences, key=lambda pair: pair[0]))


def markers(name: str) -> tuple[str, str]:
    """The lines around the README's generated section `name`."""
    return f"<!-- {name}:start (generated by notebooks/07_paper_figures.ipynb) -->", f"<!-- {name}:end -->"


def readme_sections(sections: dict[str, str], readme=README) -> str:
    """README's text with each section's text (name -> text) placed between its markers."""
    current = readme.read_text()
    for name, text in sections.items():
        start, end = markers(name)
        if current.count(start) != 1 or current.count(end) != 1 or current.index(start) > current.index(end):
            raise ValueError(f"{readme} must hold the lines {start!r} and {end!r} once each, in that order: "
                             f"put them where the generated {name} section belongs")
        head, rest = current.split(start)
        current = f"{head}{start}\n{text.strip()}\n{end}{rest.split(end, 1)[1]}"
    return current


KEY_FIGURE_CAPTION = ("Which criterion, and how many layers can go? Left: quality kept (test NDCG@10 of the compact "
                      "model / the full teacher's) before healing against decoder layers kept, one line per selection "
                      "method, random in black. Right: the compact models healed with LoRA rank 8 + distillation at k, "
                      "sorted, each with its paired 95% bootstrap interval; in grey the controls of the same depth and "
                      "SLMRec's first-k cut fine-tuned without the teacher; a tick at each training seed of the methods "
                      "healed again under other seeds.")


def readme_results(datasets, k: int = 8, results_dir=RESULTS_DIR, figure: str | None = None) -> str:
    """The README's generated results section: the headline table (and the key figure, a path under paper/)."""
    table = headline(datasets, k, results_dir)
    if table.empty:
        return "No compact_eval.csv in results/ yet: run notebooks 01-06 (`make reproduce`)."
    text = (f"Test split, full ranking, history masked. The full model is the teacher in the model column: `llama` the "
            "32-layer proxy pretrained on the corpus and adapted, an LLM's checkpoint name (`smollm2-135m`) that LLM "
            "LoRA-tuned as a recommender and merged; quality kept = compact / full NDCG@10 on the same users "
            f"(95% paired bootstrap interval); k = {k} of the full model's layers; speed-up of the {k}-layer model "
            "on one CPU batch, measured against the FLOP ratio (`results/<dataset>/compact_eval.csv`); where the "
            "headline methods were healed again under other training seeds, their test quality kept over the seeds "
            "(`results/<dataset>/seed_repeats.csv`).\n\n"
            + markdown_table(table))
    base = base_headline(datasets, results_dir)
    if not base.empty:
        text += ("\n\nEvery model trained on every training interaction until validation NDCG@10 stopped improving "
                 "(patience; the epoch cap never binds when the column says `patience`): from scratch on the study "
                 "data, or (`-pretrained`) first on the corpus, then adapted (epochs: the adaptation's); "
                 "`<checkpoint>-lora`: a pretrained LLM, its body frozen, a LoRA adapter and the item tables trained "
                 "(on Amazon Electronics, whose items have no titles, the item rows are the 2-layer model's item rows, "
                 "fixed, times a trained projection: E4SRec's item codes; `-own-items`: item tables of its own "
                 "instead; `-random-items`: from random item rows instead of the titles'); `<checkpoint>-scratch`: the "
                 "same architecture from random weights, every weight trained. Test NDCG@10 with "
                 "the user's history masked (the study's protocol) and unmasked (the protocol of the common "
                 "sequential-recommendation libraries) (`results/<dataset>/base_models.csv`):\n\n"
                 + markdown_table(base))
    return text + (f"\n\n![key figure](paper/figures/{figure})\n\n*{KEY_FIGURE_CAPTION}*" if figure else "")


def sections(datasets, k: int = 8, figure: str | None = None) -> dict[str, str]:
    """Every generated section of the README by marker name: the finding, the results (with the key figure under
    paper/figures/) and the time per notebook (the other benchmarks: benchmarks.benchmark_sections)."""
    return {"finding": finding(datasets, k), "results": readme_results(datasets, k, figure=figure),
            "step-times": benchmarks.step_times()}
