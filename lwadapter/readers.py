"""Readers: any supported interaction file (RecBole, MovieLens, Amazon CSV, JSONL, parquet) into one long table.

Every reader returns one long table (user, item, rating, timestamp, row) where `row` is the position in the
source file; sorting by (timestamp, row) gives each user's chronological sequence with a deterministic tie-break.
"""

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from lwadapter.raw_files import DataError

COLUMNS = ["user", "item", "rating", "timestamp", "row"]


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
