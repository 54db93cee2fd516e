"""Cold-start items: items held out of every training input, met by a model only as test targets.

An LLM recommender keeps what it starts an item from (the mean of its title's token rows) and can rank a new item
from that alone; an ID-only model has a random row for it. The scenario holds out test items, trains on the rest,
gives the held-out items their starting rows back and ranks them as targets: among all items and among the held-out
items only (where popularity, blind to items without interactions, is a random order).
"""

import dataclasses

import numpy as np
import pandas as pd
import torch

from lwadapter.evaluate import popularity_scores, score_histories
from lwadapter.metrics import full_ranking_metrics
from lwadapter.models import recommender_from_spec
from lwadapter.scenarios import COLUMNS, summary_rows
from lwadapter.sequences import SequenceData

SCOPES = ("all items", "held-out items")  # what the target is ranked among


def held_out_items(data: SequenceData, n_items: int, seed: int = 0) -> list[int]:
    """A seeded sample of `n_items` distinct test targets, sorted: the items the scenario holds out."""
    targets = sorted(set(data.test))
    if not 1 <= n_items < len(targets):
        raise ValueError(f"held_out_items={n_items}: hold out between 1 and {len(targets) - 1} items (the distinct "
                         f"test targets of {data.name})")
    return sorted(int(i) for i in np.random.default_rng(seed).choice(targets, size=n_items, replace=False))


def without_items(data: SequenceData, items) -> SequenceData:
    """`data` with `items` removed from every training input: each user's training and validation items without
    them, the last remaining one validating; test targets kept (a held-out test target is a cold-start case, its
    history free of held-out items). ValueError naming the user when fewer than two items remain."""
    held, train, valid = set(items), [], []
    for user, (history, item) in enumerate(zip(data.train, data.valid)):
        warm = [i for i in [*history, item] if i not in held]
        if len(warm) < 2:
            raise ValueError(f"user {data.user_ids[user]} of {data.name} keeps {len(warm)} item(s) once the "
                             f"{len(held)} held-out items are removed: hold out fewer items")
        train.append(warm[:-1])
        valid.append(warm[-1])
    return dataclasses.replace(data, train=train, valid=valid)


def cold_users(data: SequenceData, items) -> np.ndarray:
    """Indices of the users whose test target is one of `items`."""
    held = set(items)
    return np.array([u for u, item in enumerate(data.test) if item in held], dtype=int)


@torch.no_grad()
def restore_item_rows(model, start, items) -> None:
    """Copy the input rows and item-head rows of `items` from `start` (the same recommender as initialised, before
    training) into `model`, in place: what `model` knows of them is then its starting rows only."""
    offset, rows = model.config.item_token_offset, torch.as_tensor(list(items), dtype=torch.long)
    if start.config.item_token_offset != offset or start.config.num_items != model.config.num_items:
        raise ValueError("restore_item_rows needs the same item layout in both models (offset and item count)")
    for table, source in ((model.get_input_embeddings(), start.get_input_embeddings()),
                          (model.get_output_embeddings(), start.get_output_embeddings())):
        table.weight[offset + rows] = source.weight[offset + rows].to(table.weight.dtype)


def initial_model(spec: dict, data: SequenceData):
    """The recommender a LoRA spec (lora_recommender) fine-tunes, as it starts: its item rows initialised."""
    return recommender_from_spec({key: value for key, value in spec.items() if key != "lora"}, data.n_items,
                                 data.item_titles)


def popularity_tiebroken(data: SequenceData, seed: int = 0) -> torch.Tensor:
    """Training counts with ties broken in a seeded random order (every held-out item counts zero)."""
    noise = torch.as_tensor(np.random.default_rng(seed).random(data.n_items) / 2, dtype=torch.float32)
    return popularity_scores(data) + noise


def cold_item_metrics(score_fn, data: SequenceData, items) -> pd.DataFrame:
    """Per cold-start user (cold_users) and scope: the target's full-ranking metrics among all items (history
    masked) and among the held-out items only. `data` is without_items' copy; score_fn(histories, targets) ->
    (users, items) scores."""
    users = cold_users(data, items)
    if users.size == 0:
        raise ValueError(f"no test target of {data.name} is among the {len(items)} held-out items")
    histories, targets = data.histories("test")
    histories, targets = [histories[u] for u in users], [targets[u] for u in users]
    scores = score_fn(histories, targets)
    warm = sorted(set(range(data.n_items)) - set(items))
    frames = [pd.DataFrame({"user": users, "scope": scope, **full_ranking_metrics(scores, targets, exclude)})
              for scope, exclude in zip(SCOPES, (histories, [warm] * len(users)))]
    return pd.concat(frames, ignore_index=True)


def model_scorer(model):
    """score_fn of a recommender for cold_item_metrics (eval mode, float32)."""
    model.eval()
    return lambda histories, targets: score_histories(model, histories, targets)


def popularity_scorer(data: SequenceData, seed: int = 0):
    """score_fn of most-popular (popularity_tiebroken) for cold_item_metrics."""
    counts = popularity_tiebroken(data, seed)
    return lambda histories, targets: counts.expand(len(histories), -1)


def cold_item_table(models: dict, data: SequenceData, items, metrics=("hr@10", "ndcg@10"), n_boot: int = 1000,
                    seed: int = 0) -> pd.DataFrame:
    """The cold-start items scenario in scenarios.scenario_table's columns: per model (name -> recommender, trained
    on `data`, without_items' copy) and most-popular, each scope's metric means over the cold-start users with
    bootstrap intervals."""
    scorers = {name: model_scorer(model) for name, model in models.items()} | {"most-popular": popularity_scorer(
        data, seed)}
    rows = []
    for name, score_fn in scorers.items():
        per_user = cold_item_metrics(score_fn, data, items)
        for scope in SCOPES:
            rows += summary_rows(per_user[per_user["scope"] == scope], metrics, n_boot=n_boot, seed=seed, model=name,
                                 scenario="cold-start items", group=f"among {scope}",
                                 definition=f"{len(items)} test items held out of training", unit="users")
    return pd.DataFrame(rows, columns=COLUMNS)
