"""The paper's and the README's tables: data frames built from the results CSVs of one dataset, and markdown."""

import pandas as pd


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub markdown table, text cells as they are."""
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def read_results(folder) -> dict[str, pd.DataFrame]:
    """Every results CSV of one dataset that exists, by stem (base_models, layer_scores, selection, ...)."""
    return {p.stem: pd.read_csv(p) for p in sorted(folder.glob("*.csv"))}


BASE_COLUMNS = ["model", "route", "layers", "params", "hr@10", "ndcg@10", "ndcg@10_low", "ndcg@10_high",
                "hr@10_unmasked", "ndcg@10_unmasked", "epochs", "best_epoch", "stop_reason", "train_flops",
                "pretrain_epochs", "pretrain_stop_reason", "pretrain_flops"]


def base_table(base: pd.DataFrame) -> pd.DataFrame:
    """Base models: test metrics under both protocols (masked, unmasked) and how each run ended and cost (the
    pretraining of the pretrained ones separately)."""
    table = base[[c for c in BASE_COLUMNS if c in base.columns]].copy()
    for column in ("train_flops", "pretrain_flops"):
        if column in table:
            table[column] = [f"{v:.2e}" if v else "--" for v in table[column]]
    return table


def study_data_models(base: pd.DataFrame) -> pd.DataFrame:
    """The base models trained from scratch on the study data alone (the depth study)."""
    return base[(base["layers"] > 0) & (base["route"] == "study data")]


def budget_table(healing: pd.DataFrame, k: int) -> pd.DataFrame:
    """Validation NDCG@10 of each method healed at k after no healing, one epoch and convergence, per adapter."""
    at_k = healing[healing["k"] == k]
    table = at_k.assign(method=at_k["criterion"] + " / " + at_k["strategy"])
    table = table.pivot_table(index=["model", "method"], columns="adapter",
                              values=["valid_ndcg@10_before", "valid_ndcg@10_first_epoch", "best_valid_ndcg@10"])
    stage = {"valid_ndcg@10_before": "0 steps", "valid_ndcg@10_first_epoch": "1 epoch",
             "best_valid_ndcg@10": "converged"}
    table.columns = [f"{adapter} {stage[value]}" for value, adapter in table.columns]
    order = [f"{adapter} {name}" for adapter in sorted(at_k["adapter"].unique()) for name in stage.values()]
    return table[order].reset_index()


def selection_table(selection: pd.DataFrame, shares: pd.DataFrame, k: int) -> pd.DataFrame:
    """Compact models at k before healing, with the depth shares of their kept layers."""
    at_k = selection[selection["k"] == k].merge(shares, on=["model", "criterion", "strategy"])
    return at_k[["model", "criterion", "strategy", "ndcg@10", "hr@10", "lower", "middle", "upper"]]\
        .sort_values(["model", "ndcg@10"], ascending=[True, False])


def depth_share_table(shares: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """Per model and method (criterion / strategy), the lower / middle / upper shares (percent) of the kept layers at
    every k (`shares`: k -> layer_figures.kept_shares at k), one column a k."""
    cells = pd.concat([frame.assign(k=f"k = {k}", cell=[f"{100 * r.lower:.0f} / {100 * r.middle:.0f} / "
                                                        f"{100 * r.upper:.0f}" for r in frame.itertuples()])
                       for k, frame in sorted(shares.items())])
    return cells.pivot_table(index=["model", "criterion", "strategy"], columns="k", values="cell", aggfunc="first",
                             sort=False).reset_index().rename_axis(columns=None)


def scenario_table(scenarios: pd.DataFrame, metric: str = "ndcg@10") -> pd.DataFrame:
    """One row a model, one column a scenario case (`metric` only; intervals are in scenarios.csv)."""
    frame = scenarios[scenarios["metric"] == metric].assign(case=lambda f: f["scenario"] + ": " + f["group"])
    cases, models = list(dict.fromkeys(frame["case"])), list(dict.fromkeys(frame["model"]))
    return frame.pivot(index="model", columns="case", values="value").loc[models, cases].reset_index()


def agreement_table(agree: pd.DataFrame) -> pd.DataFrame:
    return agree.pivot(index="criterion", columns="model", values=["spearman", "kendall"])\
        .pipe(lambda t: t.set_axis([f"{m} {s}" for s, m in t.columns], axis=1)).reset_index()
