"""The study's recommendation scenarios, done over all users and items instead of a few prompts.

- history: the leave-one-out test grouped by training-history length (short / medium / long);
- cold start: users with at most `cold_items` training items, and every user with the training history cut to
  its last `cold_items` items (a simulated cold start: data sets filtered by k-core have no natural one);
- item similarity: each item's nearest items by the model, scored against co-occurrence in training histories.

Every scenario reports metric means with a bootstrap interval over its users (or items) in one tidy table.
"""

import dataclasses

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from lwadapter.evaluate import evaluate_model, score_histories
from lwadapter.metrics import bootstrap_ci
from lwadapter.sequences import SequenceData

HISTORY_GROUPS = ("short", "medium", "long")
COLUMNS = ["model", "scenario", "group", "definition", "n", "unit", "metric", "value", "ci_low", "ci_high"]


# ------------------------------------------------------------------------------------------------- history

def history_cuts(lengths) -> tuple[float, float]:
    """Tertile cut points (1/3 and 2/3 quantiles) of the training-history lengths."""
    lengths = np.asarray(lengths, dtype=np.float64)
    if lengths.size == 0:
        raise ValueError("history_cuts needs at least one history length")
    low, high = np.quantile(lengths, [1 / 3, 2 / 3])
    return float(low), float(high)


def history_groups(lengths, cuts: tuple[float, float] | None = None) -> np.ndarray:
    """Label each history 'short' (length <= cuts[0]), 'medium' (<= cuts[1]) or 'long' (> cuts[1]).

    cuts default to the tertiles of `lengths` (history_cuts). Every user gets exactly one label.
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    low, high = history_cuts(lengths) if cuts is None else cuts
    if not low <= high:
        raise ValueError(f"history cut points must be increasing, got {cuts!r}")
    return np.array(HISTORY_GROUPS)[(lengths > low).astype(int) + (lengths > high)]


def _group_definitions(lengths, cuts) -> dict[str, str]:
    """'min-max training items' of each history group, as observed."""
    lengths = np.asarray(lengths)
    labels = history_groups(lengths, cuts)
    return {g: (f"{lengths[labels == g].min()}-{lengths[labels == g].max()} training items"
                if (labels == g).any() else "empty") for g in HISTORY_GROUPS}


# ---------------------------------------------------------------------------------------------- cold start

def cold_start_users(data: SequenceData, max_items: int = 3) -> np.ndarray:
    """Indices of the users with at most `max_items` training items."""
    return np.array([u for u, items in enumerate(data.train) if len(items) <= max_items], dtype=int)


def truncate_histories(data: SequenceData, max_items: int) -> SequenceData:
    """A copy of `data` whose training histories keep only their last `max_items` items (validation and test kept)."""
    if max_items < 1:
        raise ValueError(f"max_items must be at least 1, got {max_items!r}")
    return dataclasses.replace(data, train=[list(items[-max_items:]) for items in data.train])


# ----------------------------------------------------------------------------------------- item similarity

def cooccurrence(data: SequenceData, normalize: bool = True) -> np.ndarray:
    """(items, items) co-occurrence of item pairs in the same user's training history, diagonal zero.

    Raw: the number of users whose training history holds both items. normalize=True divides by
    sqrt(count_i * count_j) (item-based collaborative-filtering cosine), so the reference neighbours are not
    simply the most popular items.
    """
    users = np.repeat(np.arange(data.n_users), [len(items) for items in data.train])
    items = np.concatenate([np.asarray(items, dtype=int) for items in data.train] or [np.zeros(0, int)])
    x = np.zeros((data.n_users, data.n_items))
    x[users, items] = 1.0
    counts = x.T @ x
    if normalize:
        norm = np.sqrt(np.diag(counts))
        counts = counts / np.where(norm > 0, np.outer(norm, norm), 1.0)
    np.fill_diagonal(counts, 0.0)
    return counts


def neighbour_scores(similarity, reference, k: int = 10) -> pd.DataFrame:
    """Per item: precision@k and NDCG@k of its k nearest items by `similarity` against its reference set.

    The reference set of item i is its (at most) k items with the highest positive `reference[i]` (ties broken by
    item index); items without any positive reference are left out. The item itself is never a neighbour.
    NDCG@k uses binary relevance: sum over hits at rank r of 1/log2(r+1), divided by the ideal for the set size.
    """
    sim = torch.as_tensor(np.asarray(similarity), dtype=torch.float64).clone()
    ref = np.asarray(reference, dtype=np.float64)
    if sim.shape != ref.shape or sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"similarity {tuple(sim.shape)} and reference {ref.shape} must be the same square shape")
    n = sim.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k={k} must be between 1 and the number of items minus one ({n - 1})")
    sim.fill_diagonal_(float("-inf"))
    nearest = sim.topk(k, dim=1).indices.numpy()
    order = np.argsort(-ref, axis=1, kind="stable")[:, :k]
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    rows = []
    for item in range(n):
        relevant = [j for j in order[item] if ref[item, j] > 0 and j != item]
        if not relevant:
            continue
        hits = np.isin(nearest[item], relevant)
        rows.append({"item": item, "relevant": len(relevant), f"precision@{k}": hits.mean(),
                     f"ndcg@{k}": (hits * discount).sum() / discount[: len(relevant)].sum()})
    return pd.DataFrame(rows)


def embedding_similarity(model) -> torch.Tensor:
    """Cosine similarity of the items' input-embedding rows (the rows at the item tokens)."""
    cfg = model.config
    emb = model.get_input_embeddings().weight.detach()[cfg.item_token_offset: cfg.item_token_offset + cfg.num_items]
    emb = F.normalize(emb.float(), dim=1)
    return emb @ emb.T


def next_item_similarity(model, batch_size: int = 512) -> torch.Tensor:
    """Row i: the model's item scores after the one-item history [i] (what it recommends to someone who saw i)."""
    model.eval()
    n = model.config.num_items
    return torch.cat([score_histories(model, [[i] for i in range(s, min(s + batch_size, n))],
                                      [0] * (min(s + batch_size, n) - s)) for s in range(0, n, batch_size)])


SIMILARITIES = {"input embedding": embedding_similarity, "next item": next_item_similarity}


# ---------------------------------------------------------------------------------------------- the table

def summary_rows(values: pd.DataFrame, metrics, n_boot: int = 1000, seed: int = 0, **labels) -> list[dict]:
    """One row per metric: mean and bootstrap interval over the rows of `values` (NaN when there are none)."""
    out = []
    for metric in metrics:
        column = values[metric].to_numpy(dtype=np.float64)
        value, (low, high) = ((column.mean(), bootstrap_ci(column, n=n_boot, seed=seed)) if column.size
                              else (np.nan, (np.nan, np.nan)))
        out.append({**labels, "n": column.size, "metric": metric, "value": value, "ci_low": low, "ci_high": high})
    return out


def scenario_table(models: dict, data: SequenceData, per_user: dict | None = None,
                   cuts: tuple[float, float] | None = None, cold_items: int = 3, k: int = 10,
                   metrics=("hr@10", "ndcg@10"), n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """All scenarios for every named model: columns model, scenario, group, definition, n, unit, metric, value,
    ci_low, ci_high.

    per_user[name]: the model's evaluate_model(..., split="test") table when already computed (else computed here).
    History groups use `cuts` on training-history length (default: tertiles of this data, history_cuts).
    Item similarity scores precision@k and NDCG@k of both similarity sources (SIMILARITIES) against normalised
    co-occurrence (the input-embedding rows are the same in a model and its compact versions by construction).
    """
    lengths = np.array([len(items) for items in data.train])
    cuts = history_cuts(lengths) if cuts is None else cuts
    groups, definitions = history_groups(lengths, cuts), _group_definitions(lengths, cuts)
    cold = cold_start_users(data, cold_items)
    truncated = truncate_histories(data, cold_items)
    reference = cooccurrence(data)
    per_user = per_user or {}
    rows = []
    for name, model in models.items():
        test = per_user[name] if name in per_user else evaluate_model(model, data, split="test")
        test = test.set_index("user").loc[np.arange(data.n_users)]
        user_rows = dict(model=name, unit="users", n_boot=n_boot, seed=seed)  # labels + bootstrap settings
        rows += summary_rows(test, metrics, scenario="all users", group="all",
                             definition="leave-one-out test", **user_rows)
        for group in HISTORY_GROUPS:
            rows += summary_rows(test[groups == group], metrics, scenario="history", group=group,
                                 definition=definitions[group], **user_rows)
        rows += summary_rows(test.iloc[cold], metrics, scenario="cold start", group="natural",
                             definition=f"<= {cold_items} training items", **user_rows)
        rows += summary_rows(evaluate_model(model, truncated, split="test"), metrics, scenario="cold start",
                             group="truncated", definition=f"history cut to the last {cold_items} training items",
                             **user_rows)
        for source, similarity in SIMILARITIES.items():
            scores = neighbour_scores(similarity(model), reference, k)
            rows += summary_rows(scores, [f"precision@{k}", f"ndcg@{k}"], model=name, scenario="item similarity",
                                 group=source, definition=f"top-{k} vs co-occurrence (cosine)", unit="items",
                                 n_boot=n_boot, seed=seed)
    return pd.DataFrame(rows, columns=COLUMNS)
