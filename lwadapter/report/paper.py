"""Paper artifacts from results/ files only: booktabs LaTeX tables and a macro file of every quoted number."""

import json

import pandas as pd

from lwadapter import score_ranks
from lwadapter.report import evaluation_figures, layer_figures, training_figures
from lwadapter.report.latex import TABLES_DIR, escape, write_table
from lwadapter.report.macros import (NAMED_VARIANTS, corpus_time_macros, fmt, kept_macros, macro_name,
                                     overlap_macros, paired_macros, seed_macros, versus_macros, write_macros)
from lwadapter.report.tables import (agreement_table, base_table, budget_table, depth_share_table, read_results,
                                     scenario_table, selection_table, study_data_models)
from lwadapter.report.noise import write_noise
from lwadapter.study.evaluation import noise_table
from lwadapter.runtime import RESULTS_DIR, RUNS_DIR

DATASET_TITLES = {"ml-100k": "MovieLens-100K", "amazon-electronics": "Amazon Electronics"}


def reach_table(reach: pd.DataFrame) -> pd.DataFrame:
    """Per model, k and route, the least training compute that reached the target (TFLOPs; NaN: never reached)."""
    best = reach.assign(**{"TFLOPs": reach["flops_to_target"] / 1e12,
                           "+ teacher amortised": reach["flops_to_target_teacher_amortised"] / 1e12})
    best = best.sort_values("TFLOPs", na_position="last").drop_duplicates(["model", "k", "route"])
    return best[["model", "k", "route", "method", "target", "best_valid_ndcg@10", "TFLOPs", "+ teacher amortised"]]\
        .sort_values(["model", "k", "route"]).reset_index(drop=True)


def dataset_macros(dataset: str, results: dict[str, pd.DataFrame], agree: pd.DataFrame | None,
                   shares: pd.DataFrame | None, k: int, best_published: dict | None = None) -> dict[str, str]:
    """Every number the text quotes, named <Dataset><Model><Quantity>; `best_published`: arch -> (criterion,
    strategy) chosen on validation by notebook 05 (results/<dataset>/healing.json)."""
    ds = macro_name(dataset)
    out = {}
    if "base_models" in results:
        base = results["base_models"].set_index("model")
        for model, value in base["ndcg@10"].items():
            out[macro_name(ds, model, "ndcg")] = fmt(value)
            if "ndcg@10_unmasked" in base:
                out[macro_name(ds, model, "unmasked ndcg")] = fmt(base.loc[model, "ndcg@10_unmasked"])
        if "stop_reason" in base:
            trained = base[base["layers"] > 0]
            pretrained = trained[trained["route"] == "pretrained"]
            runs = pd.concat([trained["stop_reason"], pretrained["pretrain_stop_reason"]])
            out[macro_name(ds, "stopped by patience")] = f"{(runs == 'patience').sum()}"
            out[macro_name(ds, "trained models")] = f"{len(runs)}"
            out[macro_name(ds, "label share")] = f"{100 * trained['label_share'].min():.0f}\\%"
            for model, row in pretrained.iterrows():
                for other in study_data_models(base[base["arch"] == row["arch"]]).index:
                    out.update(overlap_macros(macro_name(ds, model, "vs", other), row, base.loc[other]))
            for arch, frame in study_data_models(base).groupby("arch"):
                by_depth = frame.set_index("layers")
                out[macro_name(ds, arch, "best depth")] = f"{by_depth['ndcg@10'].idxmax()}"
                out.update(overlap_macros(macro_name(ds, arch, "deepest vs shallowest"),
                                          by_depth.loc[by_depth.index.max()], by_depth.loc[by_depth.index.min()]))
    for _, row in results.get("base_tests", pd.DataFrame(columns=["model", "versus"])).iterrows():
        out.update(paired_macros(macro_name(ds, row["model"], "vs", row["versus"], "paired"), row))
    if agree is not None:
        for model, frame in agree.groupby("model"):
            frame = frame[frame["criterion"] != "removal_ndcg@10"].sort_values("spearman", ascending=False)
            best = frame.iloc[0]
            out[macro_name(ds, model, "best agreement criterion")] = escape(best["criterion"])
            out[macro_name(ds, model, "best agreement spearman")] = fmt(best["spearman"], 2)
            fisher = frame[frame["criterion"] == "fisher_empirical"]
            if len(fisher):
                out[macro_name(ds, model, "fisher spearman")] = fmt(fisher["spearman"].iloc[0], 2)
    if shares is not None:
        for r in shares[shares["criterion"] == "fisher_empirical"].itertuples():
            for band in ("lower", "middle", "upper"):
                out[macro_name(ds, r.model, "fisher", band, "share")] = f"{100 * getattr(r, band):.0f}\\%"
    if "compact_eval" in results:
        ev = results["compact_eval"].assign(healed=lambda f: f["healed"].astype(bool))
        for model, frame in ev[ev["k"] == k].groupby("model"):
            named = dict(NAMED_VARIANTS)
            if model in (best_published or {}):
                named["best published healed"] = (*best_published[model], True, "lora")
                out[macro_name(ds, model, "best published")] = escape(" / ".join(best_published[model]))
            rows = {label: frame[(frame["criterion"] == criterion) & (frame["strategy"] == strategy)
                                 & (frame["healed"] == healed) & (frame["adapter"] == adapter)]
                    for label, (criterion, strategy, healed, adapter) in named.items()}
            for label, row in rows.items():
                if len(row):
                    out.update(kept_macros(macro_name(ds, model, label), row.iloc[0]))
            if "versus_controls" in results:
                out.update(versus_macros(macro_name(ds, model, "fisher healed"), results["versus_controls"], model, k,
                                         *named["fisher healed"][:2]))
            if "healing" in results:  # the healed method with the best validation NDCG@10 (test plays no part)
                heal = results["healing"]
                heal = heal[(heal["model"] == model) & (heal["k"] == k) & (heal["adapter"] == "lora")
                            & ~heal["criterion"].str.startswith("removal")]  # a criterion, not the ground truth
                if len(heal):
                    pick = heal.sort_values("best_valid_ndcg@10", ascending=False, kind="stable").iloc[0]
                    best = frame[(frame["criterion"] == pick["criterion"]) & (frame["strategy"] == pick["strategy"])
                                 & frame["healed"] & (frame["adapter"] == "lora")].iloc[0]
                    out[macro_name(ds, model, "best healed")] = escape(f"{pick['criterion']} / {pick['strategy']}")
                    out.update(kept_macros(macro_name(ds, model, "best healed"), best))
                    if "versus_controls" in results:
                        out.update(versus_macros(macro_name(ds, model, "best healed"), results["versus_controls"],
                                                 model, k, pick["criterion"], pick["strategy"]))
            cut = frame[~frame["strategy"].isin(["full", "scratch", "pretrained"])
                        & (frame["adapter"] == "none")]  # plain k layers cut from the full model
            if len(cut) and pd.notna(cut["speedup"].iloc[0]):
                out[macro_name(ds, model, "measured speedup")] = f"{cut['speedup'].iloc[0]:.2f}"
                out[macro_name(ds, model, "ideal speedup")] = f"{cut['ideal_speedup'].iloc[0]:.2f}"
                out[macro_name(ds, model, "measured speedup share")] = \
                    f"{100 * cut['speedup'].iloc[0] / cut['ideal_speedup'].iloc[0]:.0f}\\%"
        for model, value in ev[ev["strategy"] == "full"].set_index("model")["ndcg@10"].items():
            out[macro_name(ds, model, "full ndcg")] = fmt(value, 4)
    if "healing" in results and "valid_ndcg@10_first_epoch" in results["healing"]:
        budget = budget_table(results["healing"], k)
        budget = budget[~budget["method"].str.startswith("removal")]  # criteria, not the ground truths
        for model, frame in budget.groupby("model"):
            for column in frame.columns[2:]:
                spread = frame[column].max() - frame[column].min()
                out[macro_name(ds, model, column.replace("lora-r1", "lora r one"), "spread")] = fmt(spread, 4)
    if "seed_repeats" in results:
        out.update(seed_macros(ds, results["seed_repeats"], k, best_published))
    if "criteria_tests" in results and len(results["criteria_tests"]):
        for (model, adapter), frame in results["criteria_tests"].groupby(["model", "adapter"]):
            out[macro_name(ds, model, adapter, "significant pairs")] = \
                f"{int(frame['significant'].sum())} of {len(frame)}"
    if "compute_to_target" in results:
        reach = reach_table(results["compute_to_target"])
        tflops = lambda value: "never" if pd.isna(value) else fmt(value, 2)  # noqa: E731
        for _, r in reach[reach["k"] == k].iterrows():
            out[macro_name(ds, r["model"], r["route"], "tflops to target")] = tflops(r["TFLOPs"])
            if r["route"] == "prune + heal":
                out[macro_name(ds, r["model"], "prune heal amortised tflops to target")] = \
                    tflops(r["+ teacher amortised"])
        at_k = reach[reach["k"] == k].set_index(["model", "route"])
        for model in reach["model"].unique():
            if (model, "prune + heal") in at_k.index and (model, "pretrained + adapted") in at_k.index:
                control, heal = at_k.loc[(model, "pretrained + adapted")], at_k.loc[(model, "prune + heal")]
                for name, cost in (("", heal["TFLOPs"]), ("amortised", heal["+ teacher amortised"])):
                    ratio = control["TFLOPs"] / cost
                    out[macro_name(ds, model, "compute ratio to target", name)] = \
                        "--" if pd.isna(ratio) else f"{ratio:.2f}"
    return out


def build(dataset: str, results_dir, k: int = 8, criteria=None, tables_dir=TABLES_DIR) -> tuple[dict[str, str], dict]:
    """All tables and figures of one dataset from its results folder; returns (macros, figures by name).

    Tables go to <tables_dir>/<dataset>_*.tex; figures are returned for the caller to show and save.
    """
    results = read_results(results_dir / dataset)
    title, figures, agree, shares = DATASET_TITLES.get(dataset, dataset), {}, None, None
    if "base_models" in results:
        write_table(f"{dataset}_base_models", base_table(results["base_models"]),
                    f"{title}: models trained to convergence from scratch on the study data, pretrained on the "
                    "corpus then adapted, and most-popular; test split (full ranking; history masked, 95\\% "
                    "bootstrap interval, and unmasked); epochs run, restored best epoch, what stopped training and "
                    "analytic training FLOPs, pretraining separately.", folder=tables_dir)
        figures["depth"] = training_figures.depth_curve(study_data_models(results["base_models"]))
    if "layer_scores" in results:
        agree = score_ranks.agreement_by_model(results["layer_scores"])
        write_table(f"{dataset}_agreement", agreement_table(agree),
                    f"{title}: rank agreement of each criterion with the measured removal loss.", digits=2, folder=tables_dir)
        figures["importance"] = layer_figures.importance_heatmap(results["layer_scores"])
        figures["agreement"] = layer_figures.agreement_bars(agree)
    if "selection" in results:
        ks = sorted(set(results["selection"]["k"]) - set(results["selection"].query("strategy == 'full'")["k"]))
        write_table(f"{dataset}_depth_shares", depth_share_table({n: layer_figures.kept_shares(results["selection"], n)
                                                                  for n in ks}),
                    f"{title}: where the kept layers lie, per method and k: percent of the kept layers in the lower / "
                    "middle / upper third of the full model.", folder=tables_dir)
        shares = layer_figures.kept_shares(results["selection"], k)
        write_table(f"{dataset}_selection_k{k}", selection_table(results["selection"], shares, k),
                    f"{title}: compact models with {k} layers before healing (test NDCG@10, HR@10) and the share "
                    "of kept layers in the lower, middle and upper third.", folder=tables_dir)
        shown = criteria or sorted(results["selection"]["criterion"].unique())
        figures["quality_vs_k"] = layer_figures.quality_vs_k(results["selection"], results.get("base_models"), shown)
        figures["kept_positions"] = layer_figures.kept_positions(shares)
    if "compact_eval" in results:
        ev = results["compact_eval"]
        cols = ["model", "criterion", "strategy", "k", "healed", "adapter", "ndcg@10", "quality_kept", "ci_low",
                "ci_high", "ideal_speedup", "speedup"]
        write_table(f"{dataset}_compact_eval", ev[ev["k"] == k][cols],
                    f"{title}: compact models with {k} layers, before and after healing; quality kept = compact / "
                    "full NDCG@10 with a paired bootstrap interval; measured and FLOP-ideal speed-up.", folder=tables_dir)
        figures["healing"] = evaluation_figures.healing_effect(ev[ev["k"] == k])
        figures["key"] = evaluation_figures.key_figure(ev, k, repeats=results.get("seed_repeats"))
        figures["speedup"] = evaluation_figures.speedups(ev)
        if "base_models" in results:
            from lwadapter.compare import training_compute

            healing = results.get("healing")
            if healing is not None:
                healing = healing.assign(kept_layers=healing["kept_layers"].astype(str))
            routes = training_compute(ev.assign(healed=ev["healed"].astype(bool),
                                                kept_layers=ev["kept_layers"].fillna("").astype(str)),
                                      results["base_models"], healing)
            figures["quality_vs_compute"] = evaluation_figures.quality_vs_compute(routes, ev)
    if "healing" in results and "valid_ndcg@10_first_epoch" in results["healing"]:
        write_table(f"{dataset}_healing_budget", budget_table(results["healing"], k),
                    f"{title}: validation NDCG@10 of every method healed at k = {k}, per adapter (LoRA rank 8; "
                    "lora-r1: rank 1), after no healing, after one epoch and converged.", digits=4, folder=tables_dir)
    if "seed_repeats" in results and "compact_eval" in results and results["seed_repeats"]["seed"].nunique() > 1:
        noise = noise_table(results["seed_repeats"], results["compact_eval"].assign(
            healed=results["compact_eval"]["healed"].astype(bool)))
        write_table(f"{dataset}_training_noise", noise.drop(columns=["k", "adapter"]),
                    f"{title}: the headline methods healed with LoRA rank 8 + distillation at k = {k} under several "
                    "training seeds (the same kept layers): test quality kept over the seeds (mean, standard "
                    "deviation, extremes) beside the half-width of its 95\\% bootstrap interval over users, and the "
                    "mean difference in NDCG@10 from random's and from the first-k cut's run of the same seed (and "
                    "the smallest over the seeds).", digits=4, folder=tables_dir)
    if "compute_to_target" in results:
        write_table(f"{dataset}_compute_to_target", reach_table(results["compute_to_target"]),
                    f"{title}: training compute each route needs to reach 95\\% of the teacher's validation "
                    "NDCG@10 (the cheapest method of the route; -- : never reached), healing alone and with the "
                    "teacher's training amortised over the k compressed from it.", digits=4, folder=tables_dir)
    if "criteria_tests" in results and len(results["criteria_tests"]):
        tests = results["criteria_tests"]
        shown = ["model", "adapter", "a", "b", "mean_diff", "ci_low", "ci_high", "p_value", "p_holm", "significant"]
        write_table(f"{dataset}_criteria_tests", tests[shown].astype({"significant": str}),
                    f"{title}: criteria healed at k = {k}, paired on the test users: difference of mean NDCG@10 "
                    "(a - b), bootstrap interval, permutation p-value and Holm-adjusted p-value.", digits=4,
                    folder=tables_dir)
    if "scenarios" in results:
        write_table(f"{dataset}_scenarios", scenario_table(results["scenarios"]),
                    f"{title}: NDCG@10 by scenario: all test users, history-length tertiles, cold start (users with "
                    "few training items; every user's history cut to its last items), and item similarity against "
                    "co-occurrence (by input embeddings or next-item predictions)" + (
                        "; cold-start items: test items held out of training, ranked among all items and among the "
                        "held-out ones by the models trained without them"
                        if (results["scenarios"]["scenario"] == "cold-start items").any() else "") + ".",
                    folder=tables_dir)
        figures["scenarios"] = evaluation_figures.scenario_bars(results["scenarios"])
    healing, corpus = results_dir / dataset / "healing.json", results_dir / dataset / "corpus_stats.json"
    best = json.loads(healing.read_text())["config"]["best_published"] if healing.exists() else None
    time = corpus_time_macros(macro_name(dataset), json.loads(corpus.read_text())["time"]) if corpus.exists() else {}
    return dataset_macros(dataset, results, agree, shares, k, best) | time, figures


def build_all(datasets, k: int = 8, criteria=None, results_dir=RESULTS_DIR,
              tables_dir=TABLES_DIR) -> tuple[dict[str, str], dict]:
    """build() for every dataset in `datasets` whose results folder exists, then <tables_dir>/macros.tex; returns
    (macros, figures by <dataset>_<name>)."""
    macros, figures = {}, {}
    for dataset in datasets:
        if (results_dir / dataset).is_dir():
            values, figs = build(dataset, results_dir, k, criteria, tables_dir)
            macros.update(values | write_noise(dataset, DATASET_TITLES.get(dataset, dataset), RUNS_DIR / "ci" / dataset,
                                               tables_dir))
            figures.update({f"{dataset}_{name}": fig for name, fig in figs.items()})
    write_macros(macros, tables_dir / "macros.tex")
    return macros, figures
