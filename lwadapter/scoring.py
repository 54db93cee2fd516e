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

import contextlib
import copy
import dataclasses
import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from tqdm.auto import tqdm

from lwadapter.compact import only_layers
from lwadapter.evaluate import evaluate_scorer, history_window, score_histories
from lwadapter.metrics import bootstrap_ci
from lwadapter.models import activation_checkpointing, decoder_layers, item_logits, special_tokens, to_model_device
from lwadapter.sequences import IGNORE, SequenceData, collate, training_examples
from lwadapter.train import item_cross_entropy, train_recommender

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


# ------------------------------------------------------------------------------------------ model access
def _layer_parameters(model) -> list[list[tuple[str, nn.Parameter]]]:
    """(full name, parameter) of every decoder layer's parameters, one list per layer."""
    names = {id(p): n for n, p in model.named_parameters()}
    return [[(names[id(p)], p) for p in layer.parameters()] for layer in decoder_layers(model)]


@contextlib.contextmanager
def layer_hooks(model, fn):
    """Call fn(l, layer_input, layer_output) after every decoder layer l; a non-None result replaces the output."""
    def hook(l):
        def run(module, args, kwargs, output):
            inp = args[0] if args else kwargs["hidden_states"]
            out = output[0] if isinstance(output, tuple) else output
            new = fn(l, inp, out)
            if new is None:
                return None
            return (new, *output[1:]) if isinstance(output, tuple) else new
        return run

    handles = [layer.register_forward_hook(hook(l), with_kwargs=True)
               for l, layer in enumerate(decoder_layers(model))]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def layer_states(model, batch) -> list[torch.Tensor]:
    """[x_0, ..., x_L]: the input of layer 0 and the output of every layer (B, T, D)."""
    states = {}

    def keep(l, inp, out):
        if l == 0:
            states[0] = inp
        states[l + 1] = out

    with layer_hooks(model, keep):
        item_logits(model, batch["input_ids"], batch["attention_mask"])
    return [states[l] for l in range(len(states))]


def float_item_loss(model, batch, labels=None, reduction: str = "none") -> torch.Tensor:
    """train.next_item_loss with the item logits cast to float32 (a no-op for float32 weights), so a bfloat16
    model's losses are not rounded to three digits."""
    labels = batch["labels"] if labels is None else labels
    return item_cross_entropy(item_logits(model, batch["input_ids"], batch["attention_mask"]).float(), labels,
                              reduction)


def _sequence_losses(model, batch, labels=None) -> torch.Tensor:
    """(B,) mean next-item loss of each sequence over its labelled positions."""
    labels = batch["labels"] if labels is None else labels
    return float_item_loss(model, batch, labels).sum(dim=1) / (labels != IGNORE).sum(dim=1)


@contextlib.contextmanager
def _requiring_grad(params):
    """Let gradients reach `params` even when they are frozen (e.g. under an adapter); flags restored after."""
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(True)
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


def _owns_parameters(module) -> bool:
    return any(True for _ in module.parameters(recurse=False))


def _per_sample_gradient(module, x: torch.Tensor, delta: torch.Tensor) -> list[torch.Tensor]:
    """Per-sample gradients (B, ...) of `module`'s own parameters from its input x and output gradient delta."""
    b = len(x)
    if isinstance(module, nn.Linear):
        x, delta = x.reshape(b, -1, x.shape[-1]), delta.reshape(b, -1, delta.shape[-1])
        grads = [delta.transpose(1, 2) @ x]
        return grads + ([delta.sum(dim=1)] if module.bias is not None else [])
    names = [n for n, _ in module.named_parameters(recurse=False)]
    if "RMSNorm" in type(module).__name__ and names == ["weight"]:  # y = weight * x_hat
        x_hat = functional_call(module, {"weight": torch.ones_like(module.weight)}, (x,))
        return [(delta * x_hat).reshape(b, -1, x.shape[-1]).sum(dim=1)]
    raise TypeError(f"per-sample gradients support nn.Linear and RMSNorm parameters, not {type(module).__name__} "
                    f"({names}); score this model with the other criteria")


def per_sample_squared_gradients(model, batch, labels=None) -> torch.Tensor:
    """(B, L): for every sequence n and layer l, the sum over l's parameters of the squared gradient of L_n.

    Exact, from one batched forward and backward: L_n depends only on row n, so the gradient of sum_n L_n with
    respect to a module's output at row n is dL_n/d(output_n), and a Linear's per-sample weight gradient is
    sum_t delta_{n,t} x_{n,t}^T (an RMSNorm's: sum_t delta_{n,t} * x_hat_{n,t}). Memory: one training step plus
    the per-sample gradients of one module at a time. It reads every module's input and output, so it runs without
    activation checkpointing. Returned on the CPU.
    """
    batch = to_model_device(model, batch)
    labels = None if labels is None else labels.to(batch["labels"].device)
    owners = [(l, m) for l, layer in enumerate(decoder_layers(model)) for m in layer.modules() if _owns_parameters(m)]
    calls = {m: [] for _, m in owners}
    hooks = [m.register_forward_hook(lambda mod, args, out: calls[mod].append((args[0], out))) for _, m in owners]
    try:
        params = [p for _, m in owners for p in m.parameters(recurse=False)]
        with activation_checkpointing(model, False), _requiring_grad(params):
            losses = _sequence_losses(model, batch, labels)
            outputs = [out for _, m in owners for _, out in calls[m]]
            deltas = iter(torch.autograd.grad(losses.sum(), outputs))
    finally:
        for h in hooks:
            h.remove()
    squared = torch.zeros(len(batch["input_ids"]), len(decoder_layers(model)), dtype=torch.float64)
    for l, m in owners:
        grads = None
        for x, _ in calls[m]:  # a module called several times: its per-sample gradients add up
            g = _per_sample_gradient(m, x.detach(), next(deltas))
            grads = g if grads is None else [a + c for a, c in zip(grads, g)]
        squared[:, l] += sum(g.flatten(1).double().pow(2).sum(dim=1) for g in grads).cpu()
    return squared


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
            losses = _sequence_losses(model, batch)
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


@contextlib.contextmanager
def _streamed_gradients(model, visit):
    """Inside the block, a backward pass hands each decoder-layer parameter's gradient to visit(layer, parameter,
    gradient) as soon as it is complete, then frees it: no full gradient is ever held. Only layer parameters
    require grad meanwhile; flags and any existing .grad are restored after."""
    layers = _layer_parameters(model)
    params = {p: l for l, layer in enumerate(layers) for _, p in layer}
    saved = [(p, p.requires_grad, p.grad) for p in model.parameters()]

    def hook(p):
        visit(params[p], p, p.grad)
        p.grad = None

    handles = []
    try:
        for p, _, _ in saved:
            p.requires_grad_(p in params)
            p.grad = None
        handles = [p.register_post_accumulate_grad_hook(hook) for p in params]
        yield
    finally:
        for h in handles:
            h.remove()
        for p, flag, grad in saved:
            p.requires_grad_(flag)
            p.grad = grad


def _backward_batches(model, batches, visit, desc: str) -> torch.Tensor:
    """Back-propagate every batch's token-summed loss through _streamed_gradients(visit(b, layer, param, grad));
    returns the batches' label counts."""
    model.eval()
    counts = []
    for b, batch in enumerate(tqdm(batches, desc=desc, leave=False)):
        batch = to_model_device(model, batch)
        with _streamed_gradients(model, lambda l, p, g: visit(b, l, p, g)):
            float_item_loss(model, batch, reduction="sum").backward()
        counts.append(float((batch["labels"] != IGNORE).sum()))
    return torch.tensor(counts)


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

    counts = _backward_batches(model, batches, accumulate, criterion)
    layers = [[p for _, p in layer] for layer in _layer_parameters(model)]
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

    _backward_batches(model, batches, project, criterion)
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
    """Wall time of one `train_recommender` epoch (its batches, AdamW and validation) on a copy of `model`,
    measured on a seeded subset of `n_users` users and scaled to all users: the unit for criterion costs."""
    subset = user_subset(data, n_users, seed)
    train = {**train, "epochs": 1, "seed": seed, "desc": "epoch"}
    _, elapsed = timed(train_recommender, copy.deepcopy(model), subset, **train)
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


# ------------------------------------------------------------------------------------------ ranks
def _ranks(values) -> np.ndarray:
    """Average ranks, 1 = smallest."""
    return pd.Series(np.asarray(values, dtype=np.float64)).rank(method="average").to_numpy()


def spearman(x, y) -> float:
    """Spearman's rho: Pearson correlation of average ranks."""
    return float(np.corrcoef(_ranks(x), _ranks(y))[0, 1])


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


def _wide(scores: pd.DataFrame) -> pd.DataFrame:
    return scores.pivot(index="layer", columns="criterion", values="score")


def fuse(scores: pd.DataFrame, criteria, name: str = "fusion") -> pd.DataFrame:
    """Rank aggregation: the mean over `criteria` of each layer's rank (1 = least important), i.e. the Borda
    count divided by the number of criteria; higher = more important."""
    wide = _wide(scores)
    missing = sorted(set(criteria) - set(wide.columns))
    if missing:
        raise ValueError(f"cannot fuse: criteria {missing} are not in the scores ({sorted(wide.columns)})")
    return _frame(name, np.mean([_ranks(wide[c]) for c in criteria], axis=0))


def rank_agreement(scores: pd.DataFrame, reference: str = "removal_loss") -> pd.DataFrame:
    """Spearman and Kendall correlation of every criterion's layer scores with `reference`'s."""
    wide = _wide(scores)
    return pd.DataFrame([{"criterion": c, "reference": reference, "spearman": spearman(wide[c], wide[reference]),
                          "kendall": kendall(wide[c], wide[reference])} for c in wide.columns if c != reference])


def correlation_matrix(scores: pd.DataFrame, method: str = "spearman") -> pd.DataFrame:
    """criteria x criteria rank correlation of layer scores ('spearman' or 'kendall')."""
    corr = {"spearman": spearman, "kendall": kendall}[method]
    wide = _wide(scores)
    return pd.DataFrame([[corr(wide[a], wide[b]) for b in wide.columns] for a in wide.columns],
                        index=wide.columns, columns=wide.columns)
