"""Notebook 02: which base models the study trains (from scratch at every depth; pretrained on the corpus, then
adapted), training or loading them, and their test results."""

import pandas as pd

from lwadapter.evaluate import count_parameters, evaluate_model, evaluate_popularity, summarize
from lwadapter.metrics import METRICS, paired_test
from lwadapter.models import decoder_layers
from lwadapter.lora_recommender import load_checkpoint, train_or_fine_tune
from lwadapter.pretrain import adapt_or_load, pretrained_spec
from lwadapter.recorded import recorded_checkpoint, weights_hash
from lwadapter.results import provenance, read_results_json, write_csv, write_json
from lwadapter.runtime import RunFolders
from lwadapter.sequences import SequenceData

PROTOCOLS = {"": True, "_unmasked": False}  # column suffix -> mask_history
UNMASKED = ["hr@10", "ndcg@10"]  # metrics also reported with the history left in the ranking
NO_PRETRAINING = dict(pretrain_epochs=0, pretrain_stop_reason="", pretrain_flops=0.0, pretrain_seconds=0.0)
COMPUTE = ["epochs", "best_epoch", "stop_reason", "steps", "train_tokens", "train_flops", "train_seconds",
           "label_share", "pretrain_epochs", "pretrain_stop_reason", "pretrain_flops", "pretrain_seconds"]


def check_depths(depths, layers: int, control_layers: int, baseline_layers: int, archs, pretrained_archs,
                 pretrained_depths) -> None:
    """ValueError unless the depths include the full model, control and baseline, and the pretrained set fits."""
    missing = {layers, control_layers, baseline_layers} - set(depths)
    if missing:
        raise ValueError(f"depths={depths} must include {sorted(missing)} (the full model, control and baseline)")
    if pretrained_archs and layers not in pretrained_depths:
        raise ValueError(f"pretrained_depths={pretrained_depths} must include the teacher's {layers}")
    if not set(pretrained_archs) <= set(archs):
        raise ValueError(f"pretrained_archs={pretrained_archs} must be among archs={archs} (their models compare)")


def model_specs(archs, depths, model: dict, checkpoints: dict | None = None, layers: int | None = None) -> dict:
    """<arch>-<n>L -> spec of every architecture at every depth (deepest first); a local Hugging Face checkpoint
    of `checkpoints` (arch -> folder) replaces that architecture's `layers`-deep model."""
    specs = {f"{arch}-{n}L": dict(arch=arch, n_layers=n, **model)
             for arch in archs for n in sorted(depths, reverse=True)}
    for arch, path in (checkpoints or {}).items():
        specs[f"{arch}-{layers}L"] = dict(arch=arch, n_layers=layers, path=str(path), max_len=model["max_len"])
    return specs


def train_models(specs: dict, data: SequenceData, train: dict, seed: int = 0, force: bool = False) -> dict:
    """name -> Trained: every spec trained to convergence on `data` (or its cached checkpoint)."""
    return {name: train_or_fine_tune(name, data, spec, train, seed=seed, force=force) for name, spec in specs.items()}


def pretrain_and_adapt(corpus: SequenceData, data: SequenceData, folders: RunFolders, model: dict, archs, depths,
                       train: dict, seed: int = 0, force: bool = False) -> tuple[dict, dict, dict]:
    """`corpus` (notebook 01's) pretrains the `model` of each arch and depth (deepest first), then each is adapted to
    `data` through the item mapping in `folders`; returns (pretrained, adapted, adapted specs), the adapted named
    <arch>-<n>L-pretrained."""
    mapping = read_results_json(folders.corpus_mapping)
    specs = model_specs(archs, depths, model)
    pretrained = train_models(specs, corpus, train, seed, force)
    adapted_specs = {f"{name}-pretrained": pretrained_spec(spec, pretrained[name], mapping)
                     for name, spec in specs.items()}
    adapted = {name: adapt_or_load(name, data, spec, train, seed=seed, force=force, mapping_file=folders.corpus_mapping)
               for name, spec in adapted_specs.items()}
    return pretrained, adapted, adapted_specs


def training_table(trained: dict) -> pd.DataFrame:
    """One row a model: parameters, epochs run, restored best epoch, stop reason, steps, TFLOPs, best valid NDCG@10."""
    return pd.DataFrame([{"model": name, "params": count_parameters(t.model), "epochs": t.record()["epochs"],
                          "best epoch": t.record()["best_epoch"], "stop": t.record()["stop_reason"],
                          "steps": t.record()["steps"], "train TFLOPs": t.record()["train_flops"] / 1e12,
                          "valid ndcg@10": t.history["valid_ndcg@10"].max()} for name, t in trained.items()])


def pretraining_table(pretrained: dict, adapted: dict) -> pd.DataFrame:
    """One row an adapted model: its corpus pretraining and its adaptation (epochs, stop, TFLOPs, valid NDCG@10)."""
    rows = []
    for name, t in adapted.items():
        corpus = pretrained[name.removesuffix("-pretrained")]
        rows.append({"model": name, "corpus epochs": corpus.record()["epochs"],
                     "corpus stop": corpus.record()["stop_reason"],
                     "corpus valid ndcg@10": corpus.history["valid_ndcg@10"].max(),
                     "pretrain TFLOPs": corpus.record()["train_flops"] / 1e12, "epochs": t.record()["epochs"],
                     "stop": t.record()["stop_reason"], "adapt TFLOPs": t.record()["train_flops"] / 1e12,
                     "valid ndcg@10": t.history["valid_ndcg@10"].max()})
    return pd.DataFrame(rows)


def histories(runs: dict) -> pd.DataFrame:
    """label -> Trained as one long frame of their histories, `model` = the label."""
    return pd.concat([t.history.assign(model=label) for label, t in runs.items()], ignore_index=True)


def pretraining_curves(pretrained: dict, adapted: dict) -> pd.DataFrame:
    """Histories of the corpus pretraining ("<name> on the corpus") and of the adaptation ("<name> adapted")."""
    return histories({**{f"{name} on the corpus": t for name, t in pretrained.items()},
                            **{f"{name} adapted": t for name, t in adapted.items()}})


LLM_ROUTES = {True: "pretrained LLM + LoRA", False: "LLM architecture, random init"}  # "lora" in the spec?


def _as_pretraining(record: dict) -> dict:
    """A first step's Trained.record() as the pretrain_* columns."""
    return {f"pretrain_{key.removeprefix('train_')}": record[key]
            for key in ("epochs", "stop_reason", "train_flops", "train_seconds")}


def _codes_source(spec: dict, trained: dict) -> str | None:
    """The base model whose item rows an LLM spec's item codes came from (lora item_codes: its checkpoint folder)."""
    folder = spec.get("lora", {}).get("item_codes")
    return next((name for name, t in trained.items() if t.path.name == folder), None) if folder else None


def _info(specs: dict, trained: dict, pretrained: dict, adapted: dict, llms: dict) -> dict[str, dict]:
    """name -> architecture, layers, route, parameters and the compute of every step of the model's route (an LLM's
    item codes count their source's training as its pretraining step)."""
    routes = {name: "study data" for name in trained} | {name: LLM_ROUTES["lora" in specs[name]] for name in llms}
    info = {name: dict(arch=t.model.config.model_type, layers=len(decoder_layers(t.model)), route=routes[name],
                       params=count_parameters(t.model), **t.record(), **NO_PRETRAINING)
            for name, t in {**trained, **llms}.items()}
    for name in llms:
        source = _codes_source(specs[name], trained)
        if source:
            info[name] |= {"route": f"{info[name]['route']}, item codes of {source}",
                           **_as_pretraining(trained[source].record())}
    for name, t in adapted.items():
        corpus = pretrained[name.removesuffix("-pretrained")].record()
        info[name] = dict(arch=specs[name]["arch"], layers=specs[name]["n_layers"], route="pretrained",
                          params=count_parameters(t.model), **t.record(),
                          **_as_pretraining(corpus))
    info["most-popular"] = dict(arch="popularity", layers=0, route="none", params=0, epochs=0, train_flops=0.0,
                                train_seconds=0.0, **NO_PRETRAINING)
    return info


def results_on_test(data: SequenceData, specs: dict, trained: dict, pretrained: dict, adapted: dict, llms: dict,
                    labels_used: dict, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Test metrics of every model (`trained` on the study data, `adapted` after corpus pretraining, `llms` of part
    3) and most-popular with bootstrap intervals, masked and unmasked, beside the compute of each route and its share
    of the training interactions used as labels (`labels_used`: name -> share; the columns of base_models.csv);
    returns (table, per-user masked metrics by model)."""
    models = {**trained, **adapted, **llms}
    per_user = {suffix: {name: evaluate_model(t.model, data, split="test", mask_history=mask)
                         for name, t in models.items()} for suffix, mask in PROTOCOLS.items()}
    for suffix, mask in PROTOCOLS.items():
        per_user[suffix]["most-popular"] = evaluate_popularity(data, split="test", mask_history=mask)
    info = _info(specs, trained, pretrained, adapted, llms)
    summaries = {suffix: {name: summarize(frame, seed=seed).iloc[0] for name, frame in frames.items()}
                 for suffix, frames in per_user.items()}
    results = pd.DataFrame([
        {"model": name, **info[name], "label_share": labels_used.get(name, float("nan")),
         **summaries[""][name].drop("users").to_dict(),
         **{f"{m}{side}_unmasked": summaries["_unmasked"][name][f"{m}{side}"]
            for m in UNMASKED for side in ("", "_low", "_high")}}
        for name in per_user[""]])
    intervals = [f"{m}_{side}" for m in METRICS for side in ("low", "high")]
    unmasked = [f"{m}{side}_unmasked" for m in UNMASKED for side in ("", "_low", "_high")]
    return results[["model", "arch", "layers", "route", "params", *METRICS, *COMPUTE, *intervals, *unmasked]], \
        per_user[""]


def write_base_models(folders: RunFolders, results: pd.DataFrame, specs: dict, train: dict, corpus: str,
                      pretrained: dict, models: dict, llm_models=(), llm_recipes: dict | None = None,
                      held_out: tuple[list, dict] = ([], {}), seed: int = 0) -> None:
    """base_models.csv (the table) and base_models.json (specs, `train` (the recipe of parts 1-2, which notebooks
    03 and 05 reuse), checkpoints, which of them are part 3's `llm_models` and their `llm_recipes`, and the
    cold-start items' `held_out` (llm_teachers.held_out_models: items, name -> Trained)) in the set's results
    folder."""
    out = folders.results
    items, cold = held_out
    write_csv(out / "base_models.csv", results)
    write_json(out / "base_models.json",
               provenance({"dataset": folders.dataset, "models": specs, "train": train, "corpus": corpus,
                           "llm_models": list(llm_models), "llm_recipes": llm_recipes or {},
                           "pretrained": {name: t.path.name for name, t in pretrained.items()},
                           "checkpoints": {name: t.path.name for name, t in models.items()},
                           "held_out": {"items": items, "checkpoints": {name: t.path.name for name, t in cold.items()}},
                           "weights": {t.path.name: weights_hash(t.path) for t in [*pretrained.values(),
                                                                                   *models.values(), *cold.values()]}},
                          seed))


def results_table(results: pd.DataFrame) -> pd.DataFrame:
    """Layers, route, parameters and each headline metric beside its 95% interval as text."""
    table = results.set_index("model")[["layers", "route", "params"]].copy()
    for metric in ("ndcg@10", "hr@10", "ndcg@10_unmasked", "hr@10_unmasked", "mrr"):
        name, suffix = metric.split("_")[0], "_unmasked" if metric.endswith("_unmasked") else ""
        table[metric] = results.set_index("model")[metric]
        table[f"{metric} 95% CI"] = [f"[{lo:.4f}, {hi:.4f}]" for lo, hi in
                                     zip(results[f"{name}_low{suffix}"], results[f"{name}_high{suffix}"])]
    return table


def depth_pairs(archs, depths, layers: int, baseline_layers: int, control_layers: int, pretrained_archs,
                adapted) -> list[tuple[str, str]]:
    """(model, versus) pairs: each depth against the full depth and the baseline, each adapted model against the
    study-data model of its depth, the pretrained teacher against the baseline and the control."""
    pairs = [(f"{arch}-{n}L", f"{arch}-{layers}L") for arch in archs for n in sorted(depths) if n != layers]
    pairs += [(f"{arch}-{n}L", f"{arch}-{baseline_layers}L") for arch in archs for n in sorted(depths)
              if n not in (layers, baseline_layers)]
    scratch = {f"{arch}-{n}L" for arch in archs for n in depths}
    pairs += [(name, name.removesuffix("-pretrained")) for name in adapted
              if name.removesuffix("-pretrained") in scratch]
    pairs += [(f"{arch}-{layers}L-pretrained", f"{arch}-{n}L") for arch in pretrained_archs
              for n in (baseline_layers, control_layers)]
    return pairs


def write_paired_tests(folders: RunFolders, per_user: dict, pairs, metric: str = "ndcg@10",
                       seed: int = 0) -> pd.DataFrame:
    """Paired difference, bootstrap interval and permutation p-value of `metric` for each (model, versus) pair,
    written to base_tests.csv in the set's results folder."""
    tests = pd.DataFrame([{"model": a, "versus": b, **paired_test(per_user[a][metric], per_user[b][metric], seed=seed)}
                          for a, b in pairs])
    write_csv(folders.results / "base_tests.csv", tests)
    return tests


def read_base_models(folders: RunFolders) -> dict:
    """base_models.json, written by notebook 02: its `config` holds `models` and `train`."""
    return read_results_json(folders.results / "base_models.json")


def load_base_models(data: SequenceData, folders: RunFolders, names, device=None, dtype=None) -> dict:
    """name -> Trained for each of notebook 02's `names`: the checkpoints base_models.json recorded, their weights
    checked against its hashes (never retrained here), on `device` in `dtype` (default: the CPU, stored float32)."""
    results_file = folders.results / "base_models.json"
    config = read_base_models(folders)["config"]
    return {name: load_checkpoint(recorded_checkpoint(data.name, config["checkpoints"][name], config.get("weights", {}),
                                                      "02", results_file), data, device=device, dtype=dtype)
            for name in names}


def model_families(config: dict) -> dict[str, str]:
    """name -> family of each of notebook 02's models (base_models.json's `config`), the label of a teacher's rows
    in notebooks 03-06: the architecture of a model built here ("llama"), the checkpoint of part 3's LLMs and their
    controls ("smollm2-135m" for smollm2-135m-lora and smollm2-135m-scratch)."""
    llms = config.get("llm_models", [])
    checkpoints = {spec["path"] for name, spec in config["models"].items() if name in llms and "lora" in spec}
    return {name: next(c for c in checkpoints if name.startswith(f"{c}-")) if name in llms else spec["arch"]
            for name, spec in config["models"].items()}


def load_teachers(data: SequenceData, folders: RunFolders, names, device=None, dtype=None) -> dict:
    """family (model_families) -> Trained of notebook 02's models `names`, one a family (e.g.
    ["llama-32L-pretrained", "smollm2-135m-lora"])."""
    families = model_families(read_base_models(folders)["config"])
    if len({families[name] for name in names}) < len(names):
        raise ValueError(f"base_models={list(names)} name two teachers of one family: keep one of each")
    return {families[name]: t for name, t in load_base_models(data, folders, names, device, dtype).items()}
