"""Pretrained base models: trained on a corpus first (lwadapter.corpus), moved onto the study's items
(lwadapter.transfer), then adapted to the study's training split with the same recipe.

A pretrained model's spec is its from-scratch spec plus `pretrained`: the corpus checkpoint (its folder under
runtime.CACHE_DIR, written by train_or_load on the corpus) and a hash of the item mapping
(corpus_mapping.json beside the prepared sequences), so the adapted checkpoint is retrained when either changes.
"""

import json
from pathlib import Path

from lwadapter import runtime
from lwadapter.results import content_hash, provenance, sha256_file
from lwadapter.sequences import SequenceData
from lwadapter.train import (Trained, checkpoint_dir, code_version, data_checksum, fit, load_trained,
                             save_checkpoint, train_recommender)
from lwadapter.transfer import transfer_items

CODE_FILES = ("pretrain.py", "transfer.py")  # beyond train.CODE_FILES, what shapes an adapted model


def pretrained_spec(model: dict, pretrained: Trained, mapping: list[int]) -> dict:
    """The spec of `model` adapted from the corpus checkpoint `pretrained` through `mapping`."""
    return {**model, "pretrained": {"checkpoint": pretrained.path.relative_to(runtime.CACHE_DIR).as_posix(),
                                    "mapping": content_hash(list(mapping))}}


def _adapt_code() -> str:
    src = Path(__file__).parent
    return f"{code_version()}+{content_hash([sha256_file(src / f) for f in CODE_FILES])}"


def adapt_or_load(name: str, data: SequenceData, spec: dict, train: dict, seed: int = 0, force: bool = False,
                  device=None, dtype=None, mapping_file: Path | None = None) -> Trained:
    """The pretrained checkpoint of `spec["pretrained"]` moved onto data's items through `mapping_file` (the study
    item -> corpus item list lwadapter.corpus.prepare_corpus wrote, RunFolders.corpus_mapping) and trained on data
    with train_recommender(**train), or the cached result when spec, training spec, seed, data, mapping and code are
    unchanged (`force` retrains). Returns the checkpoint read back (load_trained with `device` and `dtype`)."""
    source = spec["pretrained"]
    if mapping_file is None:
        raise ValueError(f"{name} is adapted from a corpus checkpoint: pass the corpus item mapping (mapping_file)")
    path_map = Path(mapping_file)
    if not path_map.exists():
        raise FileNotFoundError(f"{path_map} is missing: run notebook 01 with its corpus (prepare_corpus) first")
    mapping = json.loads(path_map.read_text())
    if content_hash(mapping) != source["mapping"]:
        raise ValueError(f"{path_map} is not the item mapping {name} was specified with: rerun notebook 02")
    path = checkpoint_dir(name, data, {**spec, "adapt_code": _adapt_code()}, train, seed)
    if force or not (path / "meta.json").exists():
        corpus_checkpoint = runtime.CACHE_DIR / source["checkpoint"]
        if not (corpus_checkpoint / "meta.json").exists():
            raise FileNotFoundError(f"pretrained checkpoint {corpus_checkpoint} is missing: run notebook 02, "
                                    "which pretrains on the corpus")
        net = transfer_items(load_trained(corpus_checkpoint).model, mapping, seed=seed).train()
        net, history, run = fit(lambda: (net, train_recommender(net, data, seed=seed, desc=name, **train)), train)
        save_checkpoint(path, net.save_pretrained, history,
                        {"name": name, **run, "data": data_checksum(data), "code": _adapt_code(),
                         **provenance({"model": spec, "train": train}, seed)})
    return load_trained(path, device=device, dtype=dtype)

