"""Where organisms live: the committed reference (config.DEFAULT) and builds cached by config hash."""
from __future__ import annotations

import os
from pathlib import Path

from cdelta.errors import CdeltaError
from cdelta.provenance import sha256_file
from harness.organism.build import MANIFEST, WEIGHTS, read_manifest
from harness.organism.config import DEFAULT, SMALL, V1, V2, V3, V4, V7, V8, V9, OrganismConfig
from tasks.suite.generate import generate_suite
from tasks.suite.records import PromptRecord

DEFAULT_DIR = Path(__file__).parent / "default"
# The committed reference weights; `cdelta organism build` reproduces them on the same platform.
DEFAULT_SHA256_FILE = DEFAULT_DIR / "model.safetensors.sha256"
NAMED = {c.name: c for c in (V1, V2, V3, V4, V7, V8, V9, SMALL)}


def cache_dir() -> Path:
    """CDELTA_CACHE, else $XDG_CACHE_HOME/cdelta, else ~/.cache/cdelta."""
    if env := os.environ.get("CDELTA_CACHE"):
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cdelta"


def cached_path(cfg: OrganismConfig) -> Path:
    return cache_dir() / "organisms" / f"{cfg.name}-{cfg.hash()}"


def check_writable(folder: Path) -> None:
    """Fail before hours of training rather than after."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CdeltaError(f"cache folder {folder} is not writable ({exc.strerror}); "
                          "set CDELTA_CACHE to a writable folder or pass --out") from None


def is_complete(folder: Path) -> bool:
    return (folder / MANIFEST).is_file() and (folder / WEIGHTS).is_file()


def config_from_spec(spec: str) -> OrganismConfig:
    """A config by name (`organism-v4`) or from a TOML/JSON file."""
    return NAMED[spec] if spec in NAMED else OrganismConfig.from_file(Path(spec))


def resolve_model(spec: str) -> Path:
    """A model folder from a name (`organism-v4`, `organism-small`) or a path."""
    if spec in ("default", DEFAULT.name):
        if not is_complete(DEFAULT_DIR):
            raise CdeltaError(f"the committed organism is missing from {DEFAULT_DIR}; "
                              "restore it (`git checkout -- harness/organism/default`, or reinstall the package), "
                              "or rebuild it with `cdelta organism build` and pass the folder it prints as --model")
        return DEFAULT_DIR
    if spec in NAMED:
        path = cached_path(NAMED[spec])
        if not is_complete(path):
            raise CdeltaError(f"organism {spec!r} is not built yet; run `cdelta organism build --config {spec}`")
        return path
    path = Path(spec)
    if not (path / "config.json").is_file():
        raise CdeltaError(f"{spec!r} is neither a known organism ({', '.join(NAMED)}) "
                          "nor a folder with a Hugging Face config.json")
    return path


def organism_config(model: Path) -> OrganismConfig:
    """The config an organism folder was trained with, so its suite draw can be regenerated; any
    other model is measured on the default organism's draw."""
    return OrganismConfig.from_dict(read_manifest(model)["config"]) if is_complete(model) else DEFAULT


def organism_suite(model: Path) -> list[PromptRecord]:
    """The suite draw `model` was trained on (the default organism's for any other model): what every
    measurement of it splits into train, dev and test."""
    cfg = organism_config(model)
    return generate_suite(cfg.suite_seed, cfg.suite_counts)


def verify_default(folder: Path) -> tuple[bool, str, str]:
    """Compare a build's weights with the committed checksum: (same, built sha256, committed sha256)."""
    built = sha256_file(folder / WEIGHTS)
    committed = DEFAULT_SHA256_FILE.read_text().split()[0] if DEFAULT_SHA256_FILE.exists() else "none"
    return built == committed, built, committed


__all__ = ["cache_dir", "cached_path", "config_from_spec", "check_writable", "is_complete", "read_manifest", "resolve_model",
           "organism_config", "organism_suite", "verify_default", "DEFAULT_DIR"]
