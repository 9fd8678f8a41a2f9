"""Content fingerprints of a model folder or an artifact (file or folder), for log tags: two logs
with the same backend name but different weights or steering vectors must never look alike."""
from __future__ import annotations

import hashlib
from pathlib import Path

from cdelta.errors import CdeltaError
from cdelta.provenance import sha256_file

# Files that describe a checkpoint but do not change its behaviour.
_IGNORED = {"README.md", ".gitattributes"}


def path_fingerprint(path: Path) -> str:
    """sha256 over every file's relative name and content (a file: its content alone)."""
    if path.is_file():
        return sha256_file(path)
    if not path.is_dir():
        raise CdeltaError(f"cannot fingerprint {path}: no such file or folder")
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.name not in _IGNORED):
        digest.update(file.relative_to(path).as_posix().encode())
        digest.update(sha256_file(file).encode())
    return digest.hexdigest()
