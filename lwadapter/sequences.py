"""Per-user item sequences (the contract between data preparation and every model step) and their batches.

Token layout of every recommender in this repository: token `config.item_token_offset + i` is item `i`; a
sequence starts with the BOS token, so the first position already predicts the first item. Labels are item
indices (0 .. n_items-1), -100 where there is nothing to predict.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Sampler

IGNORE = -100


@dataclass
class SequenceData:
    """A prepared dataset: users' chronological training items plus one validation and one test item each."""

    name: str
    item_ids: list[str]
    user_ids: list[str]
    train: list[list[int]]
    valid: list[int]
    test: list[int]
    item_titles: list[str] = field(default_factory=list)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def histories(self, split: str) -> tuple[list[list[int]], list[int]]:
        """(history, target) per user: validation sees the training items, test also sees the validation item."""
        if split == "valid":
            return [list(t) for t in self.train], list(self.valid)
        if split == "test":
            return [list(t) + [v] for t, v in zip(self.train, self.valid)], list(self.test)
        raise ValueError(f"unknown split {split!r}: use 'valid' or 'test'")

    def save(self, path: Path) -> None:
        from lwadapter.results import atomic_write_text

        atomic_write_text(path, json.dumps(asdict(self), separators=(",", ":")))

    @classmethod
    def load(cls, path: Path) -> "SequenceData":
        """Sequences saved by `save` (notebook 01's sequences.json or corpus.json); a clear error when the file is
        missing, truncated or corrupt."""
        from lwadapter.results import ResultsFileError, read_results_json

        fields = read_results_json(path)
        try:
            return cls(**fields)
        except TypeError as err:
            raise ResultsFileError(path, f"not a prepared dataset ({err})") from None


def training_examples(data: SequenceData, max_len: int, stride: int | None = None
                      ) -> list[tuple[list[int], list[int]]]:
    """(input items, label items) windows of at most max_len training items, so every training item is a label
    exactly once and no validation or test item ever is.

    Windows end at each user's last training item and step back by `stride` (default max_len: non-overlapping).
    With stride < max_len the windows overlap and each one labels only its last `stride` items (the earliest
    window labels all of its items), so every label keeps the longest context a window gives it.
    """
    stride = stride or max_len
    if not 1 <= stride <= max_len:
        raise ValueError(f"stride={stride} must be between 1 and max_len={max_len}")
    examples = []
    for items in data.train:
        windows = []
        for end in range(len(items), 0, -stride):
            start = max(0, end - max_len)
            first_label = max(start, end - stride) if end > stride else start
            window = items[start:end]
            labels = [IGNORE] * (first_label - start) + window[first_label - start:]
            windows.append((window[:-1], labels))
        examples.extend(reversed(windows))
    return examples


def label_share(data: SequenceData, max_len: int, stride: int | None = None) -> float:
    """Share of all training interactions that training_examples uses as labels (1.0 by construction)."""
    labels = sum(sum(lab != IGNORE for lab in labels) for _, labels in training_examples(data, max_len, stride))
    total = sum(len(items) for items in data.train)
    return labels / total if total else float("nan")


def collate(examples, offset: int, bos: int, pad: int) -> dict[str, torch.Tensor]:
    """Right-padded batch: input_ids = [BOS, items...] as tokens, labels = next items (IGNORE on padding)."""
    width = max(len(lab) for _, lab in examples)
    n = len(examples)
    input_ids = torch.full((n, width), pad, dtype=torch.long)
    attention_mask = torch.zeros((n, width), dtype=torch.long)
    labels = torch.full((n, width), IGNORE, dtype=torch.long)
    for row, (inp, lab) in enumerate(examples):
        tokens = [bos] + [offset + i for i in inp]
        input_ids[row, : len(tokens)] = torch.tensor(tokens)
        attention_mask[row, : len(tokens)] = 1
        labels[row, : len(lab)] = torch.tensor(lab)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def history_examples(histories: list[list[int]], targets: list[int], max_len: int):
    """Evaluation examples: the last max_len-1 history items as input, the target as the final label."""
    out = []
    for hist, target in zip(histories, targets):
        hist = hist[-(max_len - 1):] if max_len > 1 else []
        out.append((hist, [IGNORE] * len(hist) + [target]))
    return out


class LengthBucketBatches(Sampler):
    """Batches of examples of similar length: each epoch a seeded permutation, cut into chunks of `bucket` batches,
    each chunk sorted by length and cut into batches, then the batches shuffled (the same seeded generator). The
    tokens a padded batch computes stay close to the tokens it uses; `bucket=1` is a plain seeded shuffle."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int, bucket: int = 50):
        if batch_size < 1 or bucket < 1:
            raise ValueError(f"batch_size={batch_size} and bucket={bucket} must both be >= 1")
        self.lengths, self.batch_size, self.bucket = list(lengths), batch_size, bucket
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self):
        order = torch.randperm(len(self.lengths), generator=self.generator).tolist()
        chunk = self.batch_size * self.bucket
        batches = []
        for start in range(0, len(order), chunk):
            part = sorted(order[start:start + chunk], key=lambda i: self.lengths[i])
            batches += [part[s:s + self.batch_size] for s in range(0, len(part), self.batch_size)]
        return iter([batches[i] for i in torch.randperm(len(batches), generator=self.generator).tolist()])


def padding_share(lengths: list[int], batches: list[list[int]]) -> float:
    """Share of the token positions computed by right-padded `batches` that are padding."""
    computed = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    used = sum(lengths[i] for b in batches for i in b)
    return 1 - used / computed if computed else 0.0
