"""Build or load decoder-only Hugging Face recommenders, reach their decoder layers, place their inputs."""

import contextlib

import torch
import torch.nn.functional as F
from accelerate.utils import extract_model_from_parallel
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, Qwen3Config

ARCHS = {"llama": LlamaConfig, "qwen3": Qwen3Config}
N_SPECIAL = 2  # <pad>=0, <bos>=1 in models built from a config


def build_recommender(arch: str, n_items: int, n_layers: int = 32, hidden: int = 64, heads: int = 4,
                      kv_heads: int = 2, max_len: int = 50, intermediate: int | None = None,
                      tie_embeddings: bool = False, scaled_init: bool = False, dropout: float = 0.0):
    """A from-scratch LlamaForCausalLM / Qwen3ForCausalLM whose vocabulary is the items plus special tokens.

    tie_embeddings shares the item embeddings between input and output (as SASRec does); scaled_init divides the
    initial output projections of every residual branch (o_proj, down_proj) by sqrt(2 n_layers), GPT-2 style,
    so a deep stack starts close to the identity; dropout is the attention dropout of the Hugging Face config.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}: choose one of {sorted(ARCHS)}")
    config = ARCHS[arch](
        vocab_size=n_items + N_SPECIAL,
        hidden_size=hidden,
        intermediate_size=intermediate or 4 * hidden,
        num_hidden_layers=n_layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=hidden // heads,
        max_position_embeddings=max_len + 1,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=1,
        tie_word_embeddings=tie_embeddings,
        attention_dropout=dropout,
    )
    config.item_token_offset = N_SPECIAL
    config.num_items = n_items
    config.max_history = max_len
    model = AutoModelForCausalLM.from_config(config)
    if scaled_init:
        with torch.no_grad():
            for block in decoder_layers(model):
                block.self_attn.o_proj.weight.div_((2 * n_layers) ** 0.5)
                block.mlp.down_proj.weight.div_((2 * n_layers) ** 0.5)
    return model


def recommender_from_spec(spec: dict, n_items: int, item_titles: list[str] | None = None):
    """build_recommender(**spec), or load_pretrained_recommender when the spec names a checkpoint `path` (a local
    folder or a name of lwadapter.checkpoints.SOURCES, e.g. "smollm2-135m"); then an `arch` or `n_layers` in the
    spec describes the checkpoint and is checked against it, and `item_titles` reach an `item_init: title` spec."""
    spec = dict(spec)
    if "path" not in spec:
        return build_recommender(n_items=n_items, **spec)
    path, arch, n_layers = spec.pop("path"), spec.pop("arch", None), spec.pop("n_layers", None)
    model = load_pretrained_recommender(path, n_items, item_titles=item_titles, **spec)
    found = (model.config.model_type, len(decoder_layers(model)))
    if (arch or found[0], n_layers or found[1]) != found:
        raise ValueError(f"checkpoint {path} is a {found[1]}-layer {found[0]} model, but the spec says "
                         f"arch={arch!r}, n_layers={n_layers!r}: correct the spec (notebook 02's parameters)")
    return model


def _first_id(token_id):
    """A config's special-token id, which some checkpoints store as a list (e.g. several EOS ids)."""
    return token_id[0] if isinstance(token_id, (list, tuple)) and token_id else token_id


ITEM_INITS = ("mean", "random", "title")


def load_pretrained_recommender(path, n_items: int, max_len: int = 50, item_init: str = "mean",
                                item_init_std: float = 0.02, item_titles: list[str] | None = None,
                                text_vocabulary: bool = True, tie_item_head: bool | None = None, seed: int = 0,
                                **from_pretrained_kwargs):
    """A Hugging Face causal-LM checkpoint (a local folder, or a name of lwadapter.checkpoints.SOURCES) turned into
    an item recommender: token `config.item_token_offset + i` is item i; `num_items` and `max_history` are set.

    text_vocabulary=True appends the items after the checkpoint's vocabulary; False keeps only its BOS and PAD
    rows before the items (the text tokens are never scored nor fed, and a 262k-token table costs memory and
    optimiser time). The item rows start as `item_init`: "mean" (transformers' mean-resizing: every item row
    the same), "random" (seeded normal rows) or "title" (the mean of the checkpoint's own token embeddings of each
    item's title in `item_titles`; items without a title start random). Input rows take the text rows' standard
    deviation when the head is untied, else `item_init_std`; output rows take `item_init_std`, so initial item
    logits are small and distinct. tie_item_head=False gives the items a head of their own (E4SRec-style) where the
    checkpoint ties input and output embeddings; None keeps the checkpoint's choice. BOS is the checkpoint's BOS,
    else its EOS, else a new row; PAD is its PAD, else EOS, else BOS (padding is masked out). Extra keyword
    arguments go to AutoModelForCausalLM.from_pretrained.
    """
    from lwadapter.checkpoints import load_causal_lm, resolve_checkpoint

    if item_init not in ITEM_INITS:
        raise ValueError(f"unknown item_init {item_init!r}: choose one of {ITEM_INITS}")
    if item_init == "title" and not item_titles:
        raise ValueError("item_init='title' needs item titles: this dataset has none (use 'random')")
    path = resolve_checkpoint(path)
    model = load_causal_lm(path, "Point to a complete checkpoint (the folder save_pretrained wrote); a named one is "
                                 "converted again once its folder under data/cache/llm is deleted.",
                           **from_pretrained_kwargs)
    cfg = model.config
    text = model.get_input_embeddings().weight.detach().clone()
    bos, eos, pad = (_first_id(t) for t in (cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id))
    bos = bos if bos is not None else eos
    pad = pad if pad is not None else (eos if eos is not None else bos)
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    untie = tied and tie_item_head is False
    if text_vocabulary:
        offset = text.shape[0]
        specials = {}
    else:  # keep BOS and PAD only, renumbered 0 (BOS) and 1 (PAD, when it differs)
        specials = {t: i for i, t in enumerate(dict.fromkeys(t for t in (bos, pad) if t is not None))}
        offset = len(specials)
    new_bos = bos is None
    model.resize_token_embeddings(offset + n_items + new_bos, mean_resizing=item_init == "mean" and text_vocabulary)
    std = item_init_std
    rows_in = _item_rows(text, path, n_items, text.std().item() if untie else std, item_init, item_titles, seed)
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        for old, new in specials.items():
            emb[new] = text[old]
        if item_init != "mean" or not text_vocabulary:
            emb[offset: offset + n_items] = rows_in.to(emb.dtype)
        if untie:
            head = nn.Linear(emb.shape[1], emb.shape[0], bias=False, dtype=emb.dtype, device=emb.device)
            head.weight.copy_(emb)
            head.weight[offset: offset + n_items] = _item_rows(text, path, n_items, std, item_init, item_titles,
                                                                seed + 1).to(emb.dtype)
            cfg.tie_word_embeddings = False
            model.set_output_embeddings(head)
        elif not tied and (item_init != "mean" or not text_vocabulary):
            model.get_output_embeddings().weight[offset: offset + n_items] = _item_rows(
                text, path, n_items, std, item_init, item_titles, seed + 1).to(emb.dtype)
    cfg.item_token_offset = offset
    cfg.num_items = n_items
    cfg.max_history = max_len
    cfg.bos_token_id = offset + n_items if new_bos else specials.get(bos, bos)
    cfg.pad_token_id = specials.get(pad, pad) if pad is not None else cfg.bos_token_id
    cfg.eos_token_id = cfg.bos_token_id if not text_vocabulary else cfg.eos_token_id
    return model


def _item_rows(text: torch.Tensor, path, n_items: int, std: float, item_init: str, titles: list[str] | None,
               seed: int) -> torch.Tensor:
    """(n_items, d) initial item rows of standard deviation `std`: the mean text row ("mean"), seeded normal
    ("random"), or ("title") the mean of each title's token embeddings among the `text` rows, all title rows scaled
    together to `std` (items without a title random)."""
    if item_init == "mean":
        return text.float().mean(0).expand(n_items, -1).clone()
    rows = torch.randn(n_items, text.shape[1], generator=torch.Generator().manual_seed(seed)) * std
    if item_init == "title":
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
        titled = [i for i, title in enumerate(titles[:n_items]) if title]
        ids = [[t for t in tokenizer(titles[i], add_special_tokens=False)["input_ids"] if t < len(text)] or [0]
               for i in titled]
        means = torch.stack([text[torch.tensor(t)].float().mean(0) for t in ids])
        rows[titled] = means * (std / means.std().clamp(min=1e-12))
    return rows


def decoder_layers(model) -> nn.ModuleList:
    """The decoder blocks of any model that keeps them in `model.model.layers` (Llama, Mistral, Qwen2/3, ...)."""
    base = getattr(model, "get_base_model", lambda: model)()
    inner = getattr(base, "model", None)
    layers = getattr(inner, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise TypeError(
            f"{type(base).__name__} does not keep its decoder blocks in `model.model.layers`; "
            "lwadapter supports decoder-only models laid out like Llama, Mistral, Qwen2 and Qwen3"
        )
    return layers


class ItemHead(nn.Module):
    """The item rows of a language-model head (tied or not) as a head of their own, computed in float32 outside
    autocast: hidden (…, d) -> item logits (…, n_items). Gradients reach the item rows of the head's weight only."""

    def __init__(self, head: nn.Linear, offset: int, n_items: int):
        super().__init__()
        self.head, self.offset, self.n_items = head, offset, n_items

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        rows = self.head.weight[self.offset: self.offset + self.n_items]
        bias = None if self.head.bias is None else self.head.bias[self.offset: self.offset + self.n_items]
        with torch.autocast(hidden.device.type, enabled=False):
            return F.linear(hidden.float(), rows.float(), None if bias is None else bias.float())


@contextlib.contextmanager
def item_head(model):
    """Inside the block the model's output embedding is its ItemHead, so a forward computes item logits only (and
    whatever the architecture applies after the head, e.g. Gemma's logit soft-capping); restored after. A head that
    is not a plain nn.Linear (an adapter on it, say) is left as it is and sliced after the full forward."""
    inner = extract_model_from_parallel(model)
    base = getattr(inner, "get_base_model", lambda: inner)()
    head, cfg = base.get_output_embeddings(), inner.config
    if type(head) is not nn.Linear:
        yield False
        return
    base.set_output_embeddings(ItemHead(head, cfg.item_token_offset, cfg.num_items))
    try:
        yield True
    finally:
        base.set_output_embeddings(head)


def item_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """float32 logits over items only (B, T, n_items): the last hidden states times the item rows of the output
    embedding, never the whole vocabulary. `model` may be wrapped by PEFT or for distributed training (DDP under
    `accelerate launch`); its forward is the one called."""
    cfg = extract_model_from_parallel(model).config
    with item_head(model) as items_only:
        logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    if items_only:
        return logits
    return logits[..., cfg.item_token_offset: cfg.item_token_offset + cfg.num_items].float()


def full_vocabulary_item_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The reference item_logits replaces: the whole vocabulary's logits, then the item columns (the speed
    benchmark's "before" and the equality test)."""
    cfg = extract_model_from_parallel(model).config
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    return logits[..., cfg.item_token_offset: cfg.item_token_offset + cfg.num_items]


def to_model_device(model, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch's tensors moved to the device of the model's parameters (a GPU-hosted checkpoint, say)."""
    device = next(model.parameters()).device
    return {k: v.to(device) for k, v in batch.items()}


def as_dtype(dtype):
    """A torch dtype given as itself or by name ("bfloat16", "float32"); None and "auto" pass through."""
    if dtype is None or dtype == "auto" or isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}: use a torch dtype name such as 'float32' or 'bfloat16'")
    return value


def best_dtype(device) -> torch.dtype:
    """bfloat16 on a CUDA device that supports it, else float32 (the CPU default every committed result uses)."""
    device = torch.device(device)
    return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32


PRECISIONS = ("auto", "bf16", "float32")
_BF16_FAST: dict[str, bool] = {}


def bf16_matmul_speedup(device="cpu", size: int = 512, repeats: int = 3) -> float:
    """Measured rate of a size^3 bfloat16 matmul over the float32 one on `device` (median of `repeats`)."""
    import statistics
    import time

    device = torch.device(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    seconds = {}
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.randn(size, size, device=device).to(dtype)
        a @ a
        times = []
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            a @ a
            sync()
            times.append(time.perf_counter() - start)
        seconds[dtype] = statistics.median(times)
    return seconds[torch.float32] / seconds[torch.bfloat16]


def autocast_dtype(precision: str, device) -> torch.dtype | None:
    """The autocast dtype of a precision setting: 'bf16' -> bfloat16, 'float32' -> None (no autocast), 'auto' ->
    bfloat16 where the device runs bf16 matmuls at least twice as fast as float32 (CUDA with bf16 support; a CPU
    with AMX, measured once per process), else None. Weights, optimiser states and losses stay float32."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: choose one of {PRECISIONS}")
    device = torch.device(device)
    if precision == "auto":
        if device.type == "cuda":
            fast = torch.cuda.is_bf16_supported()
        else:
            if device.type not in _BF16_FAST:
                _BF16_FAST[device.type] = bf16_matmul_speedup(device) >= 2.0
            fast = _BF16_FAST[device.type]
        precision = "bf16" if fast else "float32"
    return torch.bfloat16 if precision == "bf16" else None


def mixed_precision(precision: str, device):
    """torch.autocast in the dtype autocast_dtype chooses (a no-op context for float32)."""
    dtype = autocast_dtype(precision, device)
    device = torch.device(device)
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


@contextlib.contextmanager
def activation_checkpointing(model, enabled: bool = True):
    """Activation (gradient) checkpointing of the decoder layers switched on (or off) inside the block, restored after.

    Non-reentrant torch checkpointing: each layer's activations are recomputed in the backward pass instead of kept,
    so back-propagation keeps about one hidden state per layer. Hugging Face checkpoints a layer only while it is in
    training mode, so each decoder block (not its attention or MLP, whose dropout stays as it is) is flagged as
    training for the duration of its own call, in eval mode too. Module hooks run once per forward (the
    recompute runs none).
    """
    base = getattr(model, "get_base_model", lambda: model)()
    was_on = base.is_activation_checkpointing
    flags = {}

    def enter(layer, args):
        flags[layer] = layer.training
        layer.training = True

    def leave(layer, args, output):
        layer.training = flags.pop(layer)

    handles = []
    if enabled:
        base.activation_checkpointing_enable({"use_reentrant": False})
        handles = [h for layer in decoder_layers(model) for h in (layer.register_forward_pre_hook(enter),
                                                                     layer.register_forward_hook(leave))]
    elif was_on:
        base.activation_checkpointing_disable()
    try:
        yield model
    finally:
        for h in handles:
            h.remove()
        if enabled != was_on:
            (base.activation_checkpointing_enable if was_on else base.activation_checkpointing_disable)()


def special_tokens(model) -> tuple[int, int, int]:
    """(item offset, BOS id, PAD id) of a recommender."""
    cfg = model.config
    return cfg.item_token_offset, cfg.bos_token_id, cfg.pad_token_id
