"""Rank statistics of layer scores: ranks within a criterion, Spearman and Kendall correlation, and the agreement of
every criterion with a reference (the removal ground truth) or with every other criterion."""

import numpy as np
import pandas as pd


def ranks(values) -> np.ndarray:
    """Average ranks, 1 = smallest."""
    return pd.Series(np.asarray(values, dtype=np.float64)).rank(method="average").to_numpy()


def spearman(x, y) -> float:
    """Spearman's rho: Pearson correlation of average ranks."""
    return float(np.corrcoef(ranks(x), ranks(y))[0, 1])


def kendall(x, y) -> float:
    """Kendall's tau-b (ties in either variable corrected)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    i, j = np.triu_indices(len(x), k=1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    denom = np.sqrt((dx != 0).sum() * (dy != 0).sum())
    return float((dx * dy).sum() / denom) if denom else float("nan")


def add_ranks(scores: pd.DataFrame) -> pd.DataFrame:
    """Add `rank` within each (model,) criterion: 1 = highest score = most important (ties: lower layer first)."""
    keys = [c for c in ("model", "criterion") if c in scores]
    ranked = scores.sort_values(keys + ["layer"]).copy()
    ranked["rank"] = ranked.groupby(keys)["score"].rank(method="first", ascending=False).astype(int)
    return ranked.reset_index(drop=True)


def wide_scores(scores: pd.DataFrame) -> pd.DataFrame:
    return scores.pivot(index="layer", columns="criterion", values="score")


def rank_agreement(scores: pd.DataFrame, reference: str = "removal_loss") -> pd.DataFrame:
    """Spearman and Kendall correlation of every criterion's layer scores with `reference`'s."""
    wide = wide_scores(scores)
    return pd.DataFrame([{"criterion": c, "reference": reference, "spearman": spearman(wide[c], wide[reference]),
                          "kendall": kendall(wide[c], wide[reference])} for c in wide.columns if c != reference])


def agreement_by_model(scores: pd.DataFrame, reference: str = "removal_loss") -> pd.DataFrame:
    """rank_agreement of every criterion with `reference`, per model (scores with a `model` column)."""
    return pd.concat([rank_agreement(frame, reference).assign(model=model) for model, frame in scores.groupby("model")],
                     ignore_index=True)


def correlation_matrix(scores: pd.DataFrame, method: str = "spearman") -> pd.DataFrame:
    """criteria x criteria rank correlation of layer scores ('spearman' or 'kendall')."""
    corr = {"spearman": spearman, "kendall": kendall}[method]
    wide = wide_scores(scores)
    return pd.DataFrame([[corr(wide[a], wide[b]) for b in wide.columns] for a in wide.columns],
                        index=wide.columns, columns=wide.columns)
