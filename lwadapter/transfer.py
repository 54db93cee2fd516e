"""Vocabulary transfer: a recommender pretrained on a corpus's items becomes one over the study's items."""

import copy

import torch
from transformers import AutoModelForCausalLM


def transfer_items(model, mapping: list[int], seed: int = 0):
    """The same architecture and config over the study's len(mapping) items (`num_items`, `vocab_size`).

    Decoder layers, norms and special-token embeddings are copied; study item i takes corpus item mapping[i]'s
    input and output embeddings, and an item mapped to -1 keeps the new model's own initialisation, drawn from
    `seed` (the caller's random state is left as it was). Tied embeddings stay tied. Item tokens must end the
    vocabulary, as in models from lwadapter.models.build_recommender.
    """
    cfg = model.config
    offset, n_corpus = cfg.item_token_offset, cfg.num_items
    if cfg.vocab_size != offset + n_corpus:
        raise ValueError(f"vocab_size {cfg.vocab_size} != item_token_offset {offset} + num_items {n_corpus}: "
                         "transfer needs the item tokens to end the vocabulary")
    bad = [j for j in mapping if not -1 <= j < n_corpus]
    if not len(mapping) or bad:
        raise ValueError(f"mapping must list, per study item, a corpus item index in 0..{n_corpus - 1} or -1 "
                         f"(unmatched); got {len(mapping)} values, out of range: {bad[:5]}")
    index = torch.as_tensor(list(mapping), dtype=torch.long)
    config = copy.deepcopy(cfg)
    config.vocab_size, config.num_items = offset + len(index), len(index)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        new = AutoModelForCausalLM.from_config(config, dtype=model.dtype)
    missing, unexpected = new.load_state_dict(_without_embeddings(model), strict=False)
    if unexpected or set(missing) - set(_embedding_keys(new)):
        raise ValueError(f"{type(model).__name__} does not fit its own config rebuilt: missing {missing}, "
                         f"unexpected {unexpected}")
    study_rows = offset + torch.nonzero(index >= 0).flatten()
    corpus_rows = offset + index[index >= 0]
    with torch.no_grad():
        for old, fresh in ((model.get_input_embeddings(), new.get_input_embeddings()),
                           (model.get_output_embeddings(), new.get_output_embeddings())):
            fresh.weight[:offset] = old.weight[:offset]
            fresh.weight[study_rows] = old.weight[corpus_rows]
    return new.train(model.training)


def _embedding_keys(model) -> list[str]:
    """State-dict keys that hold the input or output embedding matrix (both names when they are tied)."""
    ptrs = {model.get_input_embeddings().weight.data_ptr(), model.get_output_embeddings().weight.data_ptr()}
    return [k for k, v in model.state_dict().items() if v.data_ptr() in ptrs]


def _without_embeddings(model) -> dict[str, torch.Tensor]:
    skip = set(_embedding_keys(model))
    return {k: v for k, v in model.state_dict().items() if k not in skip}
