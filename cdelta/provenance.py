"""What every artifact records about where it came from: library versions and file hashes."""
from __future__ import annotations

import hashlib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def library_versions(*extra: str) -> dict[str, str]:
    """Versions of the libraries that decide an artifact's bytes (plus any `extra` distributions)."""
    out = {}
    for name in ("cdelta", "torch", "transformers", "tokenizers", "safetensors", *extra):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
