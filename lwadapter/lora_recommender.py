"""A pretrained LLM fine-tuned the way recommenders built on LLMs are (E4SRec, LLaRA): the checkpoint's decoder
frozen, a PEFT LoRA adapter on every attention and MLP projection, and the item tables (the input rows and the
untied item head, PEFT `modules_to_save`) trained whole.

A model spec with a `lora` entry (rank, alpha, dropout; optionally item_dim or item_codes, low-dimensional item
tables) beside the checkpoint's `path` takes this route. The cache keeps the adapter folder (LoRA and the item tables:
megabytes), never the checkpoint's own weights; what comes back is the merged plain model (merge_and_unload), which
scoring, compaction and healing treat like any other teacher.
"""

import json
from pathlib import Path

import pandas as pd
import torch
from peft import LoraConfig, PeftModel, get_peft_model

from lwadapter import item_factors, runtime
from lwadapter.healing import EMBEDDING_TABLES, LORA_TARGETS, healing_code, load_adapter, save_adapter
from lwadapter.models import as_dtype, recommender_from_spec
from lwadapter.results import content_hash, provenance, sha256_file
from lwadapter.runtime import set_seed
from lwadapter.sequences import SequenceData
from lwadapter.train import (Trained, checkpoint_dir, code_version, data_checksum, fit, load_trained,
                             save_checkpoint, train_or_load, train_recommender)


def attach_recommender_lora(model, rank: int = 16, alpha: float = 32.0, dropout: float = 0.0,
                            item_dim: int | None = None, item_codes: torch.Tensor | None = None,
                            frozen_codes: bool = False) -> PeftModel:
    """`model` (a pretrained recommender with an untied item head) as a PeftModel: LoRA on the decoder's projections,
    the item tables trainable, every other weight frozen. With `item_dim` or `item_codes` (n_items x dim, e.g.
    trained_item_codes) the item rows are codes times a projection (item_factors), the codes fixed with
    `frozen_codes`. Modifies `model` in place."""
    if model.get_output_embeddings().weight is model.get_input_embeddings().weight:
        raise ValueError("the item head is tied to the input rows: load the checkpoint with tie_item_head=False")
    item_factors.factor_item_tables(model, item_dim, item_codes, frozen_codes)
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(LORA_TARGETS),
                        modules_to_save=list(EMBEDDING_TABLES))  # the item tables, trained whole
    return get_peft_model(model, config)


def trained_item_codes(checkpoint: str | None, data: SequenceData) -> torch.Tensor | None:
    """The item rows of a recommender trained on `data` (a checkpoint folder name in its model cache, e.g. notebook
    02's llama-2L): E4SRec's item codes. None for None."""
    if checkpoint is None:
        return None
    model = load_trained(runtime.CACHE_DIR / "models" / data.name / checkpoint).model
    offset = model.config.item_token_offset
    return model.get_input_embeddings().weight.detach()[offset: offset + data.n_items].float()


def _factor_args(lora: dict, data: SequenceData) -> dict:
    """The item-factor keywords of a spec's `lora` entry, its item_codes checkpoint read."""
    return {"item_dim": lora.get("item_dim"), "item_codes": trained_item_codes(lora.get("item_codes"), data),
            "frozen_codes": lora.get("frozen_codes", False)}


def lora_code() -> str:
    """A hash of this module, item_factors and healing's adapter code: with train.code_version(), what shapes a
    fine-tuned model."""
    return content_hash([sha256_file(Path(__file__)), sha256_file(Path(item_factors.__file__)), healing_code()])


def _base_spec(spec: dict) -> dict:
    return {key: value for key, value in spec.items() if key != "lora"}


def fine_tune_or_load(name: str, data: SequenceData, spec: dict, train: dict, seed: int = 0,
                      force: bool = False) -> Trained:
    """recommender_from_spec(spec without `lora`) with attach_recommender_lora(**spec["lora"]), trained with
    train_recommender(**train), or the cached adapter when spec, recipe, seed, data and code are unchanged (`force`
    retrains). Both routes return what load_fine_tuned reads back, so their outputs are identical."""
    path = checkpoint_dir(name, data, {**spec, "lora_code": lora_code()}, train, seed)
    if force or not (path / "meta.json").exists():
        set_seed(seed)
        net = attach_recommender_lora(recommender_from_spec(_base_spec(spec), data.n_items, data.item_titles),
                                      **{**spec["lora"], **_factor_args(spec["lora"], data)})
        net, history, run = fit(lambda: (net, train_recommender(net, data, seed=seed, desc=name, **train)), train)
        save_checkpoint(path, lambda folder: save_adapter(net, folder), history,
                        {"name": name, **run, "data": data_checksum(data), "code": code_version(),
                         "trainable_params": net.get_nb_trainable_parameters()[0],
                         **provenance({"model": spec, "train": train}, seed)})
    return load_fine_tuned(path, data)


def load_fine_tuned(path: Path, data: SequenceData) -> Trained:
    """A checkpoint written by fine_tune_or_load: the checkpoint it names, the saved adapter and item tables on it,
    merged into a plain model."""
    path = Path(path)
    meta = json.loads((path / "meta.json").read_text())
    spec = meta["config"]["model"]
    base = recommender_from_spec(_base_spec(spec), data.n_items, data.item_titles)
    item_factors.factor_item_tables(base, **_factor_args(spec["lora"], data))
    model = item_factors.fold_item_factors(load_adapter(base, path).merge_and_unload()).eval()
    return Trained(model, pd.read_csv(path / "history.csv"), meta, path)


def train_or_fine_tune(name: str, data: SequenceData, spec: dict, train: dict, seed: int = 0,
                       force: bool = False) -> Trained:
    """fine_tune_or_load for a spec with `lora`, train_or_load (every weight trained) otherwise."""
    if "lora" in spec:
        return fine_tune_or_load(name, data, spec, train, seed=seed, force=force)
    return train_or_load(name, data, spec, train, seed=seed, force=force)


def load_checkpoint(path: Path, data: SequenceData, device=None, dtype=None) -> Trained:
    """A cached base model either way it was trained: load_fine_tuned for an adapter folder, else load_trained."""
    if (Path(path) / "adapter_config.json").exists():
        trained = load_fine_tuned(path, data)
        trained.model.to(device=device, dtype=as_dtype(dtype))
        return trained
    return load_trained(path, device=device, dtype=dtype)
