"""Inside a decoder's forward and backward pass, layer by layer: hooks on every layer's output, the hidden states,
per-sequence losses, exact per-sample squared gradients per layer and streamed per-layer gradients (what the
criteria of lwadapter.scoring and the hidden matching of lwadapter.healing read)."""

import contextlib

import torch
from torch import nn
from torch.func import functional_call
from tqdm.auto import tqdm

from lwadapter.models import activation_checkpointing, decoder_layers, item_logits, to_model_device
from lwadapter.sequences import IGNORE
from lwadapter.train import item_cross_entropy


def layer_parameters(model) -> list[list[tuple[str, nn.Parameter]]]:
    """(full name, parameter) of every decoder layer's parameters, one list per layer."""
    names = {id(p): n for n, p in model.named_parameters()}
    return [[(names[id(p)], p) for p in layer.parameters()] for layer in decoder_layers(model)]


@contextlib.contextmanager
def layer_hooks(model, fn):
    """Call fn(l, layer_input, layer_output) after every decoder layer l; a non-None result replaces the output."""
    def hook(l):
        def run(module, args, kwargs, output):
            inp = args[0] if args else kwargs["hidden_states"]
            out = output[0] if isinstance(output, tuple) else output
            new = fn(l, inp, out)
            if new is None:
                return None
            return (new, *output[1:]) if isinstance(output, tuple) else new
        return run

    handles = [layer.register_forward_hook(hook(l), with_kwargs=True)
               for l, layer in enumerate(decoder_layers(model))]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def layer_states(model, batch) -> list[torch.Tensor]:
    """[x_0, ..., x_L]: the input of layer 0 and the output of every layer (B, T, D)."""
    states = {}

    def keep(l, inp, out):
        if l == 0:
            states[0] = inp
        states[l + 1] = out

    with layer_hooks(model, keep):
        item_logits(model, batch["input_ids"], batch["attention_mask"])
    return [states[l] for l in range(len(states))]


def float_item_loss(model, batch, labels=None, reduction: str = "none") -> torch.Tensor:
    """train.next_item_loss with the item logits cast to float32 (a no-op for float32 weights), so a bfloat16
    model's losses are not rounded to three digits."""
    labels = batch["labels"] if labels is None else labels
    return item_cross_entropy(item_logits(model, batch["input_ids"], batch["attention_mask"]).float(), labels,
                              reduction)


def sequence_losses(model, batch, labels=None) -> torch.Tensor:
    """(B,) mean next-item loss of each sequence over its labelled positions."""
    labels = batch["labels"] if labels is None else labels
    return float_item_loss(model, batch, labels).sum(dim=1) / (labels != IGNORE).sum(dim=1)


@contextlib.contextmanager
def _requiring_grad(params):
    """Let gradients reach `params` even when they are frozen (e.g. under an adapter); flags restored after."""
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(True)
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


def _owns_parameters(module) -> bool:
    return any(True for _ in module.parameters(recurse=False))


def _per_sample_gradient(module, x: torch.Tensor, delta: torch.Tensor) -> list[torch.Tensor]:
    """Per-sample gradients (B, ...) of `module`'s own parameters from its input x and output gradient delta."""
    b = len(x)
    if isinstance(module, nn.Linear):
        x, delta = x.reshape(b, -1, x.shape[-1]), delta.reshape(b, -1, delta.shape[-1])
        grads = [delta.transpose(1, 2) @ x]
        return grads + ([delta.sum(dim=1)] if module.bias is not None else [])
    names = [n for n, _ in module.named_parameters(recurse=False)]
    if "RMSNorm" in type(module).__name__ and names == ["weight"]:  # y = weight * x_hat
        x_hat = functional_call(module, {"weight": torch.ones_like(module.weight)}, (x,))
        return [(delta * x_hat).reshape(b, -1, x.shape[-1]).sum(dim=1)]
    raise TypeError(f"per-sample gradients support nn.Linear and RMSNorm parameters, not {type(module).__name__} "
                    f"({names}); score this model with the other criteria")


def per_sample_squared_gradients(model, batch, labels=None) -> torch.Tensor:
    """(B, L): for every sequence n and layer l, the sum over l's parameters of the squared gradient of L_n.

    Exact, from one batched forward and backward: L_n depends only on row n, so the gradient of sum_n L_n with
    respect to a module's output at row n is dL_n/d(output_n), and a Linear's per-sample weight gradient is
    sum_t delta_{n,t} x_{n,t}^T (an RMSNorm's: sum_t delta_{n,t} * x_hat_{n,t}). Memory: one training step plus
    the per-sample gradients of one module at a time. It reads every module's input and output, so it runs without
    activation checkpointing. Returned on the CPU.
    """
    batch = to_model_device(model, batch)
    labels = None if labels is None else labels.to(batch["labels"].device)
    owners = [(l, m) for l, layer in enumerate(decoder_layers(model)) for m in layer.modules() if _owns_parameters(m)]
    calls = {m: [] for _, m in owners}
    hooks = [m.register_forward_hook(lambda mod, args, out: calls[mod].append((args[0], out))) for _, m in owners]
    try:
        params = [p for _, m in owners for p in m.parameters(recurse=False)]
        with activation_checkpointing(model, False), _requiring_grad(params):
            losses = sequence_losses(model, batch, labels)
            outputs = [out for _, m in owners for _, out in calls[m]]
            deltas = iter(torch.autograd.grad(losses.sum(), outputs))
    finally:
        for h in hooks:
            h.remove()
    squared = torch.zeros(len(batch["input_ids"]), len(decoder_layers(model)), dtype=torch.float64)
    for l, m in owners:
        grads = None
        for x, _ in calls[m]:  # a module called several times: its per-sample gradients add up
            g = _per_sample_gradient(m, x.detach(), next(deltas))
            grads = g if grads is None else [a + c for a, c in zip(grads, g)]
        squared[:, l] += sum(g.flatten(1).double().pow(2).sum(dim=1) for g in grads).cpu()
    return squared


@contextlib.contextmanager
def _streamed_gradients(model, visit):
    """Inside the block, a backward pass hands each decoder-layer parameter's gradient to visit(layer, parameter,
    gradient) as soon as it is complete, then frees it: no full gradient is ever held. Only layer parameters
    require grad meanwhile; flags and any existing .grad are restored after."""
    layers = layer_parameters(model)
    params = {p: l for l, layer in enumerate(layers) for _, p in layer}
    saved = [(p, p.requires_grad, p.grad) for p in model.parameters()]

    def hook(p):
        visit(params[p], p, p.grad)
        p.grad = None

    handles = []
    try:
        for p, _, _ in saved:
            p.requires_grad_(p in params)
            p.grad = None
        handles = [p.register_post_accumulate_grad_hook(hook) for p in params]
        yield
    finally:
        for h in handles:
            h.remove()
        for p, flag, grad in saved:
            p.requires_grad_(flag)
            p.grad = grad


def backward_batches(model, batches, visit, desc: str) -> torch.Tensor:
    """Back-propagate every batch's token-summed loss through _streamed_gradients(visit(b, layer, param, grad));
    returns the batches' label counts."""
    model.eval()
    counts = []
    for b, batch in enumerate(tqdm(batches, desc=desc, leave=False)):
        batch = to_model_device(model, batch)
        with _streamed_gradients(model, lambda l, p, g: visit(b, l, p, g)):
            float_item_loss(model, batch, reduction="sum").backward()
        counts.append(float((batch["labels"] != IGNORE).sum()))
    return torch.tensor(counts)
