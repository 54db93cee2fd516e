"""Paper artifacts: LaTeX tables, macros, the README's results section, and that the committed ones are exactly
what notebook 07 regenerates from the committed results/."""

import json
import re

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from lwadapter.report import benchmarks, latex, layer_figures, paper, readme, tables
from lwadapter.runner import notebook_parameters
from lwadapter.report import macros as lwmacros
from lwadapter.runtime import RESULTS_DIR, ROOT

NOTEBOOK_07 = ROOT / "notebooks" / "07_paper_figures.ipynb"


def test_latex_table_escapes_and_formats():
    frame = pd.DataFrame({"model": ["a_b"], "ndcg@10": [0.12345], "ci": [float("nan")]})
    text = latex.latex_table(frame, "Caption 95\\%", "tab:x", digits=2)
    assert r"a\_b & 0.12 & -- \\" in text and r"\begin{tabular}{lrr}" in text and r"\toprule" in text
    assert r"\begin{adjustbox}{max width=\linewidth}" in text


def test_macro_names_are_letters_only():
    assert lwmacros.macro_name("ml-100k", "qwen3", "fisher spearman") == "MlHundredKQwenThreeFisherSpearman"
    assert lwmacros.macro_name("smollm2-135m-lora", "ndcg") == "SmollmTwoOneThreeFiveMLoraNdcg"
    with pytest.raises(ValueError, match="letters only"):
        lwmacros.write_macros({"Bad1": "x"})


def test_readme_sections_replace_only_between_their_markers(tmp_path):
    (start, end), (start2, end2) = readme.markers("results"), readme.markers("scale")
    path = tmp_path / "README.md"
    path.write_text(f"head\n{start}\nold\n{end}\nmiddle\n{start2}\nold 2\n{end2}\ntail\n")
    assert readme.readme_sections({"results": "new", "scale": "new 2"}, path) == \
        f"head\n{start}\nnew\n{end}\nmiddle\n{start2}\nnew 2\n{end2}\ntail\n"
    path.write_text(f"{start}\nold\n{end}\n")
    with pytest.raises(ValueError, match="generated scale section"):
        readme.readme_sections({"scale": "new"}, path)


def test_headline_joins_datasets_per_model_and_method(tmp_path):
    rows = [dict(model="llama", criterion="none", strategy="full", k=4, healed=False, adapter="none", **{"ndcg@10": 0.2},
                 quality_kept=1.0, ci_low=1.0, ci_high=1.0, speedup=1.0, ideal_speedup=1.0),
            dict(model="llama", criterion="fisher_empirical", strategy="top-k", k=2, healed=True, adapter="lora",
                 **{"ndcg@10": 0.1}, quality_kept=0.5, ci_low=0.4, ci_high=0.6, speedup=1.5, ideal_speedup=1.8),
            dict(model="llama", criterion="fisher_empirical", strategy="top-k", k=2, healed=False, adapter="none",
                 **{"ndcg@10": 0.05}, quality_kept=0.25, ci_low=0.2, ci_high=0.3, speedup=1.5, ideal_speedup=1.8)]
    rows += [dict(rows[1], criterion=criterion, strategy=strategy) for criterion, strategy in
             (("taylor", "top-k"), ("calibration_loss", "greedy"))]
    for dataset in ("ml-100k", "amazon-electronics"):
        (tmp_path / dataset).mkdir()
        pd.DataFrame(rows).to_csv(tmp_path / dataset / "compact_eval.csv", index=False)
    (tmp_path / "ml-100k" / "healing.json").write_text(json.dumps(
        {"config": {"best_published": {"llama": ["calibration_loss", "greedy"]}}}))
    table = readme.headline(["ml-100k", "amazon-electronics", "missing"], k=2, results_dir=tmp_path)
    assert list(table["method"]) == ["full model", "Fisher (empirical) + lora",  # not the unhealed one,
                                     "SLEB, greedy removal + lora"]  # nor taylor: not the best published
    assert table.iloc[1]["MovieLens-100K NDCG@10 (kept [95% CI])"] == "0.1000 (50.0% [40.0, 60.0])"
    assert table.iloc[1]["Amazon Electronics speed-up measured / ideal"] == "1.50x / 1.80x"
    assert not any("seeds" in column for column in table.columns)  # no seed_repeats.csv: no column
    pd.DataFrame({"model": "llama", "criterion": "fisher_empirical", "strategy": "top-k", "k": 2, "adapter": "lora",
                  "seed": [0, 1, 2], "quality_kept": [0.5, 0.4, 0.6]}).to_csv(tmp_path / "ml-100k" /
                                                                              "seed_repeats.csv", index=False)
    table = readme.headline(["ml-100k"], k=2, results_dir=tmp_path)
    seeds = table["MovieLens-100K kept over training seeds: mean (range)"]
    assert seeds.tolist() == ["", "50.0% (40.0 to 60.0; 3 seeds)", ""]
    pd.DataFrame(rows + [dict(rows[0], model="smollm2-135m")]).to_csv(tmp_path / "amazon-electronics" /
                                                                       "compact_eval.csv", index=False)
    table = readme.headline(["ml-100k", "amazon-electronics"], k=2, results_dir=tmp_path)
    assert list(table["model"]) == ["smollm2-135m", "llama", "llama", "llama"]  # the LLM teacher first


def test_finding_names_the_cut_range_and_the_method_chosen_on_validation_not_on_test(tmp_path):
    def row(criterion, strategy, k, healed, kept, adapter=None):
        return dict(model="smollm2-135m", criterion=criterion, strategy=strategy, k=k, healed=healed,
                    adapter=adapter or ("lora" if healed else "none"), **{"ndcg@10": 0.06 * kept},
                    quality_kept=kept, ci_low=kept - 0.1, ci_high=kept + 0.1)
    ev = [row("none", "full", 30, False, 1.0), row("fisher_empirical", "top-k", 8, False, 0.6),
          row("random", "top-k", 8, False, 0.2), row("position", "first-k", 8, False, 0.75),
          row("removal_loss", "top-k", 8, False, 0.9), row("fisher_empirical", "top-k", 8, True, 0.95),
          row("random", "top-k", 8, True, 0.7), row("position", "first-k", 8, True, 0.97),
          row("position", "first-k", 8, True, 0.9, "lora-no-kd")]
    healing = pd.DataFrame([dict(model="smollm2-135m", criterion=c, strategy=s, k=8, adapter=a,
                                 **{"best_valid_ndcg@10": v})
                            for c, s, a, v in (("fisher_empirical", "top-k", "lora", 0.08), ("random", "top-k", "lora",
                                               0.05), ("position", "first-k", "lora", 0.07),
                                               ("position", "first-k", "lora-no-kd", 0.09))])
    (tmp_path / "amazon-electronics").mkdir()
    pd.DataFrame(ev).to_csv(tmp_path / "amazon-electronics" / "compact_eval.csv", index=False)
    healing.to_csv(tmp_path / "amazon-electronics" / "healing.csv", index=False)
    assert readme.finding(["amazon-electronics", "ml-100k"], 8, tmp_path) == (
        "On Amazon Electronics, the LoRA-tuned LLM `smollm2-135m` (30 layers, test NDCG@10 0.0600) cut to 8 layers "
        "keeps 20% (random) to 75% (first k layers (SLMRec)) of its quality before healing; healed with LoRA + "
        "distillation, the method chosen on validation users, Fisher (empirical), keeps 95.0% [85.0, 105.0] (beside "
        "it: random 70.0% [60.0, 80.0]; first k layers (SLMRec) 97.0% [87.0, 107.0]).")
    pd.DataFrame({"model": "smollm2-135m", "criterion": ["random"] * 2 + ["fisher_empirical"] * 2, "k": 8,
                  "strategy": "top-k", "adapter": "lora", "seed": [0, 1] * 2,
                  "quality_kept": [0.7, 0.6, 0.95, 0.9]}).to_csv(tmp_path / "amazon-electronics" / "seed_repeats.csv")
    assert readme.finding(["amazon-electronics"], 8, tmp_path).endswith(
        "Healed under 2 training seeds, test quality kept ranges: Fisher (empirical) 90.0% to 95.0%; random 60.0% to "
        "70.0%.")  # the chosen method first, each method once


def test_depth_shares_give_each_method_its_lower_middle_upper_percent_at_every_k():
    selection = pd.DataFrame([dict(model="m", criterion="none", strategy="full", k=6, kept_layers="0 1 2 3 4 5"),
                              dict(model="m", criterion="fisher", strategy="top-k", k=2, kept_layers="0 1"),
                              dict(model="m", criterion="fisher", strategy="top-k", k=3, kept_layers="0 2 5")])
    table = tables.depth_share_table({k: layer_figures.kept_shares(selection, k) for k in (2, 3)})
    assert table.to_dict("records") == [dict(model="m", criterion="fisher", strategy="top-k",
                                             **{"k = 2": "100 / 0 / 0", "k = 3": "33 / 33 / 33"})]


def test_dataset_macros_quote_the_named_rows_at_k():
    base = dict(model="llama", k=2, healed=True, adapter="lora", speedup=1.5, ideal_speedup=2.0)
    ev = pd.DataFrame([dict(base, criterion="none", strategy="full", k=4, healed=False, adapter="none",
                            **{"ndcg@10": 0.2}, quality_kept=1.0, ci_low=1.0, ci_high=1.0, speedup=1.0,
                            ideal_speedup=1.0),
                       dict(base, criterion="fisher_empirical", strategy="top-k", **{"ndcg@10": 0.1},
                            quality_kept=0.5, ci_low=0.4, ci_high=0.6),
                       dict(base, criterion="taylor", strategy="top-k", **{"ndcg@10": 0.18}, quality_kept=0.9,
                            ci_low=0.8, ci_high=1.0),
                       dict(base, criterion="fisher_empirical", strategy="top-k", healed=False, adapter="none",
                            **{"ndcg@10": 0.09}, quality_kept=0.45, ci_low=0.3, ci_high=0.6),
                       dict(base, criterion="none", strategy="scratch", healed=False, adapter="none",
                            **{"ndcg@10": 0.16}, quality_kept=0.8, ci_low=0.7, ci_high=0.9),
                       dict(base, criterion="none", strategy="pretrained", healed=False, adapter="none",
                            **{"ndcg@10": 0.17}, quality_kept=0.85, ci_low=0.7, ci_high=0.9)])
    healing = pd.DataFrame({"model": "llama", "k": 2, "criterion": ["fisher_empirical", "taylor"], "strategy": "top-k",
                            "adapter": "lora", "best_valid_ndcg@10": [0.2, 0.1]})  # validation picks Fisher
    versus = pd.DataFrame({"model": "llama", "k": 2, "criterion": "fisher_empirical", "strategy": "top-k",
                           "healed": True, "adapter": "lora", "control": ["from scratch (study data)",
                                                                         "pretrained + adapted"],
                           "vs_control": [0.625, 0.588], "ci_low": [0.5, 0.4], "ci_high": [0.7, 0.7],
                           "p_value": [0.01, 0.02]})
    macros = paper.dataset_macros("ml-100k", {"compact_eval": ev, "healing": healing, "versus_controls": versus},
                                  None, None, k=2, best_published={"llama": ["taylor", "top-k"]})
    assert macros["MlHundredKLlamaBestHealedVsControl"] == "62.5\\%"
    assert macros["MlHundredKLlamaBestHealedVsPretrainedControlLow"] == "40.0\\%"
    assert macros["MlHundredKLlamaBestHealedVsPretrainedControlP"] == "0.0200"
    assert macros["MlHundredKLlamaBestHealed"] == "fisher\\_empirical / top-k"  # not taylor, the best on test
    assert macros["MlHundredKLlamaBestHealedKept"] == "50.0\\%"
    assert macros["MlHundredKLlamaPretrainedControlNdcg"] == "0.1700"
    assert macros["MlHundredKLlamaFisherHealedKept"] == "50.0\\%"
    assert macros["MlHundredKLlamaFisherHealedKeptLow"] == "40.0\\%"
    assert macros["MlHundredKLlamaControlNdcg"] == "0.1600" and macros["MlHundredKLlamaFisherCompactKept"] == "45.0\\%"
    assert macros["MlHundredKLlamaBestPublished"] == "taylor / top-k"
    assert macros["MlHundredKLlamaBestPublishedHealedKept"] == "90.0\\%"
    assert macros["MlHundredKLlamaMeasuredSpeedupShare"] == "75\\%" and macros["MlHundredKLlamaFullNdcg"] == "0.2000"
    assert macros["MlHundredKLlamaFisherHealedVsControlWord"] == "below"  # [0.5, 0.7] excludes 1
    assert macros["MlHundredKLlamaFisherHealedVsControl"] == "62.5\\%"
    assert "MlHundredKLlamaRandomHealedKept" not in macros  # no such row


def test_comparison_words_follow_the_interval_not_the_point_estimate():
    # the healed Fisher model against control a on MovieLens-100K: ratio 1.10, p = 0.15, interval [0.96, 1.25]
    assert lwmacros.comparison_word(0.96, 1.25, null=1.0) == "level with"
    assert lwmacros.comparison_word(1.01, 1.25, null=1.0) == "above"
    assert lwmacros.comparison_word(-0.03, -0.001) == "below"
    versus = pd.DataFrame({"model": "llama", "k": 8, "criterion": "fisher_empirical", "strategy": "top-k",
                           "healed": True, "adapter": "lora", "control": ["from scratch (study data)"],
                           "vs_control": [1.10], "ci_low": [0.96], "ci_high": [1.25], "p_value": [0.15]})
    macros = lwmacros.versus_macros("X", versus, "llama", 8, "fisher_empirical", "top-k")
    assert macros == {"XVsControl": "110.0\\%", "XVsControlLow": "96.0\\%", "XVsControlHigh": "125.0\\%",
                      "XVsControlP": "0.1500", "XVsControlWord": "level with"}


def test_seed_macros_state_the_spread_over_seeds_and_the_wins_per_seed():
    repeats = pd.DataFrame({"model": "llama", "criterion": ["fisher_empirical"] * 3 + ["taylor"] * 3,
                            "strategy": "top-k", "k": 8, "seed": [0, 1, 2] * 2,
                            "quality_kept": [0.9, 1.0, 1.1, 0.8, 0.8, 0.8], "minus_random": [0.01, -0.01, 0.02] * 2,
                            "minus_first_k": [-0.01, -0.02, 0.01] * 2})
    macros = lwmacros.seed_macros("X", repeats, 8, {"llama": ["taylor", "top-k"]})
    assert macros["XLlamaFisherHealedSeedMean"] == "100.0\\%" and macros["XLlamaFisherHealedSeedSd"] == "10.0"
    assert macros["XLlamaFisherHealedSeedBeatsRandom"] == "2 of 3"
    assert macros["XLlamaFisherHealedSeedBeatsFirstK"] == "1 of 3"
    assert macros["XLlamaBestPublishedHealedSeedMin"] == "80.0\\%" and macros["XLlamaSeeds"] == "3"
    random = lwmacros.seed_macros("X", repeats.assign(criterion="random"), 8)
    assert "XLlamaRandomHealedSeedBeatsFirstK" in random and "XLlamaRandomHealedSeedBeatsRandom" not in random
    assert lwmacros.seed_macros("X", repeats, 4) == {}


def test_corpus_time_macros_state_the_future_share_or_that_it_is_unknown():
    time = {"comparable": True, "study_first_test": "1997-09-20", "corpus_first": "2000-04-25",
            "corpus_last": "2003-02-28", "share_after_study_first_test": 1.0}
    assert lwmacros.corpus_time_macros("MlHundredK", time) == {"MlHundredKCorpusFutureShare": "100\\%",
                                                                "MlHundredKStudyFirstTest": "1997-09-20",
                                                                "MlHundredKCorpusFirst": "2000-04-25"}
    assert lwmacros.corpus_time_macros("X", {"comparable": False}) == {"XCorpusFutureShare": "unknown"}


def test_dataset_macros_describe_the_base_models_at_convergence():
    base = pd.DataFrame({"model": ["llama-2L", "llama-32L", "llama-32L-pretrained", "most-popular"],
                         "arch": ["llama", "llama", "llama", "popularity"], "layers": [2, 32, 32, 0],
                         "route": ["study data", "study data", "pretrained", "none"],
                         "ndcg@10": [0.12, 0.10, 0.14, 0.05], "ndcg@10_unmasked": [0.07, 0.06, 0.08, 0.01],
                         "ndcg@10_low": [0.11, 0.09, 0.12, 0.04], "ndcg@10_high": [0.13, 0.105, 0.16, 0.06],
                         "stop_reason": ["patience", "cap", "patience", None],
                         "pretrain_stop_reason": [None, None, "patience", None],
                         "label_share": [1.0, 1.0, 1.0, float("nan")]})
    macros = paper.dataset_macros("ml-100k", {"base_models": base}, None, None, k=2)
    assert macros["MlHundredKLlamaThirtyTwoLUnmaskedNdcg"] == "0.060"
    assert macros["MlHundredKStoppedByPatience"] == "3" and macros["MlHundredKTrainedModels"] == "4"  # 2 stages
    assert macros["MlHundredKLabelShare"] == "100\\%"
    assert macros["MlHundredKLlamaBestDepth"] == "2" and macros["MlHundredKLlamaDeepestVsShallowest"] == "below"
    assert macros["MlHundredKLlamaDeepestVsShallowestHigh"] == "-0.0050"  # 0.105 - 0.11: the intervals apart
    # above the 2-layer model's 0.12 on the point estimate, but the intervals overlap: level with, interval quoted
    assert macros["MlHundredKLlamaThirtyTwoLPretrainedVsLlamaTwoL"] == "level with"
    assert (macros["MlHundredKLlamaThirtyTwoLPretrainedVsLlamaTwoLLow"],
            macros["MlHundredKLlamaThirtyTwoLPretrainedVsLlamaTwoLHigh"]) == ("-0.0100", "0.0500")
    assert macros["MlHundredKLlamaThirtyTwoLPretrainedVsLlamaThirtyTwoL"] == "above"  # 0.12 > 0.105
    assert macros["MlHundredKLlamaThirtyTwoLPretrainedNdcg"] == "0.140"


def test_budget_and_reach_tables():
    healing = pd.DataFrame({"model": "llama", "k": [8, 8, 8, 4], "criterion": ["fisher", "random", "fisher", "fisher"],
                            "strategy": "top-k", "adapter": ["lora", "lora", "lora-r1", "lora"],
                            "valid_ndcg@10_before": [0.05, 0.02, 0.05, 0.01],
                            "valid_ndcg@10_first_epoch": [0.08, 0.07, 0.06, 0.05],
                            "best_valid_ndcg@10": [0.09, 0.09, 0.07, 0.06]})
    budget = tables.budget_table(healing, 8)
    assert list(budget.columns) == ["model", "method", "lora 0 steps", "lora 1 epoch", "lora converged",
                                    "lora-r1 0 steps", "lora-r1 1 epoch", "lora-r1 converged"]
    assert budget.set_index("method").loc["random / top-k", "lora 1 epoch"] == 0.07
    reach = pd.DataFrame({"model": "llama", "k": 8, "route": ["prune + heal", "prune + heal", "pretrained + adapted"],
                          "method": ["a", "b", "pretrained"], "target": 0.1, "best_valid_ndcg@10": [0.1, 0.11, 0.09],
                          "flops_to_target": [3e12, 2e12, float("nan")],
                          "flops_to_target_teacher_amortised": [5e12, 4e12, float("nan")]})
    table = paper.reach_table(reach).set_index("route")
    assert table.loc["prune + heal", "method"] == "b" and table.loc["prune + heal", "TFLOPs"] == 2.0
    assert pd.isna(table.loc["pretrained + adapted", "TFLOPs"])  # never reached


def test_committed_tables_macros_and_readme_are_what_notebook_07_regenerates(tmp_path):
    """The CI check of the paper: rebuild from the committed results/ with notebook 07's parameters."""
    params = notebook_parameters(NOTEBOOK_07)
    macros, figures = paper.build_all(params["datasets"], params["k"], params["criteria"], tables_dir=tmp_path)
    for fig in figures.values():
        plt.close(fig)
    committed = latex.TABLES_DIR
    assert sorted(p.name for p in tmp_path.glob("*.tex")) == sorted(p.name for p in committed.glob("*.tex"))
    for path in tmp_path.glob("*.tex"):
        assert path.read_text() == (committed / path.name).read_text(), f"{path.name}: rerun notebook 07"
    assert (RESULTS_DIR / "ml-100k" / "compact_eval.csv").exists() and macros
    sections = readme.sections(params["datasets"], params["k"], params["key_figure"])
    assert readme.readme_sections(sections) == readme.README.read_text(), "README sections differ: rerun notebook 07"
    assert readme.readme_sections(benchmarks.benchmark_sections(), benchmarks.README) == \
        benchmarks.README.read_text(), "results/benchmarks/README.md sections differ: rerun notebook 07"
    assert (ROOT / "paper" / "figures" / params["key_figure"]).exists()


def test_base_headline_reports_both_protocols_and_the_stop(tmp_path):
    (tmp_path / "ml-100k").mkdir()
    pd.DataFrame({"model": ["llama-2L", "most-popular"], "ndcg@10": [0.1, 0.05], "ndcg@10_unmasked": [0.06, 0.01],
                  "epochs": [12, 0], "stop_reason": ["patience", None]}).to_csv(tmp_path / "ml-100k" / "base_models.csv",
                                                                              index=False)
    table = readme.base_headline(["ml-100k", "missing"], results_dir=tmp_path)
    assert table.iloc[0].tolist() == ["llama-2L", "0.1000 / 0.0600", "12 (patience)"]
    assert table.iloc[1].tolist() == ["most-popular", "0.0500 / 0.0100", ""]
    names = ["smollm2-135m-scratch", "most-popular", "llama-8L-pretrained", "gemma3-270m-lora", "llama-2L",
             "smollm2-135m-lora-random-items", "llama-32L-pretrained", "smollm2-135m-lora", "llama-32L"]
    assert sorted(names, key=readme._base_order) == [
        "llama-32L", "llama-2L", "llama-32L-pretrained", "llama-8L-pretrained", "gemma3-270m-lora",
        "smollm2-135m-lora", "smollm2-135m-lora-random-items", "smollm2-135m-scratch", "most-popular"]


def test_every_macro_the_paper_quotes_is_generated():
    defined = set(re.findall(r"\\newcommand\{\\([A-Za-z]+)\}", (ROOT / "paper" / "tables" / "macros.tex").read_text()))
    text = "".join(p.read_text() for p in sorted((ROOT / "paper" / "sections").glob("*.tex")))
    used = set(re.findall(r"\\((?:MlHundredK|AmazonElectronics)[A-Za-z]+)", text))
    assert used and not used - defined, f"quoted but not generated: {sorted(used - defined)}"


def test_paired_macros_take_their_word_from_the_paired_interval():
    row = {"mean_diff": 0.012, "ci_low": 0.002, "ci_high": 0.021, "p_value": 0.01}
    out = lwmacros.paired_macros("AVsBPaired", row)
    assert out == {"AVsBPairedWord": "above", "AVsBPairedDiff": "0.0120", "AVsBPairedLow": "0.0020",
                   "AVsBPairedHigh": "0.0210", "AVsBPairedP": "0.0100"}
    assert lwmacros.paired_macros("X", {**row, "ci_low": -0.001})["XWord"] == "level with"
    assert lwmacros.paired_macros("X", {**row, "mean_diff": -0.02, "ci_low": -0.03, "ci_high": -0.01})["XWord"] == "below"
