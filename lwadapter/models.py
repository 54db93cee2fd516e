"""Build or load decoder-only Hugging Face recommenders, reach their decoder layers, place their inputs."""

import contextlib

import torch
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


def recommender_from_spec(spec: dict, n_items: int):
    """build_recommender(**spec), or load_pretrained_recommender when the spec names a checkpoint `path`; then an
    `arch` or `n_layers` in the spec describes the checkpoint and is checked against it."""
    spec = dict(spec)
    if "path" not in spec:
        return build_recommender(n_items=n_items, **spec)
    path, arch, n_layers = spec.pop("path"), spec.pop("arch", None), spec.pop("n_layers", None)
    model = load_pretrained_recommender(path, n_items, **spec)
    found = (model.config.model_type, len(decoder_layers(model)))
    if (arch or found[0], n_layers or found[1]) != found:
        raise ValueError(f"checkpoint {path} is a {found[1]}-layer {found[0]} model, but the spec says "
                         f"arch={arch!r}, n_layers={n_layers!r}: correct the spec (notebook 02's parameters)")
    return model


def _first_id(token_id):
    """A config's special-token id, which some checkpoints store as a list (e.g. several EOS ids)."""
    return token_id[0] if isinstance(token_id, (list, tuple)) and token_id else token_id


def load_pretrained_recommender(path, n_items: int, max_len: int = 50, **from_pretrained_kwargs):
    """A local Hugging Face causal-LM checkpoint (Llama-3, Qwen3, ...) turned into an item recommender.

    Appends `n_items` item tokens after its existing vocabulary (resize_token_embeddings, mean-initialised), so
    token `config.item_token_offset + i` is item i, and sets `num_items` and `max_history`. BOS is the
    checkpoint's BOS, else its EOS, else a new token appended after the items; PAD is its PAD, else EOS, else
    BOS (padding is masked out). Extra keyword arguments go to AutoModelForCausalLM.from_pretrained.
    """
    model = AutoModelForCausalLM.from_pretrained(path, **from_pretrained_kwargs)
    cfg = model.config
    offset = model.get_input_embeddings().num_embeddings
    bos = _first_id(cfg.bos_token_id)
    eos = _first_id(cfg.eos_token_id)
    bos = bos if bos is not None else eos
    new_tokens = n_items + (bos is None)
    if bos is None:
        bos = offset + n_items
    pad = _first_id(cfg.pad_token_id)
    model.resize_token_embeddings(offset + new_tokens)
    cfg.item_token_offset = offset
    cfg.num_items = n_items
    cfg.max_history = max_len
    cfg.bos_token_id = bos
    cfg.pad_token_id = pad if pad is not None else (eos if eos is not None else bos)
    return model


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


def item_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Logits over items only (B, T, n_items), dropping special and text tokens. `model` may be wrapped for
    distributed training (DistributedDataParallel under `accelerate launch`); its config is read from the inner model."""
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
