"""Data preparation: rating threshold, k-core, the study's sampling, chronological split; the datasets' defaults.

Sources are fetched by lwadapter.raw_files and read by lwadapter.readers into one long table (user, item, rating,
timestamp, row); sorting by (timestamp, row) gives each user's chronological sequence with a deterministic tie-break.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lwadapter.raw_files import DataError, fetch_movielens
from lwadapter.readers import read_interactions
from lwadapter.results import sha256_file, write_json
from lwadapter.runtime import STUDY_SET, ROOT, RunFolders
from lwadapter.sequences import SequenceData, label_share, training_examples

AMAZON_DEFAULT = ROOT.parent / "shared" / "data" / "amazon-electronics" / "gerec-electronics-sample-2018"


@dataclass(frozen=True)
class Preparation:
    """How a dataset is filtered and sampled (the study: 1,000 most active users x 500 most popular items)."""

    min_rating: float | None = None
    k_core: int = 5
    n_users: int | None = None
    n_items: int | None = None
    min_sequence: int = 3


DATASETS = {
    "ml-100k": Preparation(k_core=5),
    "amazon-electronics": Preparation(min_rating=None, k_core=0, n_users=1000, n_items=500),
}



# ---------------------------------------------------------------- preparation
def k_core(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """Iteratively drop users and items with fewer than k interactions until every one has at least k."""
    while k > 1:
        users = frame["user"].map(frame["user"].value_counts())
        items = frame["item"].map(frame["item"].value_counts())
        keep = (users >= k) & (items >= k)
        if keep.all():
            break
        frame = frame[keep]
    return frame


def sample_active(frame: pd.DataFrame, n_users: int | None, n_items: int | None) -> pd.DataFrame:
    """The study's sampling: the n_users most active users and the n_items most popular items, both counted on
    the same data, then the interactions where the two sets meet (count ties broken by id)."""
    keep = pd.Series(True, index=frame.index)
    for col, n in (("user", n_users), ("item", n_items)):
        if n is None:
            continue
        counts = frame[col].value_counts()
        if n > len(counts):
            raise DataError(f"n_{col}s={n} is larger than the {len(counts)} {col}s left after filtering; "
                            f"choose n_{col}s <= {len(counts)}")
        ranked = counts.rename("n").reset_index().sort_values(["n", col], ascending=[False, True], kind="stable")
        keep &= frame[col].isin(set(ranked[col].head(n)))
    return frame[keep]


def chronological_split(frame: pd.DataFrame, name: str, titles: dict[str, str]) -> SequenceData:
    """Leave-one-out by time: last item is test, second-to-last validation, the rest training."""
    frame = frame.sort_values(["user", "timestamp", "row"], kind="stable")
    item_ids = sorted(frame["item"].unique())
    index = {item: k for k, item in enumerate(item_ids)}
    users, train, valid, test = [], [], [], []
    for user, group in frame.groupby("user", sort=True):
        seq = [index[i] for i in group["item"]]
        users.append(str(user))
        train.append(seq[:-2])
        valid.append(seq[-2])
        test.append(seq[-1])
    return SequenceData(name=name, item_ids=[str(i) for i in item_ids], user_ids=users, train=train,
                        valid=valid, test=test, item_titles=[titles.get(i, "") for i in item_ids])


def prepare(frame: pd.DataFrame, name: str, prep: Preparation, titles: dict[str, str]) -> tuple[SequenceData, dict]:
    """Threshold, k-core, sample, drop too-short sequences, split. Returns the data and the per-stage counts."""
    frame, stages = filter_interactions(frame, name, prep)
    return chronological_split(frame, name, titles), stages


def filter_interactions(frame: pd.DataFrame, name: str, prep: Preparation) -> tuple[pd.DataFrame, dict]:
    """The interactions `prepare` keeps (threshold, k-core, sample, too-short sequences dropped) and the per-stage
    counts."""
    stages = {"raw": _counts(frame)}
    frame = frame.drop_duplicates(["user", "item"], keep="last")
    if prep.min_rating is not None:
        frame = frame[frame["rating"] >= prep.min_rating]
    stages["rating_threshold"] = _counts(frame)
    frame = k_core(frame, prep.k_core)
    stages["k_core"] = _counts(frame)
    frame = sample_active(frame, prep.n_users, prep.n_items)
    stages["sampled"] = _counts(frame)
    lengths = frame["user"].map(frame["user"].value_counts())
    frame = frame[lengths >= prep.min_sequence]
    stages["min_sequence"] = _counts(frame)
    if frame.empty:
        raise DataError(f"nothing is left of {name} after filtering ({stages}); lower k_core, min_rating or "
                        "min_sequence, or sample more users/items")
    return frame, stages


def _counts(frame: pd.DataFrame) -> dict[str, int]:
    return {"users": int(frame["user"].nunique()), "items": int(frame["item"].nunique()),
            "interactions": int(len(frame))}


def data_card(data: SequenceData, stages: dict, source: dict, window: int = 50) -> dict:
    """Summary numbers of a prepared dataset (results/<dataset>/data_stats.json); `labels`: the training windows of
    `window` items (notebook 02's max_len) and the share of training interactions they use as labels."""
    lengths = np.array([len(t) + 2 for t in data.train])
    n_inter = int(lengths.sum())
    return {
        "dataset": data.name,
        "users": data.n_users,
        "items": data.n_items,
        "interactions": n_inter,
        "density": round(n_inter / (data.n_users * data.n_items), 6),
        "sequence_length": {q: float(np.quantile(lengths, p)) for q, p in
                            (("min", 0), ("q25", .25), ("median", .5), ("q75", .75), ("q90", .9), ("max", 1))},
        "splits": {"train": int(lengths.sum() - 2 * data.n_users), "valid": data.n_users, "test": data.n_users},
        "items_with_title": sum(bool(t) for t in data.item_titles),
        "labels": {"window": window, "windows": len(training_examples(data, window)),
                   "share": label_share(data, window)},
        "stages": stages,
        "source": source,
    }


def prepare_dataset(dataset: str = "ml-100k", data_path: str | Path | None = None, *, min_rating=...,
                    k_core=..., n_users=..., n_items=..., columns: str | None = None,
                    folders: RunFolders | None = None) -> tuple[SequenceData, dict]:
    """Prepare a dataset end to end; writes the sequences and the data card into `folders` (default: the study
    set's, data/processed/<dataset>/sequences.json and results/<dataset>/data_stats.json).

    Parameters left at `...` take the dataset's defaults (DATASETS); None switches a step off.
    """
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; choose one of {sorted(DATASETS)} "
                        "(or add an entry to lwadapter.data.DATASETS)")
    defaults = DATASETS[dataset]
    overrides = {"min_rating": min_rating, "k_core": k_core, "n_users": n_users, "n_items": n_items}
    prep = Preparation(**{**defaults.__dict__, **{k: v for k, v in overrides.items() if v is not ...}})
    if data_path is None:
        data_path = fetch_movielens() if dataset == "ml-100k" else AMAZON_DEFAULT
    path = Path(data_path)
    frame, titles = read_interactions(path, columns)
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    source = {"path": _display_path(path), "files": {f.name: sha256_file(f) for f in files if f.is_file()},
              "preparation": prep.__dict__}
    frame, stages = filter_interactions(frame, dataset, prep)
    data = chronological_split(frame, dataset, titles)
    card = {**data_card(data, stages, source), "time": time_span(frame)}
    folders = folders or RunFolders(dataset)
    data.save(folders.sequences)
    write_json(folders.results / "data_stats.json", card)
    return data, card


CALENDAR_START = pd.Timestamp("1990-01-01").timestamp()  # unix seconds; smaller timestamps only order events


def time_span(frame: pd.DataFrame) -> dict | None:
    """The dates of an interaction table's first event, first test event (the earliest of the users' last events)
    and last event, where its timestamps are calendar time (unix seconds from 1990 on); None where they only order
    events (basket indices, line numbers)."""
    stamps = frame["timestamp"]
    if stamps.min() < CALENDAR_START:
        return None
    first_test = frame.groupby("user")["timestamp"].max().min()
    return {"first": _date(stamps.min()), "first_test": _date(first_test), "last": _date(stamps.max()),
            "first_test_unix": float(first_test)}


def _date(unix: float) -> str:
    return pd.Timestamp(unix, unit="s").strftime("%Y-%m-%d")


def _display_path(path: Path) -> str:
    """A path that reads the same on every machine: relative to the repository, or to its parent."""
    path = path.resolve()
    for base, prefix in ((ROOT, ""), (ROOT.parent, "../")):
        if path.is_relative_to(base):
            return prefix + str(path.relative_to(base))
    return path.name


def load_prepared(dataset: str, parameter_set: str = STUDY_SET) -> SequenceData:
    """The prepared sequences notebook 01 wrote for `parameter_set`."""
    return SequenceData.load(RunFolders(dataset, parameter_set).sequences)


def card_table(card: dict) -> pd.DataFrame:
    """The data card's filtering stages as a table (rows: stage; columns: users, items, interactions)."""
    return pd.DataFrame(card["stages"]).T.rename_axis("stage")
