"""Notebook 02, part 3: pretrained LLMs fine-tuned as recommenders (frozen body + LoRA + item tables,
lwadapter.lora_recommender) and the controls that say what pretraining and item titles buy."""

import json
from dataclasses import dataclass

from lwadapter import cold_items
from lwadapter.checkpoints import resolve_checkpoint
from lwadapter.lora_recommender import train_or_fine_tune
from lwadapter.models import ARCHS
from lwadapter.scoring import user_subset
from lwadapter.sequences import SequenceData, label_share

CONTROLS = ("random-items", "own-items", "random-init")
CODES = ("item_codes", "frozen_codes")  # lora keys of E4SRec's item codes


def architecture_spec(checkpoint: str, max_len: int) -> dict:
    """build_recommender's spec of the checkpoint's decoder (arch, depth, width, heads, MLP): the same architecture,
    random weights, an item head of its own. ValueError for an architecture build_recommender does not build."""
    config = json.loads((resolve_checkpoint(checkpoint) / "config.json").read_text())
    if config["model_type"] not in ARCHS:
        raise ValueError(f"{checkpoint} is a {config['model_type']} model: its random-init control needs one of "
                         f"{sorted(ARCHS)} (drop 'random-init' for it in llm_controls)")
    return dict(arch=config["model_type"], n_layers=config["num_hidden_layers"], hidden=config["hidden_size"],
                heads=config["num_attention_heads"], kv_heads=config["num_key_value_heads"],
                intermediate=config["intermediate_size"], max_len=max_len, tie_embeddings=False)


def llm_specs(checkpoints, llm_model: dict, lora: dict, controls: dict | None = None,
              control_depths: dict | None = None) -> dict:
    """name -> spec: <checkpoint>-lora for each checkpoint (its frozen weights, `lora`, trainable item tables), then
    the controls `controls` names for it (checkpoint -> list): "random-items", the same with seeded random item rows
    instead of title rows (where the teacher starts from titles), "own-items", the same with item tables of its own
    instead of `lora`'s item codes (where it has them), and "random-init", the checkpoint's architecture from random
    weights with every weight trained (<checkpoint>-scratch; Llama and Qwen3 architectures); then the same
    architecture cut to each of `control_depths`' depths (checkpoint -> list; <checkpoint>-<k>L-scratch), the
    controls of a compact model of k layers."""
    controls, control_depths = controls or {}, control_depths or {}
    for parameter, given in (("llm_controls", controls), ("llm_control_depths", control_depths)):
        if set(given) - set(checkpoints):
            raise ValueError(f"{parameter} name {sorted(set(given) - set(checkpoints))}, which are not among "
                             f"llms={list(checkpoints)}")
    specs = {}
    for checkpoint in checkpoints:
        wanted = controls.get(checkpoint, [])
        if set(wanted) - set(CONTROLS):
            raise ValueError(f"unknown llm_controls {sorted(set(wanted) - set(CONTROLS))} for {checkpoint}: choose "
                             f"among {CONTROLS}")
        specs[f"{checkpoint}-lora"] = {"path": checkpoint, **llm_model, "lora": dict(lora)}
        if "random-items" in wanted and llm_model.get("item_init") == "title":
            specs[f"{checkpoint}-lora-random-items"] = {**specs[f"{checkpoint}-lora"], "item_init": "random"}
        if "own-items" in wanted and lora.get("item_codes"):
            specs[f"{checkpoint}-lora-own-items"] = {**specs[f"{checkpoint}-lora"], "lora": {
                key: value for key, value in lora.items() if key not in CODES}}
        if "random-init" in wanted:
            specs[f"{checkpoint}-scratch"] = architecture_spec(checkpoint, llm_model["max_len"])
        for k in control_depths.get(checkpoint, []):
            full = architecture_spec(checkpoint, llm_model["max_len"])
            if not 1 <= k < full["n_layers"]:
                raise ValueError(f"llm_control_depths: {k} layers for {checkpoint}, which has {full['n_layers']}: "
                                 f"give a depth from 1 to {full['n_layers'] - 1}")
            specs[f"{checkpoint}-{k}L-scratch"] = {**full, "n_layers": k}
    return specs


def with_item_codes(lora: dict, source: str | None, base_models: dict) -> dict:
    """`lora` with E4SRec's item codes: the item rows of `source` (a base model of part 1, e.g. "llama-2L"), fixed,
    named by its checkpoint folder so that the LLM's cache key follows those weights; `lora` itself for None."""
    if source is None:
        return lora
    if source not in base_models:
        raise ValueError(f"llm_item_codes={source!r} is not a base model of part 1: choose among {sorted(base_models)}")
    return {**lora, "item_codes": base_models[source].path.name, "frozen_codes": True}


def training_users(data: SequenceData, n: int | None, seed: int = 0) -> SequenceData:
    """scoring.user_subset: a seeded sample of `n` users (all when None), the users an LLM trains and validates on
    where compute is short; every model is still tested on all users."""
    if n is not None and n < 1:
        raise ValueError(f"llm_users={n}: give a positive number of training users, or None for all")
    return user_subset(data, n, seed)


def study_label_share(users: SequenceData, data: SequenceData, max_len: int) -> float:
    """Share of the study's training interactions that training on `users` (training_users of `data`) labels."""
    return label_share(users, max_len) * sum(map(len, users.train)) / sum(map(len, data.train))


@dataclass
class LLMTeachers:
    """Part 3's models: name -> spec and name -> Trained, the share of the study's training labels they saw (on
    their training users), and the recipes that trained them (for base_models.json)."""
    specs: dict
    trained: dict
    label_share: float
    recipes: dict


def fine_tune_llms(data: SequenceData, checkpoints, llm_model: dict, lora: dict, controls: dict | None,
                   n_users: int | None, train: dict, scratch_train: dict, precision: str = "float32", seed: int = 0,
                   force: bool = False, item_codes: str | None = None, base_models: dict | None = None,
                   train_for: dict | None = None, control_depths: dict | None = None) -> LLMTeachers:
    """llm_specs' models on training_users(data, n_users): each LoRA spec fine-tuned with `train` (updated with
    `train_for`'s keys for its checkpoint, e.g. a rate of its own), each random-init spec trained whole with
    `scratch_train` (so are those of `control_depths`), both in `precision` (train_recommender's), or the cached
    checkpoints; `item_codes` names the model of `base_models` (part 1's, name -> Trained) whose item rows are
    E4SRec's codes."""
    train_for = train_for or {}
    unknown = set(train_for) - set(checkpoints)
    if unknown:
        raise ValueError(f"llm_train_for names {sorted(unknown)}, which are not among llms={list(checkpoints)}")
    specs = llm_specs(checkpoints, llm_model, with_item_codes(lora, item_codes, base_models or {}), controls,
                      control_depths)
    users = training_users(data, n_users, seed)
    recipes = {name: {**train, **train_for.get(spec["path"], {})} if "lora" in spec else scratch_train
               for name, spec in specs.items()}
    trained = {name: train_or_fine_tune(name, users, spec, {**recipes[name], "precision": precision}, seed=seed,
                                        force=force)
               for name, spec in specs.items()}
    return LLMTeachers(specs, trained, study_label_share(users, data, llm_model["max_len"]),
                       {"llm_train": train, "llm_train_for": train_for, "scratch_train": scratch_train,
                        "llm_precision": precision})


def held_out_models(data: SequenceData, n_items: int, llms: dict, baselines: dict, n_users: int | None,
                    seed: int = 0, force: bool = False) -> tuple[list[int], dict]:
    """Cold-start items (lwadapter.cold_items): `n_items` test targets held out of every training input, and the
    LoRA teachers of `llms` (on training_users) and the ID-only `baselines` (name -> Trained each) trained again
    without them by their own spec and recipe: (the held-out items, <name>-held-out-items -> Trained); ([], {}) for
    0. A LoRA teacher must start its item rows from titles (what it can know of a new item)."""
    if not n_items:
        return [], {}
    items = cold_items.held_out_items(data, n_items, seed)
    cold = cold_items.without_items(data, items)
    out = {}
    for name, trained in {**{n: t for n, t in llms.items() if n.endswith("-lora")}, **baselines}.items():
        spec, train = trained.meta["config"]["model"], trained.meta["config"]["train"]
        if "lora" in spec and (spec.get("item_init") != "title" or spec["lora"].get("item_codes")):
            raise ValueError(f"held_out_items: {name} does not start its item rows from titles, so it knows nothing "
                             f"of a held-out item: set held_out_items = 0 for this dataset")
        users = training_users(cold, n_users, seed) if "lora" in spec else cold
        out[f"{name}-held-out-items"] = train_or_fine_tune(f"{name}-held-out-items", users, spec, train, seed=seed,
                                                           force=force)
    return items, out


def llm_pairs(specs: dict, baseline: str, references=()) -> list[tuple[str, str]]:
    """(model, versus) pairs: each LoRA teacher against the from-scratch `baseline` and each of `references` (e.g.
    the proxy teacher), and against its own controls (random item rows, its own item tables, random initialisation);
    with item codes, the control with its own item tables against random initialisation too (pretraining alone)."""
    pairs = []
    for name in (n for n in specs if n.endswith("-lora")):
        pairs += [(name, versus) for versus in (baseline, *references)]
        scratch = f"{name.removesuffix('-lora')}-scratch"
        pairs += [(name, control) for control in (f"{name}-random-items", f"{name}-own-items", scratch)
                  if control in specs]
        if f"{name}-own-items" in specs and scratch in specs:
            pairs.append((f"{name}-own-items", scratch))
    return pairs
