"""Training shared by base models, controls and healing; the recommendation loss every step scores with."""

import json
import math
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import extract_model_from_parallel
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

import lwadapter
from lwadapter import numerics, runtime
from lwadapter.checkpoints import load_causal_lm
from lwadapter.models import as_dtype, item_logits, mixed_precision, recommender_from_spec, special_tokens
from lwadapter.results import content_hash, provenance, sha256_file, write_csv, write_json
from lwadapter.sequences import IGNORE, LengthBucketBatches, SequenceData, collate, training_examples

CODE_FILES = ("models.py", "sequences.py", "train.py", "metrics.py", "evaluate.py")


def item_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of (B, T, n_items) item logits against (B, T) labels, IGNORE positions skipped."""
    return F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE, reduction=reduction)


def next_item_loss(model, batch, reduction: str = "mean"):
    """Next-item cross-entropy over item logits at every labelled position (reduction 'mean', 'sum' or 'none')."""
    return item_cross_entropy(item_logits(model, batch["input_ids"], batch["attention_mask"]), batch["labels"],
                              reduction)


class SeededShuffle(Sampler):
    """A fresh permutation of range(n) each epoch from one seeded generator (the same order on every process)."""

    def __init__(self, n: int, seed: int):
        self.n, self.generator = n, torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return iter(torch.randperm(self.n, generator=self.generator).tolist())


def learning_rate_factor(step: int, warmup_steps: int, total_steps: int, decay: str = "cosine",
                         floor: float = 0.1) -> float:
    """Multiplier of the base learning rate at optimiser step `step` (0-based): linear warm-up over
    `warmup_steps`, then constant (decay='constant') or cosine / linear decay to `floor` at `total_steps`."""
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if decay == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if decay == "cosine":
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    if decay == "linear":
        return floor + (1 - floor) * (1 - progress)
    raise ValueError(f"unknown decay {decay!r}: use 'cosine', 'linear' or 'constant'")


def training_flops_per_token(model, loss_fn=None) -> float:
    """Analytic training FLOPs per input token: the forward pass, the backward pass through the activations (one
    forward's worth) and the weight gradients of the trainable share of parameters; plus whatever the loss adds
    per token (`loss_fn.extra_flops_per_token`, e.g. a distillation teacher's forward pass)."""
    from lwadapter.evaluate import flops_per_token

    params = list(model.parameters())
    trainable = sum(p.numel() for p in params if p.requires_grad) / sum(p.numel() for p in params)
    forward = flops_per_token(extract_model_from_parallel(model).config)
    return forward * (2 + trainable) + getattr(loss_fn, "extra_flops_per_token", 0)


def stop_reason(history: pd.DataFrame, patience: int) -> str:
    """'patience' when the last `patience` validation evaluations brought no improvement, else 'cap'."""
    scores = history["valid_ndcg@10"].dropna().tolist()
    best = scores.index(max(scores))
    return "patience" if len(scores) - 1 - best >= patience else "cap"


def train_recommender(model, data: SequenceData, max_len: int | None = None, stride: int | None = None,
                      epochs: int = 100, batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 0.0,
                      patience: int = 5, seed: int = 0, eval_every: int = 1, loss_fn=next_item_loss,
                      clip: float = 1.0, warmup_steps: int = 0, decay: str = "cosine", lr_floor: float = 0.1,
                      precision: str = "float32", length_buckets: int = 0, desc: str = "train") -> pd.DataFrame:
    """Train with AdamW on shuffled, seeded batches of `training_examples(data, max_len, stride)` (every training
    interaction a label once), until validation NDCG@10 stops improving.

    Only parameters with requires_grad are optimised, with `loss_fn(model, batch)` (default: next-item
    cross-entropy at every labelled position) and gradient-norm clipping at `clip`. Learning rate: linear warm-up
    over `warmup_steps` optimiser steps, then `decay` ('cosine', 'linear' or 'constant') to `lr_floor` x lr at the
    cap of `epochs` epochs. Every `eval_every` epochs (and after the last) the validation NDCG@10 is measured;
    training stops after `patience` evaluations without improvement and the best weights are restored.
    max_len defaults to the model's config.max_history. `precision` ('auto', 'bf16', 'float32';
    models.autocast_dtype) runs forward and backward under bf16 autocast with float32 weights, optimiser and item
    logits (default float32: every committed result; "auto" for the LLMs); `length_buckets` > 0 batches windows of similar length (sequences.LengthBucketBatches with chunks of
    that many batches) instead of a plain seeded shuffle, so batches carry little padding.
    Returns the learning curve, one row per epoch: epoch, train_loss, valid_ndcg@10 (NaN on epochs without
    evaluation), lr (at the epoch's end), and the cumulative steps, tokens (input tokens, BOS included) and
    analytic training flops (training_flops_per_token x tokens).
    """
    from lwadapter.evaluate import evaluate_model, history_window

    runtime.set_seed(seed)
    examples = training_examples(data, max_len or history_window(model), stride)
    if not examples:
        raise ValueError(f"dataset {data.name!r} has no training sequences")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("no parameter requires grad: unfreeze the ones to train")
    tokens = special_tokens(model)
    collate_fn = lambda b: collate(b, *tokens)  # noqa: E731
    if length_buckets:
        lengths = [len(labels) for _, labels in examples]
        loader = DataLoader(examples, batch_sampler=LengthBucketBatches(lengths, batch_size, seed, length_buckets),
                            collate_fn=collate_fn)
    else:
        loader = DataLoader(examples, batch_size=batch_size, sampler=SeededShuffle(len(examples), seed),
                            collate_fn=collate_fn)
    epoch_tokens = sum(len(inputs) + 1 for inputs, _ in examples)
    flops = training_flops_per_token(model, loss_fn)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    total_steps = epochs * len(loader)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, warmup_steps, total_steps, decay, lr_floor))
    accelerator = Accelerator()
    net, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    rows, best, best_state, stale, steps = [], float("-inf"), None, 0, 0
    bar = tqdm(range(1, epochs + 1), desc=desc)
    for epoch in bar:
        net.train()
        total = torch.zeros((), device=accelerator.device)
        for batch in loader:
            with mixed_precision(precision, accelerator.device):
                loss = loss_fn(net, batch)
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(params, clip)
            optimizer.step()
            schedule.step()
            total += loss.detach().float()  # summed on the device: no host sync per step
        steps += len(loader)
        row = {"epoch": epoch, "train_loss": total.item() / len(loader), "valid_ndcg@10": float("nan"),
               "lr": schedule.get_last_lr()[0], "steps": steps, "tokens": epoch * epoch_tokens,
               "flops": epoch * epoch_tokens * flops}
        if epoch % eval_every == 0 or epoch == epochs:
            valid = evaluate_model(model, data, split="valid", precision=precision)
            row["valid_ndcg@10"] = valid["ndcg@10"].mean()
            if row["valid_ndcg@10"] > best:
                best, stale = row["valid_ndcg@10"], 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
        rows.append(row)
        bar.set_postfix(loss=f"{row['train_loss']:.4f}", ndcg10=f"{best:.4f}")
        if stale >= patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------- cached checkpoints

@dataclass
class Trained:
    """A trained (or cache-loaded) recommender with its learning curve and run information (meta.json)."""

    model: torch.nn.Module
    history: pd.DataFrame
    meta: dict
    path: Path

    @property
    def train_seconds(self) -> float:
        return self.meta["train_seconds"]

    @property
    def epochs(self) -> int:
        """Epochs actually run (early stopping included)."""
        return len(self.history)

    def record(self) -> dict:
        """What the run cost and how it ended: epochs, best_epoch, stop_reason, steps, train_tokens,
        train_flops (analytic) and train_seconds (wall)."""
        last = self.history.iloc[-1]
        return {"epochs": self.epochs, "best_epoch": int(self.history["valid_ndcg@10"].idxmax()) + 1,
                "stop_reason": self.meta["stop_reason"], "steps": int(last["steps"]),
                "train_tokens": int(last["tokens"]), "train_flops": float(last["flops"]),
                "train_seconds": self.train_seconds}


def fit(train_fn, train: dict) -> tuple[torch.nn.Module, pd.DataFrame, dict]:
    """Run `train_fn()` (returns the model and its learning curve) and add the run information that
    train_or_load and heal_or_load store: wall seconds and stop reason under `train`'s patience."""
    start = time.perf_counter()
    model, history = train_fn()
    return model, history, {"train_seconds": time.perf_counter() - start,
                            "stop_reason": stop_reason(history, train.get("patience", 5))}


def data_checksum(data: SequenceData) -> str:
    return content_hash(asdict(data))


def code_version() -> str:
    """Package version plus a hash of the modules that determine a trained model."""
    src = Path(lwadapter.__file__).parent
    return f"{lwadapter.__version__}+{content_hash([sha256_file(src / f) for f in CODE_FILES])}"


def checkpoint_dir(name: str, data: SequenceData, model: dict, train: dict, seed: int) -> Path:
    """runtime.CACHE_DIR/models/<dataset>/<name>-<hash of model spec, training spec, seed, data, code, numeric
    paths (pinned or native: the same recipe trains other weights on other paths)>."""
    key = content_hash({"model": model, "train": train, "seed": seed, "data": data_checksum(data),
                        "code": code_version(), "numerics": numerics.choice()})
    return runtime.CACHE_DIR / "models" / data.name / f"{name}-{key}"


def save_checkpoint(path: Path, save, history: pd.DataFrame, meta: dict) -> None:
    """Write a checkpoint folder atomically: `save(folder)` writes the weights, then history.csv and meta.json;
    the folder appears under `path` only when complete (a previous one is replaced)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    save(tmp)
    write_csv(tmp / "history.csv", history)
    write_json(tmp / "meta.json", meta)
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)


def load_trained(path: Path, device=None, dtype=None, device_map=None) -> Trained:
    """A checkpoint written by train_or_load: safetensors weights, history.csv and meta.json. `dtype` (a torch dtype
    or its name, e.g. "bfloat16") and `device_map` (e.g. "auto") go to from_pretrained, which then loads the weights
    straight onto the device(s); `device` (e.g. "cuda") moves the loaded model. Default: the CPU, stored dtype."""
    path = Path(path)
    meta = json.loads((path / "meta.json").read_text())
    options = {k: v for k, v in {"dtype": as_dtype(dtype), "device_map": device_map}.items() if v is not None}
    model = load_causal_lm(path, "The cached checkpoint does not fit the model its config names: delete the folder "
                                 "to train it again.", **options)
    if device is not None:
        model.to(device)
    model.eval()
    return Trained(model, pd.read_csv(path / "history.csv"), meta, path)


def train_or_load(name: str, data: SequenceData, model: dict, train: dict, seed: int = 0,
                  force: bool = False, device=None, dtype=None) -> Trained:
    """Train `recommender_from_spec(model, data.n_items)` with `train_recommender(**train)`, or reuse the cached
    checkpoint when model spec, training spec, seed, data checksum and code version are unchanged (`force`
    retrains). Both routes return what is read back from the checkpoint (load_trained with `device` and `dtype`),
    so their outputs are identical.
    """
    path = checkpoint_dir(name, data, model, train, seed)
    if force or not (path / "meta.json").exists():
        runtime.set_seed(seed)
        net = recommender_from_spec(model, data.n_items, data.item_titles)
        net, history, run = fit(lambda: (net, train_recommender(net, data, seed=seed, desc=name, **train)), train)
        save_checkpoint(path, net.save_pretrained, history,
                        {"name": name, **run, "data": data_checksum(data), "code": code_version(),
                         **provenance({"model": model, "train": train}, seed)})
    return load_trained(path, device=device, dtype=dtype)
