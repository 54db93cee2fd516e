"""Which decoder layers to keep: top-k by any score, contiguous-block removal (Gromov et al.), iterative greedy
removal that re-scores after every removal (SLEB), and the two data-free cuts LLM recommenders use: the first k
layers (SLMRec) and every n-th layer dropped (evenly spaced). Every strategy returns sorted original indices."""

import numpy as np
import torch
from tqdm.auto import tqdm

from lwadapter.compact import only_layers
from lwadapter.layer_gradients import float_item_loss, layer_states
from lwadapter.models import decoder_layers, to_model_device
from lwadapter.scoring import angular_distance
from lwadapter.sequences import IGNORE


def kept_text(kept) -> str:
    """[0, 3, 7] -> "0 3 7" (selection.csv's kept_layers)."""
    return " ".join(map(str, kept))


def kept_list(text: str) -> list[int]:
    """selection.csv's "0 3 7" -> [0, 3, 7]."""
    return [int(i) for i in text.split()]


def _check_k(k: int, n_layers: int) -> None:
    if not 1 <= k <= n_layers:
        raise ValueError(f"k={k}: keep between 1 and {n_layers} layers")


def top_k(scores, k: int, keep_first: bool = False, keep_last: bool = False) -> list[int]:
    """The k layers with the highest scores (higher = more important; ties: lower layer first), not necessarily
    contiguous; `keep_first` / `keep_last` always keep layer 0 / the last layer and count them in k."""
    scores = np.asarray(scores, dtype=np.float64)
    n_layers = len(scores)
    _check_k(k, n_layers)
    forced = sorted({l for l, keep in ((0, keep_first), (n_layers - 1, keep_last)) if keep})
    if len(forced) > k:
        raise ValueError(f"k={k} is smaller than the {len(forced)} layers forced by keep_first/keep_last")
    order = [l for l in np.lexsort((np.arange(n_layers), -scores)) if l not in forced]
    return sorted(forced + [int(l) for l in order[: k - len(forced)]])


def first_k(n_layers: int, k: int) -> list[int]:
    """SLMRec's cut: the first k layers, the upper ones dropped."""
    _check_k(k, n_layers)
    return list(range(k))


def evenly_spaced(n_layers: int, k: int) -> list[int]:
    """Every n-th layer dropped: k layers spread evenly from the first to the last."""
    _check_k(k, n_layers)
    return [int(l) for l in np.linspace(0, n_layers - 1, k).round()] if k > 1 else [0]


def block_removal(distances, n_layers: int, k: int) -> list[int]:
    """Gromov et al.: with n = L - k and distances[l] = d(x_l, x_{l+n}) for block starts l = 0..L-n, drop the
    block l*..l*+n-1 with the smallest distance (ties: the earliest) and keep the other k layers."""
    _check_k(k, n_layers)
    distances = np.asarray(distances, dtype=np.float64)
    if len(distances) != k + 1:
        raise ValueError(f"removing {n_layers - k} of {n_layers} layers needs {k + 1} block distances, "
                         f"got {len(distances)}")
    start = int(np.argmin(distances))
    return [l for l in range(n_layers) if not start <= l < start + n_layers - k]


def contiguous_block(model, batches, k: int) -> list[int]:
    """Block removal of L - k consecutive layers by angular distance on the calibration batches."""
    n_layers = len(decoder_layers(model))
    _check_k(k, n_layers)
    if k == n_layers:
        return list(range(n_layers))
    return block_removal(angular_distance(model, batches, n=n_layers - k, n_boot=0)["score"], n_layers, k)


def greedy_path(n_layers: int, objective, k_min: int = 1) -> dict[int, list[int]]:
    """SLEB-style iterative removal: from all layers, repeatedly drop the layer whose removal gives the lowest
    `objective(kept)` (re-evaluated after every removal; ties: the lower layer). Returns the kept layers for
    every k from n_layers down to k_min. An objective with a `removals(kept)` method (every single removal's
    value at once, e.g. `CalibrationLoss`) is asked through it."""
    _check_k(k_min, n_layers)
    removals = getattr(objective, "removals", None) or (
        lambda kept: [objective([l for l in kept if l != drop]) for drop in kept])
    kept = list(range(n_layers))
    path = {n_layers: list(kept)}
    for k in tqdm(range(n_layers - 1, k_min - 1, -1), desc="greedy removal", leave=False):
        kept.remove(kept[int(np.argmin(removals(kept)))])
        path[k] = list(kept)
    return path


def greedy_removal(n_layers: int, k: int, objective) -> list[int]:
    """The k layers left by `greedy_path`."""
    return greedy_path(n_layers, objective, k)[k]


class CalibrationLoss:
    """SLEB's objective: kept -> token-mean next-item loss on the calibration batches of the model with only
    those layers (run in place with `only_layers`, no copy).

    `removals(kept)` evaluates dropping each layer of `kept` and reuses what the candidates share: the hidden
    state entering the dropped layer is computed once, then only the layers after it run (the first decoder
    layer receives the embedding output unchanged, as in Llama, Mistral and Qwen)."""

    def __init__(self, model, batches):
        self.model, self.batches = model.eval(), [to_model_device(model, b) for b in batches]
        self.tokens = sum(int((b["labels"] != IGNORE).sum()) for b in batches)

    @torch.no_grad()
    def _loss(self, layers, batch, start=None) -> float:
        hook = None if start is None else \
            self.model.get_input_embeddings().register_forward_hook(lambda module, args, out: start)
        try:
            with only_layers(self.model, layers) as view:
                return float(float_item_loss(view, batch, reduction="sum"))
        finally:
            if hook is not None:
                hook.remove()

    def __call__(self, kept) -> float:
        return sum(self._loss(kept, b) for b in self.batches) / self.tokens

    @torch.no_grad()
    def removals(self, kept) -> list[float]:
        m = len(kept)
        totals = np.zeros(m)
        for batch in self.batches:
            with only_layers(self.model, kept):
                states = layer_states(self.model, batch)  # states[j] enters kept[j]
            for j in range(m):
                start = j if j < m - 1 else j - 1  # dropping the last layer: rerun the one before it
                totals[j] += self._loss([kept[t] for t in range(start, m) if t != j], batch, states[start])
        return list(totals / self.tokens)
