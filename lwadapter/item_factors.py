"""Low-dimensional item tables for a fine-tuned LLM (E4SRec, LLaRA): each item's input row is a `dim`-number code
times a shared projection to the model's width, and its head row likewise, so that the item tables train far fewer
numbers than width x items. The codes start as the best rank-`dim` approximation of the item rows, or as given
(E4SRec: a trained sequential recommender's item embeddings); the special rows (BOS, PAD) stay the model's own.
Fitted, the factors fold back into the plain tables they replaced (fold_item_factors)."""

import torch
from torch import nn


def _factors(rows: torch.Tensor, dim: int, codes: torch.Tensor | None) -> tuple[nn.Parameter, nn.Parameter]:
    """(codes: items x dim, projection: dim x width) whose product best approximates `rows`: the truncated SVD, or
    the given codes and their least-squares projection."""
    if codes is None:
        if not 0 < dim <= min(rows.shape):
            raise ValueError(f"item_dim={dim}: give 1 to {min(rows.shape)} (the model's width and items bound it)")
        u, s, _ = torch.linalg.svd(rows.detach().float(), full_matrices=False)
        codes = u[:, :dim] * s[:dim]
    elif codes.shape[0] != rows.shape[0]:
        raise ValueError(f"{codes.shape[0]} item codes for {rows.shape[0]} items: take them from a model of the "
                         "same data")
    codes = codes.detach().float()
    projection = torch.linalg.lstsq(codes, rows.detach().float()).solution
    return nn.Parameter(codes.to(rows.dtype).contiguous()), nn.Parameter(projection.to(rows.dtype).contiguous())


class FactoredItems(nn.Module):
    """An input embedding (`head=False`: ids -> rows) or an output head (`head=True`: hidden -> logits) whose item
    rows (`offset` to `offset + n_items`) are codes @ projection; the other rows are the wrapped module's. The
    wrapped module keeps its class (and Gemma's embedding scale) for fold()."""

    def __init__(self, plain: nn.Module, offset: int, n_items: int, dim: int, codes=None, head: bool = False,
                 frozen_codes: bool = False):
        super().__init__()
        if head and plain.bias is not None:
            raise ValueError("the item head has a bias: item factors fit bias-free heads only")
        self.plain, self.offset, self.n_items, self.head = plain, offset, n_items, head
        codes, self.projection = _factors(plain.weight[offset: offset + n_items], dim, codes)
        if frozen_codes:  # a buffer: PEFT trains every parameter of the item tables, never a buffer
            self.register_buffer("codes", codes.detach())
        else:
            self.codes = codes

    def item_rows(self) -> torch.Tensor:
        return self.codes @ self.projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        items = slice(self.offset, self.offset + self.n_items)
        if self.head:
            logits = self.plain(x)
            return torch.cat([logits[..., :items.start], x @ self.item_rows().T, logits[..., items.stop:]], -1)
        out = self.plain(x)
        is_item = (x >= items.start) & (x < items.stop)
        rows = nn.functional.embedding((x - items.start).clamp(0, self.n_items - 1), self.item_rows())
        return torch.where(is_item[..., None], rows * getattr(self.plain, "scalar_embed_scale", 1.0), out)

    def fold(self) -> nn.Module:
        with torch.no_grad():
            self.plain.weight[self.offset: self.offset + self.n_items] = self.item_rows()
        return self.plain


def factor_item_tables(model, item_dim: int | None = None, item_codes: torch.Tensor | None = None,
                       frozen_codes: bool = False):
    """`model` (a recommender with an untied item head) with the item rows of both tables replaced by rank-`item_dim`
    factors (starting from `item_codes`, n_items x dim, when given; kept as they are with `frozen_codes`, E4SRec's
    choice), in place; unchanged when neither is given."""
    if not item_dim and item_codes is None:
        return model
    cfg = model.config
    dim = item_codes.shape[1] if item_codes is not None else item_dim
    for head, table in ((False, model.get_input_embeddings()), (True, model.get_output_embeddings())):
        factored = FactoredItems(table, cfg.item_token_offset, cfg.num_items, dim, item_codes, head, frozen_codes)
        (model.set_output_embeddings if head else model.set_input_embeddings)(factored)
    return model


def fold_item_factors(model):
    """`model` with factored item tables (after merge_and_unload) back to plain tables holding their products."""
    if isinstance(model.get_input_embeddings(), FactoredItems):
        model.set_input_embeddings(model.get_input_embeddings().fold())
    if isinstance(model.get_output_embeddings(), FactoredItems):
        model.set_output_embeddings(model.get_output_embeddings().fold())
    return model
