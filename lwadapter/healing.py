"""Heal a compact recommender: PEFT LoRA, bridging adapters across removed layers, distillation from the full model.

A compact model (lwadapter.compact) keeps some decoder layers of a full model; `config.kept_layers` lists their
original indices. Healing trains small adapters on it while the full model acts as a frozen teacher:
- LoRA on every attention and MLP projection (q, k, v, o, gate, up, down), through PEFT;
- optionally a bridge, x + B(A x) with B = 0 at start, on the residual stream entering each kept layer whose
  predecessor in the full model was removed (the study's non-contiguous layer connection);
- loss = next-item cross-entropy + kd_weight * T^2 KL(teacher || student) on temperature-softened item logits
  + hidden_weight * sum_l w_l ||h_l - h^teacher_orig(l)||^2 / ||h^teacher_orig(l)||^2, matching kept layer l's output
  to the teacher's output at l's original position (w_l: normalised per-layer scores, e.g. Fisher).
"""

import contextlib
import copy
import json
import math
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from accelerate.utils import extract_model_from_parallel
from peft import LoraConfig, PeftModel, get_peft_model, get_peft_model_state_dict
from peft.utils import SAFETENSORS_WEIGHTS_NAME
from safetensors import safe_open
from torch import nn

from lwadapter.checkpoints import check_keys
from lwadapter.compact import compact_model, kept_layers, validate_keep
from lwadapter.evaluate import flops_per_token
from lwadapter.layer_gradients import layer_hooks
from lwadapter.models import activation_checkpointing, decoder_layers, item_logits
from lwadapter.results import content_hash, provenance, sha256_file, write_json
from lwadapter.runtime import set_seed
from lwadapter.sequences import IGNORE, SequenceData
from lwadapter.train import (Trained, checkpoint_dir, data_checksum, fit, item_cross_entropy, save_checkpoint,
                             train_recommender)

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
EMBEDDING_TABLES = ("embed_tokens", "lm_head")  # the input rows and the output head, PEFT's embedding layers
BRIDGE = "bridge"  # attribute name of a bridge inside its decoder layer, and the PEFT `modules_to_save` entry
BRIDGE_FILE = "bridges.json"
CODE_FILES = ("compact.py", "healing.py", "layer_gradients.py")  # beyond train.CODE_FILES: what shapes an adapter


class Bridge(nn.Module):
    """x + up(down(x)): a rank-`rank` correction of the hidden state; `up` starts at zero, so it starts as identity."""

    def __init__(self, hidden: int, rank: int):
        super().__init__()
        self.down = nn.Linear(hidden, rank, bias=False)
        self.up = nn.Linear(rank, hidden, bias=False)
        nn.init.zeros_(self.up.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.down(x))


def _bridge_pre_hook(layer, args, kwargs):
    """Feed the layer its bridged input (looked up at call time, so PEFT's wrapper of `layer.bridge` is used)."""
    if args:
        return (getattr(layer, BRIDGE)(args[0]), *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": getattr(layer, BRIDGE)(kwargs["hidden_states"])}


def gap_positions(kept: list[int]) -> list[int]:
    """Positions i in the compact model whose layer's predecessor in the full model was removed
    (kept[i] - kept[i-1] > 1, with kept[-1] read as -1 so a removed prefix before the first kept layer counts)."""
    return [i for i, layer in enumerate(kept) if layer - (kept[i - 1] if i else -1) > 1]


def add_bridges(model, rank: int) -> list[int]:
    """Insert a Bridge before every layer of the compact `model` that follows a gap; returns their positions.
    Bridges are submodules `model.model.layers[i].bridge` applied by a forward pre-hook, so the layers' own
    parameter names are unchanged and PEFT can train and save the bridges as `modules_to_save`."""
    if not isinstance(rank, int) or rank < 1:
        raise ValueError(f"bridge rank must be a positive integer, got {rank!r}")
    layers = decoder_layers(model)
    if any(hasattr(layer, BRIDGE) for layer in layers):
        raise ValueError("the model already has bridges: add them once, before attaching LoRA")
    positions = gap_positions(kept_layers(model))
    for i in positions:
        layers[i].add_module(BRIDGE, Bridge(model.config.hidden_size, rank))
        layers[i].register_forward_pre_hook(_bridge_pre_hook, with_kwargs=True)
    return positions


def attach_adapters(compact, rank: int = 8, alpha: float = 16.0, dropout: float = 0.0,
                    bridge_rank: int | None = None) -> PeftModel:
    """A PeftModel with LoRA (rank, alpha, dropout) on all attention and MLP projections of `compact`, and bridges of
    rank `bridge_rank` at its gaps when given. Modifies `compact` in place (PEFT injects the adapters into it)."""
    if not isinstance(rank, int) or rank < 1:
        raise ValueError(f"LoRA rank must be a positive integer, got {rank!r}")
    bridged = bool(bridge_rank) and bool(add_bridges(compact, bridge_rank))
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(LORA_TARGETS),
                        modules_to_save=[BRIDGE] if bridged else None)
    return get_peft_model(compact, config)


def bridge_rank_of(model) -> int | None:
    """The rank of the model's bridges, None when it has none."""
    ranks = {m.down.out_features for layer in decoder_layers(model) for m in layer.modules() if isinstance(m, Bridge)}
    return ranks.pop() if ranks else None


def trains_embedding_tables(model: PeftModel) -> bool:
    """Whether the adapter trains the embedding tables whole (PEFT `modules_to_save`), so that its file holds them.
    Read from the adapter's config: PEFT's own guess ("auto") looks the base checkpoint up by the absolute path it
    was loaded from, and guesses differently once that folder is gone (another machine, a moved cache)."""
    return bool(set(model.peft_config["default"].modules_to_save or ()) & set(EMBEDDING_TABLES))


def save_adapter(model: PeftModel, path: Path) -> None:
    """Save the adapter weights (PEFT `save_pretrained`, the embedding tables when it trains them) and, when there
    are bridges, their rank beside them."""
    path = Path(path)
    model.save_pretrained(path, save_embedding_layers=trains_embedding_tables(model))
    rank = bridge_rank_of(model)
    if rank:
        write_json(path / BRIDGE_FILE, {"rank": rank})


def load_adapter(compact, path: Path) -> PeftModel:
    """Reload a saved adapter onto a fresh copy of the compact model it was trained on (bridges re-inserted)."""
    path = Path(path)
    if not (path / "adapter_config.json").exists():
        raise FileNotFoundError(f"no adapter in {path}: save one with lwadapter.healing.save_adapter")
    bridge_file = path / BRIDGE_FILE
    if bridge_file.exists():
        add_bridges(compact, json.loads(bridge_file.read_text())["rank"])
    model = PeftModel.from_pretrained(compact, path).eval()
    saved = set(_adapter_shapes(path))
    expected = set(get_peft_model_state_dict(model, save_embedding_layers=trains_embedding_tables(model)))
    check_keys(path / SAFETENSORS_WEIGHTS_NAME, expected - saved, saved - expected,
               hint="The adapter does not fit the compact model it is loaded onto (PEFT alone would keep a missing "
                    "LoRA weight at its initial value): heal again, e.g. delete the cached folder.")
    return model


def merged(model: PeftModel):
    """A copy of `model` with LoRA merged into the base weights (merge_and_unload) for in-memory inference. Bridges
    stay as hooked submodules, which a plain from_pretrained would drop: persist the adapter (save_adapter) instead."""
    return copy.deepcopy(model).merge_and_unload().eval()


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor,
                      temperature: float) -> torch.Tensor:
    """T^2 * KL(teacher || student) of the temperature-softened distributions, averaged over positions in `mask`;
    computed in float32 whatever the logits' dtype."""
    if temperature <= 0:
        raise ValueError(f"distillation temperature must be positive, got {temperature!r}")
    kl = F.kl_div(F.log_softmax(student_logits.float() / temperature, dim=-1),
                  F.log_softmax(teacher_logits.float() / temperature, dim=-1),
                  log_target=True, reduction="none").sum(-1)
    mask = mask.to(kl.dtype)
    return (kl * mask).sum() / mask.sum().clamp(min=1) * temperature**2


def hidden_matching_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], weights: torch.Tensor,
                         mask: torch.Tensor) -> torch.Tensor:
    """sum_l weights[l] * ||student_l - teacher_l||^2 / ||teacher_l||^2 over the positions in `mask`: a relative
    squared error, so layers count by their weight, not by the size of their hidden states."""
    mask = mask.to(student[0].dtype)
    per_layer = torch.stack([((s - t).pow(2).sum(-1) * mask).sum() / (t.pow(2).sum(-1) * mask).sum().clamp(min=1e-12)
                             for s, t in zip(student, teacher)])
    return (weights.to(per_layer) * per_layer).sum()


def _recording(model, states: dict, on: bool):
    """While on, layer_gradients.layer_hooks store each layer's output in `states` (output left unchanged)."""
    return layer_hooks(model, lambda layer, _input, output: states.__setitem__(layer, output)) if on \
        else contextlib.nullcontext()


class DistillationLoss:
    """`loss_fn(model, batch)` for lwadapter.train.train_recommender: next-item cross-entropy plus distillation from
    the full `teacher` (put in eval mode and moved to the batch's device; its logits computed under no_grad on the
    same batch, so none of its activations is kept; its hidden states recorded only when matched). With
    hidden_weight > 0 each kept layer's output is matched to the teacher's output at its original position,
    weighted by `layer_scores` (one non-negative score per teacher layer, e.g. Fisher; normalised over the kept
    layers; uniform when None). With both weights 0 it is plain next-item fine-tuning and the teacher never runs.

    With `memo` (and no hidden matching) the teacher's item logits are memoised per training window, keyed by its
    tokens: the teacher runs on a window's first batch only (the first epoch) and later epochs read its logits back
    from CPU memory (windows x labels x n_items numbers in the logits' dtype), saving its forward pass on every later
    step. Its cost is then counted once, in `teacher_flops`, instead of per step in `extra_flops_per_token`."""

    def __init__(self, teacher, temperature: float = 2.0, kd_weight: float = 1.0, hidden_weight: float = 0.0,
                 layer_scores=None, memo: bool = False):
        if kd_weight < 0 or hidden_weight < 0:
            raise ValueError(f"loss weights must be non-negative, got kd_weight={kd_weight}, "
                             f"hidden_weight={hidden_weight}")
        n_teacher = len(decoder_layers(teacher))
        scores = torch.ones(n_teacher) if layer_scores is None else torch.as_tensor(layer_scores, dtype=torch.float)
        if scores.shape != (n_teacher,) or (scores < 0).any():
            raise ValueError(f"layer_scores must hold {n_teacher} non-negative values (one per teacher layer), "
                             f"got shape {tuple(scores.shape)}")
        self.teacher = teacher.eval()
        self.taught = kd_weight > 0 or hidden_weight > 0  # else plain fine-tuning: the teacher never runs
        self.memo = {} if memo and self.taught and hidden_weight == 0 else None
        self.teacher_forward = flops_per_token(teacher.config) if self.taught else 0
        self.extra_flops_per_token = self.teacher_forward if self.memo is None else 0  # its forward pass, per step
        self.teacher_flops = 0.0  # the memoised teacher's forward passes so far
        self.temperature, self.kd_weight, self.hidden_weight = temperature, kd_weight, hidden_weight
        self.scores = scores

    def __call__(self, model, batch) -> torch.Tensor:
        ids, attn, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        inner = extract_model_from_parallel(model)  # a DDP wrapper (accelerate launch) hides config and layers
        kept = kept_layers(inner)
        if max(kept) >= len(self.scores):
            raise ValueError(f"student keeps layers {kept} but the teacher has only {len(self.scores)} layers")
        teacher_states, student_states = {}, {}
        if self.memo is not None:
            teacher_logits = self._memoised_logits(ids, attn)
        elif self.taught:
            self.teacher.to(ids.device)
            with torch.no_grad(), _recording(self.teacher, teacher_states, self.hidden_weight > 0):
                teacher_logits = item_logits(self.teacher, ids, attn)
        with _recording(inner, student_states, self.hidden_weight > 0):
            logits = item_logits(model, ids, attn)
        loss = item_cross_entropy(logits.float(), labels)
        if self.kd_weight:
            loss = loss + self.kd_weight * distillation_loss(logits, teacher_logits, labels != IGNORE,
                                                             self.temperature)
        if self.hidden_weight:
            weights = self.scores[kept] / self.scores[kept].sum().clamp(min=1e-12)
            loss = loss + self.hidden_weight * hidden_matching_loss(
                [student_states[i] for i in range(len(kept))], [teacher_states[k] for k in kept], weights,
                attn.bool())
        return loss

    def _memoised_logits(self, ids: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        """The teacher's item logits for a right-padded batch: read back per window, the whole batch computed (and
        its windows stored) when any window is new. Padding positions hold zeros (no label reads them)."""
        lengths = attn.sum(1).tolist()
        keys = [tuple(row[:n].tolist()) for row, n in zip(ids, lengths)]
        if not all(key in self.memo for key in keys):
            self.teacher.to(ids.device)
            with torch.no_grad():
                logits = item_logits(self.teacher, ids, attn)
            self.teacher_flops += self.teacher_forward * sum(lengths)  # per used token, as train counts a step
            for key, row, n in zip(keys, logits, lengths):
                self.memo.setdefault(key, row[:n].to("cpu", copy=True))
        first = self.memo[keys[0]]
        out = torch.zeros((*ids.shape, first.shape[-1]), dtype=first.dtype)
        for i, (key, n) in enumerate(zip(keys, lengths)):
            out[i, :n] = self.memo[key]
        return out.to(ids.device)


def heal(compact, teacher, data: SequenceData, rank: int = 8, alpha: float = 16.0, dropout: float = 0.0,
         bridge_rank: int | None = None, temperature: float = 2.0, kd_weight: float = 1.0,
         hidden_weight: float = 0.0, layer_scores=None, seed: int = 0, checkpointing: bool = False,
         memo_teacher: bool = True, **train) -> tuple[PeftModel, pd.DataFrame]:
    """Attach adapters to `compact` (in place) and train them with DistillationLoss from `teacher` through
    lwadapter.train.train_recommender (`train`: epochs, lr, batch_size, patience, ...; early stopping on validation
    NDCG@10, best adapter weights restored); `checkpointing` recomputes the student's layer activations in the
    backward pass (models.activation_checkpointing); `memo_teacher` runs the teacher once per training window
    (DistillationLoss memo; its FLOPs, all spent in the first epoch, added to every row of the curve's cumulative
    flops). Returns the PeftModel and its learning curve."""
    set_seed(seed)
    model = attach_adapters(compact, rank, alpha, dropout, bridge_rank)
    loss_fn = DistillationLoss(teacher, temperature, kd_weight, hidden_weight, layer_scores, memo=memo_teacher)
    with activation_checkpointing(model, checkpointing):
        history = train_recommender(model, data, seed=seed, loss_fn=loss_fn, **train)
    history["flops"] += loss_fn.teacher_flops
    return model, history


def adapter_size(path: Path) -> dict:
    """adapter_params (numbers stored in a saved adapter: LoRA and bridges) and adapter_bytes (its file size)."""
    return {"adapter_params": sum(math.prod(shape) for shape in _adapter_shapes(path).values()),
            "adapter_bytes": (Path(path) / SAFETENSORS_WEIGHTS_NAME).stat().st_size}


def _adapter_shapes(path: Path) -> dict[str, list[int]]:
    """Name -> shape of every tensor of a saved adapter, read from the file's header."""
    with safe_open(Path(path) / SAFETENSORS_WEIGHTS_NAME, framework="pt") as weights:
        return {k: weights.get_slice(k).get_shape() for k in weights.keys()}


def healing_code() -> str:
    """A hash of the modules that shape a healed adapter beyond those in train.code_version()."""
    src = Path(__file__).parent
    return content_hash([sha256_file(src / f) for f in CODE_FILES])


def load_healed(path: Path, teacher) -> Trained:
    """A checkpoint written by heal_or_load, rebuilt on `teacher` (the full model it was healed from)."""
    path = Path(path)
    meta = json.loads((path / "meta.json").read_text())
    model = load_adapter(compact_model(teacher, meta["kept_layers"]), path)
    return Trained(model, pd.read_csv(path / "history.csv"), meta, path)


def heal_or_load(name: str, data: SequenceData, teacher: Trained, keep, adapter: dict, train: dict, seed: int = 0,
                 force: bool = False) -> Trained:
    """heal(compact_model(teacher.model, keep), teacher.model, data, seed=seed, **adapter, **train), or the cached
    adapter when teacher checkpoint, kept layers, adapter and training specs, seed, data and code are unchanged
    (`force` retrains). Both routes return what is read back from the checkpoint (train.checkpoint_dir), so their
    outputs are identical. `adapter`: heal's keywords (rank, alpha, bridge_rank, temperature, kd_weight, ...), JSON
    values (layer_scores as a list)."""
    keep = validate_keep(keep, len(decoder_layers(teacher.model)))
    spec = {"teacher": teacher.path.name, "keep": keep, "adapter": adapter, "healing_code": healing_code()}
    path = checkpoint_dir(name, data, spec, train, seed)
    if force or not (path / "meta.json").exists():
        model, history, run = fit(lambda: heal(compact_model(teacher.model, keep), teacher.model, data, seed=seed,
                                               desc=name, **adapter, **train), train)
        save_checkpoint(path, lambda folder: save_adapter(model, folder), history,
                        {"name": name, "kept_layers": keep, **run, "data": data_checksum(data),
                         **provenance({"model": spec, "train": train}, seed)})
    return load_healed(path, teacher.model)
