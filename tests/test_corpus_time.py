"""Whether a pretraining corpus lies in the study's future: dates where timestamps are calendar time, the share after
the study's first test event, and the cut at that event."""

import pandas as pd
import pytest

from lwadapter import corpus as lwcorpus, data as lwdata
from lwadapter.raw_files import DataError

DAY = 86_400
START = 900_000_000  # 1998-07-09


def interactions(rows) -> pd.DataFrame:
    """(user, item, timestamp) rows as the readers' long table."""
    return pd.DataFrame([{"user": u, "item": i, "rating": 5.0, "timestamp": float(t), "row": n}
                         for n, (u, i, t) in enumerate(rows)])


def test_time_span_dates_calendar_timestamps_and_finds_the_first_test_event():
    frame = interactions([("a", "x", START), ("a", "y", START + 5 * DAY), ("b", "x", START + DAY),
                          ("b", "z", START + 2 * DAY)])
    span = lwdata.time_span(frame)
    # a's test event is day 5, b's day 2: the earliest test event is b's, not the earliest interaction
    assert span == {"first": "1998-07-09", "first_test": "1998-07-11", "last": "1998-07-14",
                    "first_test_unix": float(START + 2 * DAY)}


def test_order_only_timestamps_have_no_dates():
    assert lwdata.time_span(interactions([("a", "x", 0), ("a", "y", 1), ("b", "x", 2)])) is None


def test_time_overlap_counts_the_corpus_share_at_or_after_the_first_test():
    study = {"first_test": "1998-07-11", "first_test_unix": float(START + 2 * DAY)}
    corpus = interactions([("c", "x", START), ("c", "y", START + 2 * DAY), ("d", "x", START + 3 * DAY),
                           ("d", "y", START + DAY)])
    assert lwcorpus.time_overlap(corpus, study) == {
        "comparable": True, "study_first_test": "1998-07-11", "corpus_first": "1998-07-09",
        "corpus_last": "1998-07-12", "share_after_study_first_test": 0.5}
    assert lwcorpus.time_overlap(corpus, None) == {"comparable": False}
    assert lwcorpus.future_share_text(lwcorpus.time_overlap(corpus, study)) == \
        "50.0% (study's first test 1998-07-11; corpus 1998-07-09 to 1998-07-12)"


def test_the_cut_keeps_what_came_before_and_refuses_an_empty_or_undated_corpus():
    study = {"first_test": "1998-07-11", "first_test_unix": float(START + 2 * DAY)}
    corpus = interactions([("c", "x", START), ("c", "y", START + 2 * DAY), ("d", "x", START + DAY)])
    assert list(lwcorpus.cut_before(corpus, study, "toy")["timestamp"]) == [START, START + DAY]
    later = interactions([("c", "x", START + 9 * DAY)])
    with pytest.raises(DataError, match="leaves none of its 1 interactions .*start 1998-07-18"):
        lwcorpus.cut_before(later, study, "toy")
    with pytest.raises(DataError, match="needs calendar timestamps"):
        lwcorpus.cut_before(interactions([("c", "x", 3)]), study, "toy")
