"""Full-ranking metrics per user, bootstrap confidence intervals over users, paired tests between two models."""

import numpy as np
import torch

KS = (5, 10, 20)
METRICS = [f"hr@{k}" for k in KS] + [f"ndcg@{k}" for k in KS] + ["mrr"]


def target_ranks(scores: torch.Tensor, targets, exclude: list[list[int]] | None = None) -> torch.Tensor:
    """1-based rank of each user's target among all items, ties counted pessimistically.

    rank = 1 + number of other items whose score is >= the target's score. Items in `exclude[u]` (the user's
    history, when masked) are removed from the ranking, as if scored -inf; the target itself never is.
    """
    scores = torch.as_tensor(scores, dtype=torch.float32)
    targets = torch.as_tensor(targets, dtype=torch.long)
    if scores.ndim != 2 or scores.shape[0] != targets.shape[0]:
        raise ValueError(f"scores must be (users, items) with one target per user, got {tuple(scores.shape)} "
                         f"scores for {targets.shape[0]} targets")
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN: check the model's logits before ranking")
    rows = torch.arange(len(targets))
    target_scores = scores[rows, targets]
    competing = torch.ones_like(scores, dtype=torch.bool)
    if exclude is not None:
        users = [u for u, items in enumerate(exclude) for _ in items]
        competing[users, [i for items in exclude for i in items]] = False
    competing[rows, targets] = False  # the target never counts against itself, and is never masked
    return 1 + ((scores >= target_scores[:, None]) & competing).sum(dim=1)


def rank_metrics(ranks, ks=KS) -> dict[str, np.ndarray]:
    """HR@K, NDCG@K (one relevant item: 1/log2(rank+1) within the top K) and MRR (1/rank) per user."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out = {f"hr@{k}": (ranks <= k).astype(np.float64) for k in ks}
    out |= {f"ndcg@{k}": np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0) for k in ks}
    out["mrr"] = 1.0 / ranks
    return out


def full_ranking_metrics(scores, targets, exclude=None, ks=KS) -> dict[str, np.ndarray]:
    """Per-user metrics from a (users x items) score matrix and one held-out target item per user."""
    return rank_metrics(target_ranks(scores, targets, exclude).numpy(), ks)


def bootstrap_ci(values, n: int = 1000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean, resampling users with replacement."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n, values.size))].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def paired_test(a, b, n: int = 10000, seed: int = 0, alpha: float = 0.05) -> dict[str, float]:
    """Paired comparison of two per-user metric vectors on the same users.

    Returns the mean difference a - b, its bootstrap interval, and a two-sided sign-flip permutation p-value
    (each user's difference flipped at random under the null of exchangeable a and b; (1 + hits) / (1 + n)).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired_test needs per-user vectors on the same users, got shapes {a.shape} and {b.shape}")
    diff = a - b
    observed = abs(diff.mean())
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(n, diff.size))
    hits = int((np.abs((signs * diff).mean(axis=1)) >= observed - 1e-12).sum())
    low, high = bootstrap_ci(diff, n=min(n, 1000), seed=seed, alpha=alpha)
    return {"mean_diff": float(diff.mean()), "ci_low": low, "ci_high": high, "p_value": (1 + hits) / (1 + n)}
