"""Build a genuinely smaller Hugging Face model from the indices of the decoder layers to keep.

The compact model is an ordinary `*ForCausalLM`: fewer layers in `model.model.layers`, `num_hidden_layers` and
`layer_types` updated, each kept attention's `layer_idx` renumbered (the KV cache is indexed by it) and the kept
indices of the *original* model recorded in `config.kept_layers`, so `save_pretrained` / `from_pretrained` and
generation with the cache work unchanged.
"""

import contextlib
import copy
import numbers

from torch import nn

from lwadapter.models import decoder_layers


def validate_keep(keep, n_layers: int) -> list[int]:
    """`keep` as a sorted list of ints after checking 1 <= k <= n_layers, no duplicates, indices in range."""
    keep = list(keep)
    bad = [i for i in keep if not isinstance(i, numbers.Integral) or isinstance(i, bool)]
    if bad:
        raise ValueError(f"layer indices must be integers, got {bad!r}")
    keep = [int(i) for i in keep]
    if not 1 <= len(keep) <= n_layers:
        raise ValueError(f"keep {len(keep)} layers: choose between 1 and {n_layers} (the model has {n_layers})")
    if len(set(keep)) != len(keep):
        dup = sorted({i for i in keep if keep.count(i) > 1})
        raise ValueError(f"duplicate layer indices {dup} in keep={keep}")
    out = [i for i in keep if not 0 <= i < n_layers]
    if out:
        raise ValueError(f"layer indices {out} out of range: the model has layers 0..{n_layers - 1}")
    return sorted(keep)


def kept_layers(model) -> list[int]:
    """Original-model indices of the model's layers (0..L-1 for a model that was never compacted)."""
    cfg = model.config
    return list(getattr(cfg, "kept_layers", None) or range(cfg.num_hidden_layers))


@contextlib.contextmanager
def only_layers(model, keep):
    """Temporarily turn `model` itself into its compact version (no copy): only the decoder layers `keep`,
    `num_hidden_layers` / `layer_types` updated and attention `layer_idx` renumbered; all restored on exit.
    Cheap for scoring many layer subsets; use `compact_model` for a model to keep."""
    layers = decoder_layers(model)
    keep = validate_keep(keep, len(layers))
    base = getattr(model, "get_base_model", lambda: model)()
    cfg = base.config
    saved = {name: getattr(cfg, name) for name in ("num_hidden_layers", "layer_types") if hasattr(cfg, name)}
    attns = [(pos, layers[i].self_attn, layers[i].self_attn.layer_idx) for pos, i in enumerate(keep)
             if hasattr(getattr(layers[i], "self_attn", None), "layer_idx")]
    base.model.layers = nn.ModuleList([layers[i] for i in keep])
    cfg.num_hidden_layers = len(keep)
    if saved.get("layer_types") is not None:
        cfg.layer_types = [saved["layer_types"][i] for i in keep]
    for pos, attn, _ in attns:
        attn.layer_idx = pos
    try:
        yield model
    finally:
        base.model.layers = layers
        for name, value in saved.items():
            setattr(cfg, name, value)
        for _, attn, idx in attns:
            attn.layer_idx = idx


def compact_model(model, keep):
    """A new model holding deep copies of only the decoder layers `keep` (indices into its current layers, any
    order; kept in model order), on `model`'s device and in its dtype; `model` is left unchanged.
    `config.kept_layers` composes: it lists indices of the original model, `config.source_num_hidden_layers` that
    model's depth."""
    keep = validate_keep(keep, len(decoder_layers(model)))
    original = kept_layers(model)
    source = getattr(model.config, "source_num_hidden_layers", None) or model.config.num_hidden_layers
    with only_layers(model, keep) as view:
        new = copy.deepcopy(view)
    cfg = new.config
    cfg.kept_layers = [original[i] for i in keep]
    cfg.source_num_hidden_layers = source
    return new
