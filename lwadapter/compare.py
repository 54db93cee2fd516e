"""Compact vs full model: quality kept with a paired bootstrap interval, a paired test, speed measured side by side
with the full model, assembled into the compact_eval table."""

import numpy as np
import pandas as pd

from lwadapter.evaluate import benchmark, count_parameters
from lwadapter.metrics import paired_test

EVAL_COLUMNS = ["model", "criterion", "strategy", "k", "kept_layers", "healed", "adapter", "hr@10", "ndcg@10",
                "quality_kept", "ci_low", "ci_high", "latency_ms", "speedup", "ideal_speedup", "params"]
EXTRA_COLUMNS = ["base_model", "users", "p_value", "full_latency_ms", "sequences_per_s", "peak_memory_mb",
                 "hr@10_unmasked", "ndcg@10_unmasked", "dropped_replicates"]


def quality_kept(compact, full, n: int = 1000, seed: int = 0,
                 alpha: float = 0.05) -> tuple[float, float, float, int]:
    """mean(compact) / mean(full) of a per-user metric on the same users, with its percentile bootstrap interval:
    users are resampled with replacement, the same resample for both models (paired), ratio of the means. Also
    returns how many resamples were dropped, their full-model mean 0 (ratio undefined); ValueError when more than
    alpha / 2 of them are, as the interval's tails would then be theirs."""
    compact, full = np.asarray(compact, dtype=np.float64), np.asarray(full, dtype=np.float64)
    if compact.shape != full.shape or compact.ndim != 1 or compact.size == 0:
        raise ValueError(f"quality_kept needs two per-user vectors on the same users, got shapes {compact.shape} "
                         f"and {full.shape}")
    bad = int((~np.isfinite(compact) | ~np.isfinite(full)).sum())
    if bad:
        raise ValueError(f"{bad} users have a non-finite metric: quality kept needs finite per-user values")
    if full.mean() <= 0:
        raise ValueError("the full model's mean metric is 0: quality kept is undefined")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, full.size, size=(n, full.size))
    denominators = full[idx].mean(axis=1)
    defined = denominators > 0
    dropped = int(n - defined.sum())
    if dropped > alpha / 2 * n:
        raise ValueError(f"{dropped} of {n} bootstrap resamples have a full-model mean of 0 (ratio undefined): too "
                         f"few of the {full.size} users score above 0 for a {1 - alpha:.0%} interval of quality kept")
    ratios = compact[idx[defined]].mean(axis=1) / denominators[defined]
    low, high = np.quantile(ratios, [alpha / 2, 1 - alpha / 2])
    return float(compact.mean() / full.mean()), float(low), float(high), dropped


def relative_quality(per_user: pd.DataFrame, reference: pd.DataFrame, metric: str = "ndcg@10", n: int = 1000,
                     seed: int = 0) -> dict:
    """A model's HR@10 and NDCG@10, its `metric` relative to `reference` (quality_kept, ci_low, ci_high,
    dropped_replicates) and the p-value of metrics.paired_test against the reference; both per-user tables
    (evaluate_model) on the same users."""
    a, b = per_user.set_index("user").sort_index(), reference.set_index("user").sort_index()
    if not a.index.equals(b.index):
        raise ValueError("relative_quality compares models on the same users: the per-user tables differ in users")
    kept, low, high, dropped = quality_kept(a[metric], b[metric], n=n, seed=seed)
    return {"users": len(a), "hr@10": a["hr@10"].mean(), "ndcg@10": a["ndcg@10"].mean(), "quality_kept": kept,
            "ci_low": low, "ci_high": high, "dropped_replicates": dropped,
            "p_value": paired_test(a[metric], b[metric], seed=seed)["p_value"]}


def architecture_key(model) -> tuple:
    """What a forward pass costs: layer count, widths, heads, vocabulary and the number of parameters."""
    cfg = model.config
    return (cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads,
            cfg.num_key_value_heads, cfg.vocab_size, count_parameters(model))


def measure_speed(full, models: dict, batch, repeats: int = 10, warmup: int = 2) -> pd.DataFrame:
    """Per named model (column `name`): latency_ms, speedup (measured), ideal_speedup (FLOP ratio), params,
    full_latency_ms, sequences_per_s and peak_memory_mb against `full` on `batch`.

    `full` and one model of each distinct architecture_key are timed together, interleaved, in one
    evaluate.benchmark run, so every speed-up shares the same measurement of the full model; models with the same
    key cost the same and share it. A benchmark: the numbers vary between runs and machines.
    """
    keys = {name: architecture_key(model) for name, model in models.items()}
    timed = {architecture_key(full): full}
    for name, key in keys.items():
        timed.setdefault(key, models[name])
    label = {key: f"architecture {i}" for i, key in enumerate(timed)}
    table = benchmark({label[key]: model for key, model in timed.items()}, batch, repeats, warmup).set_index("model")
    ref = table.loc[label[architecture_key(full)]]
    rows = []
    for name, key in keys.items():
        m = table.loc[label[key]]
        rows.append({"name": name, "latency_ms": m["latency_ms"], "speedup": ref["latency_ms"] / m["latency_ms"],
                     "ideal_speedup": ref["flops_per_token"] / m["flops_per_token"], "params": int(m["params"]),
                     "full_latency_ms": ref["latency_ms"], "sequences_per_s": m["sequences_per_s"],
                     "peak_memory_mb": m["peak_memory_mb"]})
    return pd.DataFrame(rows)


def compact_eval(variants: pd.DataFrame, per_user: dict, speed: pd.DataFrame, n: int = 1000,
                 seed: int = 0, per_user_unmasked: dict | None = None) -> pd.DataFrame:
    """The compact_eval table, EVAL_COLUMNS then EXTRA_COLUMNS, one row per variant.

    `variants`: a unique `name` (the key of per_user and of speed's `name` column), the `reference` variant whose
    per-user results are the denominator (the full model it was cut from) and the descriptors model, criterion,
    strategy, k, kept_layers, healed, adapter, base_model (notebook 02's model it was trained or cut from).
    Quality: relative_quality against the reference (history masked); speed: measure_speed; hr@10_unmasked and
    ndcg@10_unmasked: the means of `per_user_unmasked` (the same evaluation with seen items left in the ranking),
    NaN when not given.
    """
    missing = sorted({*variants["name"], *variants["reference"]} - set(per_user))
    if missing:
        raise KeyError(f"no per-user results for {missing}: evaluate every variant (evaluate_model) first")
    quality = pd.DataFrame([{"name": name, **relative_quality(per_user[name], per_user[ref], n=n, seed=seed)}
                            for name, ref in zip(variants["name"], variants["reference"])])
    for metric in ("hr@10", "ndcg@10"):
        quality[f"{metric}_unmasked"] = [per_user_unmasked[name][metric].mean() if per_user_unmasked else np.nan
                                         for name in quality["name"]]
    table = variants.merge(quality, on="name", validate="one_to_one").merge(speed, on="name", how="left",
                                                                              validate="one_to_one")
    return table[EVAL_COLUMNS + EXTRA_COLUMNS]


ROUTES = {"scratch": "from scratch (study data)", "pretrained": "pretrained + adapted"}


def route_compute(base: pd.DataFrame) -> pd.Series:
    """Training FLOPs of every base model (base_models.csv), pretraining included, by model name; NaN where the
    pretraining's is not known (pretrain_flops missing or NaN), as the total then is not either."""
    base = base.set_index("model")
    return base["train_flops"] + base.get("pretrain_flops", np.nan)


def training_compute(table: pd.DataFrame, base: pd.DataFrame, healing: pd.DataFrame | None) -> pd.DataFrame:
    """Test NDCG@10 against training FLOPs for each route to a k-layer model.

    `table`: compact_eval rows. Routes: `from scratch (study data)` (strategy 'scratch') and `pretrained + adapted`
    (strategy 'pretrained'), each its own converged training (base_models.csv, pretraining included); for every
    healed compact model (healing.csv), `prune + heal` (healing only: the teacher a sunk cost), `prune + heal,
    teacher amortised` (plus the teacher's training divided by the number of k healed from it) and `prune + heal,
    teacher included` (plus all of it)."""
    flops = route_compute(base)
    controls = table[table["strategy"].isin(list(ROUTES))]
    routes = [controls.assign(route=controls["strategy"].map(ROUTES), method=controls["strategy"],
                              train_flops=flops[controls["base_model"]].to_numpy())]
    if healing is not None:
        run = ["model", "kept_layers", "adapter"]  # criteria that keep the same layers share one healing run
        heal = healing.drop_duplicates(run).set_index(run)["train_flops"]
        healed = table[table["healed"]]
        own = np.array([heal[key] for key in zip(healed["model"], healed["kept_layers"], healed["adapter"])])
        teacher = flops[healed["base_model"]].to_numpy()
        shares = healed.groupby("base_model")["k"].transform("nunique").to_numpy()
        healed = healed.assign(method=healed["criterion"] + " / " + healed["strategy"] + " + " + healed["adapter"])
        routes += [healed.assign(route="prune + heal", train_flops=own),
                   healed.assign(route="prune + heal, teacher amortised", train_flops=own + teacher / shares),
                   healed.assign(route="prune + heal, teacher included", train_flops=own + teacher)]
    return pd.concat(routes, ignore_index=True)[["model", "k", "route", "method", "train_flops", "ndcg@10"]]


def compute_to_reach(history: pd.DataFrame, target: float, offset: float = 0.0) -> float:
    """Training FLOPs (cumulative `flops` of a learning curve, plus `offset`, e.g. pretraining) at the first epoch
    whose validation NDCG@10 reaches `target`; NaN when none does."""
    reached = history[history["valid_ndcg@10"] >= target]
    return float(reached["flops"].iloc[0] + offset) if len(reached) else float("nan")


def holm(p_values) -> pd.Series:
    """Holm's step-down adjustment of a family of p-values (same order and index as given)."""
    p = pd.Series(p_values, dtype=float)
    order = p.sort_values(kind="stable")
    adjusted = (order * np.arange(len(p), 0, -1)).cummax().clip(upper=1.0)
    return adjusted.reindex(p.index)
