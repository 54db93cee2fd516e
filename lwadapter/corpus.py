"""Pretraining corpora: per study dataset, a broader item-sequence dataset that shares none of the study's users.

A corpus is a SequenceData with its own item vocabulary and the same chronological leave-one-out split, so the
study's training code pretrains on it and early-stops on its validation items. A mapping (study item index ->
corpus item index, -1 where the corpus lacks the item) carries a pretrained model over to the study's items
(lwadapter.transfer).

- amazon-electronics: the whole shared sample minus every user of the study sample; items match by ASIN.
- ml-100k: MovieLens-1M (other users, collected 2000-2003 against 1997-1998); items match by title, with the
  release year to keep remakes apart.
"""

from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from lwadapter import data as lwdata
from lwadapter.data import Preparation, _counts
from lwadapter.raw_files import DataError, fetch_movielens, fetch_movielens_1m
from lwadapter.readers import read_interactions, read_item_years
from lwadapter.results import sha256_file, write_json
from lwadapter.runtime import RunFolders
from lwadapter.sequences import SequenceData


YEAR_SLACK = 2  # the same film's year differs by up to 2 between MovieLens-100K and -1M (Drunks: 1995 vs 1997)


@dataclass(frozen=True)
class CorpusSource:
    """Where a study dataset's corpus comes from and how its items are matched to the study's: by "id", or by
    "title" with release years read from the item files of the corpus and of the study (`study_source`);
    `shares_source`: the corpus is drawn from the file the study was read from (then that file is used)."""

    fetch: Callable[[], Path]
    match: str
    study_source: Callable[[], Path] | None = None
    shares_source: bool = False


CORPORA = {
    "amazon-electronics": CorpusSource(fetch=lambda: lwdata.AMAZON_DEFAULT, match="id",
                                       shares_source=True),
    "ml-100k": CorpusSource(fetch=fetch_movielens_1m, match="title", study_source=fetch_movielens),
}


def subsample_users(frame: pd.DataFrame, n_users: int | None, seed: int) -> pd.DataFrame:
    """The interactions of n_users users drawn without replacement (seeded) from the sorted user ids; None: all."""
    if n_users is None:
        return frame
    users = np.array(sorted(frame["user"].unique()))
    if not 0 < n_users <= len(users):
        raise DataError(f"n_users={n_users}: the corpus has {len(users)} users; choose 1 <= n_users <= "
                        f"{len(users)}, or None for all")
    drawn = np.random.default_rng(seed).choice(users, n_users, replace=False)
    return frame[frame["user"].isin(set(drawn))]


def build_corpus(frame: pd.DataFrame, name: str, study_users, prep: Preparation, titles: dict[str, str],
                 n_users: int | None = None, seed: int = 0) -> tuple[SequenceData, dict]:
    """Drop every interaction of the study's users, subsample users, then prepare like the study (`prep`: its
    threshold, k-core and minimum length; no top-n sampling). Returns the corpus and its per-stage counts."""
    stages = {"source": _counts(frame)}
    frame = frame[~frame["user"].isin(set(map(str, study_users)))]
    stages["without_study_users"] = _counts(frame)
    frame = subsample_users(frame, n_users, seed)
    corpus, prepared = lwdata.prepare(frame, name, replace(prep, n_users=None, n_items=None), titles)
    stages["subsampled"] = prepared.pop("raw")
    return corpus, {**stages, **prepared}


def match_ids(study_ids: list[str], corpus_ids: list[str]) -> list[int]:
    """For each study item, the corpus item with the same id; -1 where there is none."""
    index = {item: j for j, item in enumerate(corpus_ids)}
    return [index.get(item, -1) for item in study_ids]


def match_titles(study_titles: list[str], study_years: list[str], corpus_titles: list[str],
                 corpus_years: list[str]) -> list[int]:
    """For each study item, the corpus item with the same title (year left out), unless both years are known
    and lie more than YEAR_SLACK apart (a remake); where several remain, the one from the same year. -1 where
    none remains, or several and the year does not decide."""
    by_title = defaultdict(list)
    for j, title in enumerate(corpus_titles):
        by_title[title].append(j)
    mapping = []
    for title, year in zip(study_titles, study_years):
        found = by_title.get(title, []) if title else []
        if year:
            found = [j for j in found if not corpus_years[j] or abs(int(corpus_years[j]) - int(year)) <= YEAR_SLACK]
        if len(found) > 1:
            found = [j for j in found if corpus_years[j] == year]
        mapping.append(found[0] if len(found) == 1 else -1)
    return mapping


def matched_share(mapping: list[int]) -> float:
    """The share of study items that have a corpus item."""
    return sum(j >= 0 for j in mapping) / len(mapping)


def item_mapping(study: SequenceData, corpus: SequenceData, how: str, study_years: dict[str, str] | None = None,
                 corpus_years: dict[str, str] | None = None) -> list[int]:
    """Study item index -> corpus item index (-1: unmatched), by item id or by title (years keyed by item id)."""
    if how == "id":
        return match_ids(study.item_ids, corpus.item_ids)
    if how == "title":
        if not (any(study.item_titles) and any(corpus.item_titles)):
            raise DataError(f"matching {study.name} to {corpus.name} by title, but one of them has no titles; "
                            "prepare both from sources with an item file (.item / u.item)")
        return match_titles(study.item_titles, [(study_years or {}).get(i, "") for i in study.item_ids],
                            corpus.item_titles, [(corpus_years or {}).get(i, "") for i in corpus.item_ids])
    raise ValueError(f"unknown matching {how!r}: use 'id' or 'title'")


def cut_before(frame: pd.DataFrame, study_time: dict | None, name: str) -> pd.DataFrame:
    """The corpus interactions recorded before the study's first test event (study_time: the study's data card
    `time`); an error where either side has no calendar timestamps or nothing precedes it."""
    span = lwdata.time_span(frame)
    if study_time is None or span is None:
        raise DataError(f"cutting {name} at the study's first test event needs calendar timestamps on both sides; "
                        "this study or corpus only orders its events: pretrain without the cut and state it")
    kept = frame[frame["timestamp"] < study_time["first_test_unix"]]
    if kept.empty:
        raise DataError(f"cutting {name} at the study's first test event ({study_time['first_test']}) leaves none "
                        f"of its {len(frame):,} interactions (they start {span['first']}): a time-respecting corpus "
                        "needs earlier data; pretrain without the cut and state it")
    return kept


def time_overlap(frame: pd.DataFrame, study_time: dict | None) -> dict:
    """The corpus's dates beside the study's first test event and the share of its interactions at or after it
    (`comparable`: False where either side has no calendar timestamps)."""
    span = lwdata.time_span(frame)
    if span is None or study_time is None:
        return {"comparable": False}
    after = float((frame["timestamp"] >= study_time["first_test_unix"]).mean())
    return {"comparable": True, "study_first_test": study_time["first_test"], "corpus_first": span["first"],
            "corpus_last": span["last"], "share_after_study_first_test": round(after, 6)}


def future_share_text(time: dict) -> str:
    """time_overlap's finding in words: the share at or after the study's first test, with the dates."""
    if not time["comparable"]:
        return "unknown (no calendar timestamps on one side)"
    return (f"{time['share_after_study_first_test']:.1%} (study's first test {time['study_first_test']}; corpus "
            f"{time['corpus_first']} to {time['corpus_last']})")


def corpus_card(corpus: SequenceData, study: SequenceData, mapping: list[int], stages: dict, source: dict,
                subsample: dict) -> dict:
    """Summary numbers of a corpus: size, labels per split, the study items it covers, its subsample."""
    card = lwdata.data_card(corpus, stages, source)
    return {
        "corpus": corpus.name,
        "study": study.name,
        **{k: card[k] for k in ("users", "items", "interactions", "density", "sequence_length", "stages", "source")},
        "labels": card["splits"],
        "study_items_matched": {"share": round(matched_share(mapping), 6), "matched": sum(j >= 0 for j in mapping),
                                "of": len(mapping)},
        "subsample": subsample,
    }


def prepare_corpus(dataset: str, study: SequenceData, n_users: int | None = None, seed: int = 0,
                   data_path: str | Path | None = None,
                   study_path: str | Path | None = None,
                   folders: RunFolders | None = None, study_time: dict | None = None,
                   cut_at_first_test: bool = False) -> tuple[SequenceData, list[int], dict]:
    """The corpus of a study dataset end to end: read, build, match items, describe.

    `study` is the prepared study data (lwadapter.data.load_prepared(dataset)); n_users subsamples the corpus's
    users (seeded by `seed`; None: all). `data_path`: the corpus source (default: the dataset's, fetched); for a
    corpus drawn from the study's own source, `study_path` (the file the study was read from) is used.
    `study_time`: the study's data card `time` (lwadapter.data.time_span); the card then says how much of the corpus
    lies at or after the study's first test event, and `cut_at_first_test` keeps only what lies before it. Writes
    corpus.json (sequences) and corpus_mapping.json beside the study's sequences and corpus_stats.json (the card)
    into `folders` (default: the study set's). Returns (corpus, mapping, card).
    """
    if dataset not in CORPORA:
        raise DataError(f"no corpus for {dataset!r}; choose one of {sorted(CORPORA)} "
                        "(or add an entry to lwadapter.corpus.CORPORA)")
    source_spec = CORPORA[dataset]
    if data_path is None and source_spec.shares_source:
        data_path = study_path
    path = Path(data_path) if data_path is not None else source_spec.fetch()
    frame, titles = read_interactions(path)
    time = time_overlap(frame[~frame["user"].isin(set(study.user_ids))], study_time)
    if cut_at_first_test:
        frame = cut_before(frame, study_time, f"{dataset}-corpus")
    corpus, stages = build_corpus(frame, f"{dataset}-corpus", study.user_ids, lwdata.DATASETS[dataset], titles,
                                  n_users, seed)
    years = {}
    if source_spec.match == "title":
        years = {"study_years": read_item_years(source_spec.study_source()),
                 "corpus_years": read_item_years(path)}
    mapping = item_mapping(study, corpus, source_spec.match, **years)
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    source = {"path": lwdata._display_path(path), "files": {f.name: sha256_file(f) for f in files if f.is_file()},
              "match": source_spec.match}
    subsample = {"n_users": n_users, "seed": seed, "of": stages["without_study_users"]["users"]}
    card = {**corpus_card(corpus, study, mapping, stages, source, subsample), "time": time,
            "cut_at_study_first_test": cut_at_first_test}
    folders = folders or RunFolders(dataset)
    corpus.save(folders.corpus)
    write_json(folders.corpus_mapping, mapping)
    write_json(folders.results / "corpus_stats.json", card)
    return corpus, mapping, card
