"""Result files: atomic writes, provenance (config, seed, versions, git commit), content hashes for caching."""

import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the permissions open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_csv(path: Path, frame) -> None:
    """Tidy CSV with fixed float precision so reruns give byte-identical files."""
    atomic_write_text(path, frame.to_csv(index=False, float_format="%.6g", lineterminator="\n"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def content_hash(obj) -> str:
    """Stable short hash of a JSON-able object (configuration + input checksums) for artifact caching."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def provenance(config: dict, seed: int) -> dict:
    """Run information carried by every result file (PEFT method_comparison style)."""
    import peft
    import torch
    import transformers

    import lwadapter

    return {
        "config": config,
        "seed": seed,
        "versions": {"lwadapter": lwadapter.__version__, "torch": torch.__version__,
                     "transformers": transformers.__version__, "peft": peft.__version__},
        "git_commit": git_commit(),
    }
