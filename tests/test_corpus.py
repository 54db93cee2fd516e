"""Pretraining corpora: no study user leaks in, own vocabulary, seeded subsampling, item matching, real data."""

import json
import os

import pytest

from lwadapter import corpus as lwcorpus
from lwadapter import data as lwdata
from lwadapter import readers
from lwadapter.data import Preparation
from lwadapter.raw_files import DataError
from tests.conftest import SHARED
from tests.network import downloads
from tests.test_data import random_frame, requires_shared

STUDY_PREP = Preparation(k_core=0, n_users=20, n_items=30)


def study_and_corpus(n_users=None, seed=0):
    frame = random_frame()
    study, _ = lwdata.prepare(frame, "toy", STUDY_PREP, {})
    corpus, stages = lwcorpus.build_corpus(frame, "toy-corpus", study.user_ids, STUDY_PREP, {}, n_users, seed)
    return frame, study, corpus, stages


def pairs(data):
    """(user, item id) of every interaction in a prepared dataset."""
    return {(u, data.item_ids[i]) for u, t, v, s in zip(data.user_ids, data.train, data.valid, data.test)
            for i in t + [v, s]}


def test_corpus_holds_every_other_users_interactions_and_none_of_the_studys():
    frame, study, corpus, stages = study_and_corpus()
    assert set(corpus.user_ids).isdisjoint(study.user_ids) and study.n_users == 20
    others = frame[~frame["user"].isin(study.user_ids)]
    long_enough = others.groupby("user").filter(lambda g: len(g) >= STUDY_PREP.min_sequence)
    assert pairs(corpus) == set(zip(long_enough["user"], long_enough["item"]))
    assert corpus.item_ids == sorted(set(long_enough["item"]))  # its own vocabulary, not the study's 30 items
    assert corpus.n_items > study.n_items
    assert stages["without_study_users"]["users"] == frame["user"].nunique() - study.n_users


def test_subsample_is_seeded():
    _, _, full, _ = study_and_corpus()
    a, b, c = (study_and_corpus(n_users=30, seed=s)[2] for s in (1, 1, 2))
    assert a == b and a.user_ids != c.user_ids
    assert a.n_users == 30 and set(a.user_ids) <= set(full.user_ids)
    with pytest.raises(DataError, match="n_users=1000: the corpus has 80 users"):
        study_and_corpus(n_users=1000)


def test_match_titles_uses_the_year_only_to_disambiguate():
    corpus_titles = ["Psycho", "Psycho", "Heat", "Solo"]
    corpus_years = ["1960", "1998", "1995", "1996"]
    study = [("Psycho", "1998"), ("Psycho", "2020"), ("Psycho", ""), ("Psycho", "1961"), ("Heat", "1997"),
             ("Heat", ""), ("Solo", "1937"), ("Nope", "1995"), ("", "")]
    mapping = lwcorpus.match_titles([t for t, _ in study], [y for _, y in study], corpus_titles, corpus_years)
    assert mapping == [1, -1, -1, 0, 2, 2, -1, -1, -1]
    assert lwcorpus.matched_share(mapping) == pytest.approx(4 / 9)


def test_match_ids():
    assert lwcorpus.match_ids(["b", "x", "a"], ["a", "b", "c"]) == [1, -1, 0]


def test_title_matching_needs_titles():
    _, study, corpus, _ = study_and_corpus()
    with pytest.raises(DataError, match="by title, but one of them has no titles"):
        lwcorpus.item_mapping(study, corpus, "title")


def test_prepare_corpus_writes_sequences_mapping_and_card(isolated_outputs):
    path = isolated_outputs / "toy.inter"
    frame = random_frame()
    path.write_text("user_id:token\titem_id:token\ttimestamp:float\n"
                    + "".join(f"{u}\t{i}\t{t}\n" for u, i, t in zip(frame["user"], frame["item"], frame["timestamp"])))
    study, _ = lwdata.prepare_dataset("amazon-electronics", path, n_users=20, n_items=30)
    corpus, mapping, card = lwcorpus.prepare_corpus("amazon-electronics", study, n_users=40, seed=3, data_path=path)
    folder = isolated_outputs / "data" / "processed" / "amazon-electronics"
    assert lwdata.SequenceData.load(folder / "corpus.json") == corpus
    assert json.loads((folder / "corpus_mapping.json").read_text()) == mapping
    saved = json.loads((isolated_outputs / "results" / "amazon-electronics" / "corpus_stats.json").read_text())
    assert saved == card
    assert (card["users"], card["subsample"]) == (40, {"n_users": 40, "seed": 3, "of": 80})
    assert card["labels"]["valid"] == 40 and card["interactions"] == card["labels"]["train"] + 80
    assert [corpus.item_ids[j] if j >= 0 else None for j in mapping] == \
        [i if i in corpus.item_ids else None for i in study.item_ids]
    assert card["study_items_matched"]["share"] == pytest.approx(lwcorpus.matched_share(mapping), abs=1e-6)
    assert set(corpus.user_ids).isdisjoint(study.user_ids)


def test_unknown_corpus():
    with pytest.raises(DataError, match="no corpus for 'movies'"):
        lwcorpus.prepare_corpus("movies", None)


@requires_shared
def test_real_amazon_corpus_leaves_out_every_study_user(isolated_outputs):
    study, _ = lwdata.prepare_dataset("amazon-electronics")
    corpus, mapping, card = lwcorpus.prepare_corpus("amazon-electronics", study)
    frame, _ = readers.read_interactions(os.path.join(SHARED, "gerec-electronics-sample-2018"))
    study_rows = frame[frame["user"].isin(study.user_ids)]
    assert len(study_rows) > 0 and set(corpus.user_ids).isdisjoint(study_rows["user"])
    assert pairs(corpus) <= set(zip(frame["user"], frame["item"])) - set(zip(study_rows["user"], study_rows["item"]))
    assert card["users"] == 6_274 - study.n_users and card["items"] == 3_666
    assert card["study_items_matched"]["share"] == 1.0
    source = os.path.join(SHARED, "gerec-electronics-sample-2018")
    assert lwcorpus.prepare_corpus("amazon-electronics", study, study_path=source)[0] == corpus  # the study's file


@downloads("ml-100k", "ml-1m")
def test_real_movielens_1m_corpus(isolated_outputs):
    study, _ = lwdata.prepare_dataset("ml-100k")
    corpus, mapping, card = lwcorpus.prepare_corpus("ml-100k", study)
    assert all(u.startswith("1m_") for u in corpus.user_ids) and set(corpus.user_ids).isdisjoint(study.user_ids)
    assert card["stages"]["source"] == {"users": 6_040, "items": 3_706, "interactions": 1_000_209}
    assert (card["users"], card["items"], card["interactions"]) == (6_040, 3_416, 999_611)  # 5-core, as the study
    assert card["study_items_matched"] == {"share": 0.954781, "matched": 1_288, "of": 1_349}
    matched = {study.item_titles[i]: corpus.item_ids[j] for i, j in enumerate(mapping) if j >= 0}
    assert matched["Titanic"] == "Titanic (1997)"  # ML-1M also has Titanic (1953)
    assert matched["Conan the Barbarian"] == "Conan the Barbarian (1982)"  # 1981 in ML-100K
    shall_we_dance = {year: mapping[study.item_ids.index(i)] for i, year in (("251", 1996), ("1286", 1937))}
    assert shall_we_dance[1996] == -1 and corpus.item_ids[shall_we_dance[1937]] == "Shall We Dance? (1937)"
