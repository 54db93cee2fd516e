"""Small synthetic datasets and models made by the tests themselves (no files, a few seconds to train)."""

import random

from lwadapter.models import build_recommender
from lwadapter.runtime import set_seed
from lwadapter.sequences import SequenceData


def cyclic_data(n_users=48, n_items=24, length=8, seed=0) -> SequenceData:
    """Users walk the items in steps of 1 or 2 from a random start: a learnable next-item pattern."""
    rng = random.Random(seed)
    seqs = []
    for _ in range(n_users):
        start, step = rng.randrange(n_items), rng.choice([1, 2])
        seqs.append([(start + step * j) % n_items for j in range(length + 2)])
    return SequenceData("cyclic", [f"i{i}" for i in range(n_items)], [f"u{u}" for u in range(n_users)],
                        [s[:-2] for s in seqs], [s[-2] for s in seqs], [s[-1] for s in seqs])


def tiny(arch="llama", n_items=24, n_layers=4, max_len=10):
    """A seeded tiny recommender (hidden 16, 2 heads, 1 key-value head)."""
    set_seed(0)
    return build_recommender(arch, n_items=n_items, n_layers=n_layers, hidden=16, heads=2, kv_heads=1,
                             max_len=max_len).eval()


def identity_layers(model, layers):
    """Zero the output projections of `layers` (each then returns its input unchanged) and the value and up
    projections feeding them (so none of their parameters receives a gradient either)."""
    import torch

    from lwadapter.models import decoder_layers

    with torch.no_grad():
        for i in layers:
            block = decoder_layers(model)[i]
            for linear in (block.self_attn.o_proj, block.self_attn.v_proj, block.mlp.down_proj, block.mlp.up_proj):
                linear.weight.zero_()
    return model
