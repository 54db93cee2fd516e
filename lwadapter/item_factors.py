"""Low-dimensional item tables for a fine-tuned LLM (E4SRec, LLaRA): each item's input row is a `dim`-number code
times a shared projection to the model's width, and its head row likewise, so that the item tables train far fewer
numbers than width x items. Fitted, they fold back into the plain tables they replaced (fold_item_factors)."""

import torch
from torch import nn


def _factors(weight: torch.Tensor, dim: int) -> tuple[nn.Parameter, nn.Parameter]:
    """(rows x dim, dim x width): the best rank-`dim` approximation of `weight`'s rows (truncated SVD)."""
    if not 0 < dim <= min(weight.shape):
        raise ValueError(f"item_dim={dim}: give 1 to {min(weight.shape)} (the model's width and vocabulary bound it)")
    u, s, vh = torch.linalg.svd(weight.detach().float(), full_matrices=False)
    return (nn.Parameter((u[:, :dim] * s[:dim]).to(weight.dtype).contiguous()),
            nn.Parameter(vh[:dim].to(weight.dtype).contiguous()))


class FactoredEmbedding(nn.Module):
    """An input embedding whose rows are codes @ projection; the embedding it replaces keeps its class and scale (Gemma
    multiplies its rows by sqrt(width)) for fold()."""

    def __init__(self, embedding: nn.Embedding, dim: int):
        super().__init__()
        self.codes, self.projection = _factors(embedding.weight, dim)
        self.__dict__["plain"] = embedding  # not a submodule: neither trained nor saved
        self.scale = float(getattr(embedding, "embed_scale", 1.0))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return nn.functional.embedding(input_ids, self.codes) @ self.projection * self.scale

    def fold(self) -> nn.Embedding:
        with torch.no_grad():
            self.plain.weight.copy_(self.codes @ self.projection)
        return self.plain


class FactoredHead(nn.Module):
    """An output head whose rows are codes @ projection: logits = (hidden @ projection.T) @ codes.T."""

    def __init__(self, head: nn.Linear, dim: int):
        super().__init__()
        if head.bias is not None:
            raise ValueError("the item head has a bias: item_dim factors bias-free heads only")
        self.codes, self.projection = _factors(head.weight, dim)
        self.__dict__["plain"] = head

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden @ self.projection.T @ self.codes.T

    def fold(self) -> nn.Linear:
        with torch.no_grad():
            self.plain.weight.copy_(self.codes @ self.projection)
        return self.plain


def factor_item_tables(model, dim: int):
    """`model` (untied item head) with both item tables replaced by their rank-`dim` factors, in place."""
    model.set_input_embeddings(FactoredEmbedding(model.get_input_embeddings(), dim))
    model.set_output_embeddings(FactoredHead(model.get_output_embeddings(), dim))
    return model


def fold_item_factors(model):
    """`model` with factored item tables (after merge_and_unload) back to plain tables holding their products."""
    if isinstance(model.get_input_embeddings(), FactoredEmbedding):
        model.set_input_embeddings(model.get_input_embeddings().fold())
    if isinstance(model.get_output_embeddings(), FactoredHead):
        model.set_output_embeddings(model.get_output_embeddings().fold())
    return model
