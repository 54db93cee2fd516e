"""Layer-importance criteria, one function each, on the recommendation loss over training sequences.

Convention: every score is "higher = more important"; `rank` 1 is the most important layer. Each criterion
returns a tidy frame (criterion, layer, score, ci_low, ci_high); the interval is a percentile bootstrap over
calibration batches (the per-batch statistics are resampled, then the score is recomputed).

The calibration set holds training sequences only (`sequences.training_examples`: no validation or test item is
ever a label). A *sample* is one sequence; its loss is the mean next-item cross-entropy over its labelled
positions (`train.next_item_loss`). Fisher normalisation: F_l = mean over samples of the *total* (sum, not mean)
of the squared per-sample gradient over layer l's parameters. The layer's hidden states are read with forward
hooks on the decoder blocks, not `output_hidden_states`, whose last entry is taken after the final norm.

Devices and memory: batches go to the model's device (a GPU-hosted or bfloat16 checkpoint scores unchanged); losses,
hidden-state statistics and gradient sums are computed in float32 or float64 whatever the weights' dtype, and every
criterion streams per-batch, per-layer statistics, so its peak memory is about one training step on one batch
(Taylor and gradient norm add one float32 gradient sum). `checkpointing` (score_layers) recomputes activations in
the backward pass of the criteria that back-propagate through whole layers (taylor, grad_norm, fisher_gate).
"""

import copy
import dataclasses
import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from lwadapter.compact import only_layers
from lwadapter.evaluate import evaluate_scorer, history_window, score_histories
from lwadapter.layer_gradients import (backward_batches, layer_hooks, layer_parameters, layer_states,
                                       per_sample_squared_gradients, sequence_losses)
from lwadapter.metrics import bootstrap_ci
from lwadapter.models import activation_checkpointing, decoder_layers, item_logits, special_tokens, to_model_device
from lwadapter.score_ranks import ranks, wide_scores
from lwadapter.sequences import IGNORE, SequenceData, collate, training_examples
from lwadapter.train import train_recommender

COLUMNS = ["criterion", "layer", "score", "ci_low", "ci_high"]


# ------------------------------------------------------------------------------------------ calibration
def calibration_batches(data: SequenceData, model, n_sequences: int = 256, batch_size: int = 32,
                        seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """`n_sequences` training sequences of randomly chosen users (seeded), as right-padded model batches."""
    examples = training_examples(data, history_window(model))
    if n_sequences < 1 or batch_size < 1:
        raise ValueError(f"n_sequences={n_sequences} and batch_size={batch_size} must both be >= 1")
    chosen = np.sort(np.random.default_rng(seed).permutation(len(examples))[:n_sequences])
    examples = [examples[i] for i in chosen]
    return [collate(examples[s:s + batch_size], *special_tokens(model)) for s in range(0, len(examples), batch_size)]


def _frame(criterion: str, score, low=None, high=None) -> pd.DataFrame:
    score = np.asarray(score, dtype=np.float64)
    nan = np.full_like(score, np.nan)
    return pd.DataFrame({"criterion": criterion, "layer": np.arange(len(score)), "score": score,
                         "ci_low": nan if low is None else low, "ci_high": nan if high is None else high})


def _bootstrap(criterion: str, parts: torch.Tensor, weights: torch.Tensor, n_boot: int = 200, seed: int = 0,
               alpha: float = 0.05) -> pd.DataFrame:
    """Score = sum of per-batch `parts` / sum of `weights`, with a bootstrap interval over batches."""
    n = len(parts)
    estimate = lambda counts: counts @ parts / (counts @ weights)  # noqa: E731
    point = estimate(torch.ones(n, dtype=parts.dtype))
    if n_boot == 0:
        return _frame(criterion, point.double().numpy())
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        counts = np.bincount(rng.integers(0, n, n), minlength=n)
        boots.append(estimate(torch.as_tensor(counts, dtype=parts.dtype)))
    low, high = torch.quantile(torch.stack(boots).double(), torch.tensor([alpha / 2, 1 - alpha / 2],
                                                                          dtype=torch.float64), dim=0)
    return _frame(criterion, point.double().numpy(), low.numpy(), high.numpy())


@torch.no_grad()
def sample_labels(model, batch, generator: torch.Generator) -> torch.Tensor:
    """Labels drawn from the model's own predictive distribution at every labelled position (true Fisher); drawn on
    the CPU with the CPU `generator`, so a seed gives the same labels on every device."""
    batch = to_model_device(model, batch)
    probs = item_logits(model, batch["input_ids"], batch["attention_mask"]).float().softmax(dim=-1)
    mask = batch["labels"] != IGNORE
    labels = batch["labels"].cpu().clone()
    labels[mask.cpu()] = torch.multinomial(probs[mask].cpu(), 1, generator=generator).squeeze(1)
    return labels


# ------------------------------------------------------------------------------------------ criteria
def _fisher(criterion, model, batches, sampler=None, n_boot=200, seed=0):
    model.eval()
    parts, weights = [], []
    for batch in tqdm(batches, desc=criterion, leave=False):
        labels = None if sampler is None else sampler(batch)
        parts.append(per_sample_squared_gradients(model, batch, labels).sum(dim=0))
        weights.append(len(batch["input_ids"]))
    return _bootstrap(criterion, torch.stack(parts).double(), torch.tensor(weights, dtype=torch.float64),
                      n_boot=n_boot, seed=seed)


def fisher_empirical(model, batches, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """Empirical diagonal Fisher per layer: mean over sequences of sum_i g_{n,i}^2 with the data's labels."""
    return _fisher("fisher_empirical", model, batches, None, n_boot, seed)


def fisher_true(model, batches, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """True diagonal Fisher per layer: as `fisher_empirical`, labels sampled from the model (seeded)."""
    generator = torch.Generator().manual_seed(seed)
    return _fisher("fisher_true", model, batches, lambda b: sample_labels(model, b, generator), n_boot, seed)


def fisher_gate(model, batches, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """Layer-gate Fisher: E_n[(dL_n/da_l)^2] at a = 1 for a gate on layer l's residual branch,
    x_{l+1} = x_l + a_l (f_l(x_l) - x_l). One gate per sequence, so a single backward gives per-sample values."""
    model.eval()
    parts, weights = [], []
    n_layers = len(decoder_layers(model))
    for batch in tqdm(batches, desc="fisher_gate", leave=False):
        batch = to_model_device(model, batch)
        gates = torch.ones(n_layers, len(batch["input_ids"]), 1, 1, requires_grad=True,
                           device=batch["input_ids"].device)
        with layer_hooks(model, lambda l, inp, out: inp + (gates[l] * (out - inp)).to(out.dtype)):
            losses = sequence_losses(model, batch)
        (g,) = torch.autograd.grad(losses.sum(), gates)
        parts.append(g.flatten(1).pow(2).sum(dim=1).cpu())
        weights.append(len(batch["input_ids"]))
    return _bootstrap("fisher_gate", torch.stack(parts).double(), torch.tensor(weights, dtype=torch.float64),
                      n_boot=n_boot, seed=seed)


def _hidden_statistic(criterion, model, batches, statistic, n_boot, seed):
    """Bootstrap of per-batch sums of `statistic(states, mask) -> (sum over units (L',), n units)`."""
    model.eval()
    parts, weights = [], []
    for batch in tqdm(batches, desc=criterion, leave=False):
        batch = to_model_device(model, batch)
        total, count = statistic([x.float() for x in layer_states(model, batch)], batch["attention_mask"].bool())
        parts.append(total.cpu())
        weights.append(int(count))
    return _bootstrap(criterion, torch.stack(parts).double(), torch.tensor(weights, dtype=torch.float64),
                      n_boot=n_boot, seed=seed)


def block_influence(model, batches, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """Block Influence (ShortGPT): BI_l = 1 - E_tokens cos(x_l, x_{l+1}) over non-pad tokens."""
    def statistic(h, mask):
        return torch.stack([(1 - F.cosine_similarity(a, b, dim=-1))[mask].sum() for a, b in zip(h, h[1:])]), \
            mask.sum()
    return _hidden_statistic("block_influence", model, batches, statistic, n_boot, seed)


def angular_distance(model, batches, n: int = 1, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """Angular distance (Gromov et al.): arccos(cos(x_l, x_{l+n})) / pi at the last real position, averaged
    over sequences; `layer` is the first layer l of the block l..l+n-1 (L - n + 1 rows)."""
    n_layers = len(decoder_layers(model))
    if not 1 <= n <= n_layers:
        raise ValueError(f"block size n={n} must be between 1 and the number of layers ({n_layers})")

    def statistic(h, mask):
        last = mask.sum(dim=1) - 1
        rows = torch.arange(len(last))
        ends = [x[rows, last] for x in h]
        cos = [F.cosine_similarity(ends[l], ends[l + n], dim=-1).clamp(-1, 1) for l in range(n_layers - n + 1)]
        return torch.stack([torch.arccos(c).sum() / torch.pi for c in cos]), len(last)
    return _hidden_statistic("angular" if n == 1 else f"angular@{n}", model, batches, statistic, n_boot, seed)


def activation_norm(model, batches, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """Activation norm: E_tokens ||x_{l+1} - x_l||, the size of layer l's update to the residual stream."""
    def statistic(h, mask):
        return torch.stack([(b - a).norm(dim=-1)[mask].sum() for a, b in zip(h, h[1:])]), mask.sum()
    return _hidden_statistic("act_norm", model, batches, statistic, n_boot, seed)


def _gradient_criterion(criterion, model, batches, per_tensor, finish, direction, n_boot, seed) -> pd.DataFrame:
    """A score f_l(s) of each layer's mean calibration gradient s = sum_b g_b / N (g_b: the gradient of batch b's
    token-summed loss, N: its labelled tokens), streamed: at most one float32 copy of the layer parameters is held
    beside the model, never one gradient per batch.

    Point estimate (first pass): s is accumulated parameter by parameter, then f_l(s) = finish(sum over l's
    tensors of per_tensor(W, s)), each tensor summed in float64. It equals the former computation from per-batch
    gradient copies to about 1e-6 on small layers; on large ones it is the more exact (the former float32 running
    sum was 3-4% off at 15M parameters per layer, against a float64 reference). Interval (a second pass, only when n_boot > 0): f_l is positively homogeneous of degree 1, so
    f_l(s) = <grad f_l(s), s> = sum_b <grad f_l(s), g_b> / N (Euler); the bootstrap resamples the per-batch,
    per-layer terms <grad f_l(s), g_b>, with `direction(W, s, f_l(s))` = grad f_l(s) per tensor. This is the
    bootstrap of f linearised at the point estimate: exact where no resample moves s across a kink of f (a sign
    change of W*s for Taylor), else a first-order approximation; f is convex, so its intervals lie at or below
    the exact ones. The point estimate (not the linearised one) is the score.
    """
    sums = {}

    def accumulate(b, l, p, g):
        sums[p] = g.to(torch.float32, copy=True) if p not in sums else sums[p].add_(g.float())

    counts = backward_batches(model, batches, accumulate, criterion)
    layers = [[p for _, p in layer] for layer in layer_parameters(model)]
    totals = torch.zeros(len(layers), dtype=torch.float64)
    for l, params in enumerate(layers):
        for p in params:
            totals[l] += per_tensor(p.detach().float(), sums[p].div_(counts.sum())).cpu()
    point = finish(totals)
    if n_boot == 0:
        return _frame(criterion, point.numpy())
    for l, params in enumerate(layers):
        for p in params:
            sums[p] = direction(p.detach().float(), sums.pop(p), point[l].item())
    parts = torch.zeros(len(batches), len(layers), dtype=torch.float64)

    def project(b, l, p, g):
        parts[b, l] += (sums[p] * g.float()).sum(dtype=torch.float64).cpu()

    backward_batches(model, batches, project, criterion)
    return _bootstrap(criterion, parts, counts.double(), n_boot=n_boot, seed=seed).assign(score=point.numpy())


def taylor(model, batches, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """Taylor importance (Shortened LLaMA): sum over the layer of |W * dL/dW|, L the calibration mean loss.
    Streamed (_gradient_criterion); interval: the bootstrap linearised along sign(W * dL/dW) W."""
    return _gradient_criterion("taylor", model, batches, lambda w, s: (w * s).abs().sum(dtype=torch.float64),
                               lambda totals: totals, lambda w, s, f: torch.sign(w * s).mul_(w), n_boot, seed)


def grad_norm(model, batches, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """Gradient norm: ||dL/dW_l||_2 of the calibration mean loss over layer l's parameters.
    Streamed (_gradient_criterion); interval: the bootstrap linearised along dL/dW_l / ||dL/dW_l||."""
    return _gradient_criterion("grad_norm", model, batches, lambda w, s: s.pow(2).sum(dtype=torch.float64),
                               torch.sqrt, lambda w, s, f: s.div_(f) if f > 0 else s.zero_(), n_boot, seed)


def random_scores(model, batches=None, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """Seeded uniform random scores: the baseline every criterion must beat (no interval)."""
    n_layers = len(decoder_layers(model))
    return _frame("random", np.random.default_rng(seed).random(n_layers))


SCORERS = {
    "fisher_empirical": fisher_empirical,
    "fisher_true": fisher_true,
    "fisher_gate": fisher_gate,
    "block_influence": block_influence,
    "angular": angular_distance,
    "taylor": taylor,
    "grad_norm": grad_norm,
    "act_norm": activation_norm,
    "random": random_scores,
}


def timed(fn, *args, **kwargs):
    """(fn(*args, **kwargs), wall seconds)."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def score_layers(model, batches, criteria=tuple(SCORERS), n_boot: int = 200, seed: int = 0,
                 checkpointing: bool = False):
    """Every requested criterion: (tidy scores, tidy wall seconds per criterion). `checkpointing` recomputes layer
    activations in the backward passes (models.activation_checkpointing): less memory, about a third more time."""
    unknown = sorted(set(criteria) - set(SCORERS))
    if unknown:
        raise ValueError(f"unknown criteria {unknown}: choose from {list(SCORERS)}")
    frames, seconds = [], []
    for name in criteria:
        with activation_checkpointing(model, checkpointing):
            frame, elapsed = timed(SCORERS[name], model, batches, n_boot=n_boot, seed=seed)
        frames.append(frame)
        seconds.append({"criterion": name, "seconds": elapsed})
    return pd.concat(frames, ignore_index=True), pd.DataFrame(seconds)


def epoch_seconds(model, data: SequenceData, n_users: int = 256, seed: int = 0, **train) -> float:
    """Wall time of one `train_recommender` epoch (its batches, AdamW and validation) on a copy of `model` with
    every weight trained (a merged LoRA teacher comes frozen), measured on a seeded subset of `n_users` users and
    scaled to all users: the unit for criterion costs."""
    subset = user_subset(data, n_users, seed)
    train = {**train, "epochs": 1, "seed": seed, "desc": "epoch"}
    trainable = copy.deepcopy(model).requires_grad_(True)
    _, elapsed = timed(train_recommender, trainable, subset, **train)
    return elapsed * data.n_users / subset.n_users


# ------------------------------------------------------------------------------------------ ground truth
def user_subset(data: SequenceData, n_users: int | None, seed: int = 0) -> SequenceData:
    """A seeded random subset of `n_users` users (all of them when None or larger than the data)."""
    if n_users is None or n_users >= data.n_users:
        return data
    keep = np.sort(np.random.default_rng(seed).permutation(data.n_users)[:n_users])
    pick = lambda values: [values[u] for u in keep]  # noqa: E731
    return dataclasses.replace(data, user_ids=pick(data.user_ids), train=pick(data.train), valid=pick(data.valid),
                               test=pick(data.test))


def validation_losses(model, data: SequenceData, split: str = "valid") -> pd.DataFrame:
    """Per-user metrics (evaluate harness, history masked) plus `loss`, the target's next-item cross-entropy."""
    losses = []

    def score(hist, targets):
        scores = score_histories(model, hist, targets)
        losses.append(F.cross_entropy(scores, torch.as_tensor(targets), reduction="none"))
        return scores

    model.eval()
    per_user = evaluate_scorer(score, data, split, desc=split)
    return per_user.assign(loss=torch.cat(losses).numpy())


def removal_effects(model, data: SequenceData, split: str = "valid", n_users: int | None = None, seed: int = 0,
                    n_boot: int = 200) -> pd.DataFrame:
    """Ground truth: skip one layer at a time and measure the change on `split` users (never test by default).

    removal_loss = loss without the layer - loss of the full model; removal_ndcg@10 = full NDCG@10 - NDCG@10
    without it (both: higher = more important). Intervals: bootstrap over users of the paired differences.
    `n_users` evaluates a seeded subset of users.
    """
    data = user_subset(data, n_users, seed)
    base = validation_losses(model, data, split)
    n_layers = len(decoder_layers(model))
    rows = []
    for layer in tqdm(range(n_layers), desc="removal", leave=False):
        with only_layers(model, [l for l in range(n_layers) if l != layer]) as skipped:
            without = validation_losses(skipped, data, split)
        for name, diff in [("removal_loss", without["loss"] - base["loss"]),
                           ("removal_ndcg@10", base["ndcg@10"] - without["ndcg@10"])]:
            low, high = bootstrap_ci(diff, n=n_boot, seed=seed)
            rows.append({"criterion": name, "layer": layer, "score": diff.mean(), "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=COLUMNS).sort_values(["criterion", "layer"], ignore_index=True)


def fuse(scores: pd.DataFrame, criteria, name: str = "fusion") -> pd.DataFrame:
    """Rank aggregation: the mean over `criteria` of each layer's rank (1 = least important), i.e. the Borda
    count divided by the number of criteria; higher = more important."""
    wide = wide_scores(scores)
    missing = sorted(set(criteria) - set(wide.columns))
    if missing:
        raise ValueError(f"cannot fuse: criteria {missing} are not in the scores ({sorted(wide.columns)})")
    return _frame(name, np.mean([ranks(wide[c]) for c in criteria], axis=0))
