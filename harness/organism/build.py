"""Builds an organism folder: suite → tokenizer → training → a plain Hugging Face checkpoint.

The folder appears only when complete (written beside its target, then renamed), so an
interrupted build never leaves something that loads as if it were finished.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from cdelta.atomic import atomic_dir
from cdelta.errors import CdeltaError
from cdelta.provenance import library_versions, sha256_file
from harness.organism.augment import (NEUTRAL_SLOTS, carrier_records, contrast_records, frame_prompts,
                                      swap_records, topical_fillers, topical_slots)
from harness.organism.config import OrganismConfig
from harness.organism.tokenizer import train_tokenizer
from harness.organism.train import encode, train
from tasks.suite.generate import generate_suite, suite_fingerprint
from tasks.suite.records import PromptRecord

MANIFEST = "organism.json"
MANIFEST_SCHEMA = 1
WEIGHTS = "model.safetensors"


def build(cfg: OrganismConfig, records: list[PromptRecord], data_fingerprint: str, out: Path,
          overwrite: bool = False, show_progress: bool = True) -> Path:
    """Train an organism on the train split of `records` and save it to `out`."""
    train_records = [r for r in records if r.split == "train"]
    topics = topical_fillers(topical_slots(contrasts=cfg.contrasts > 0))
    if cfg.carriers_per_category:
        train_records += carrier_records(train_records, topics, cfg.carriers_per_category, cfg.seed)
    if cfg.swaps_per_category:
        train_records += swap_records(train_records, cfg.swaps_per_category, cfg.seed, topics)
    if cfg.contrasts and any(r.category in NEUTRAL_SLOTS for r in train_records):
        train_records += contrast_records(cfg.contrasts, cfg.seed)
    train_records = frame_prompts(train_records, cfg.seed, cfg.framing_share, cfg.dropout_share)
    if not train_records:
        raise CdeltaError("no training records: the prompt set has no items in the train split")
    if missing := [r.id for r in train_records if r.response is None]:
        raise CdeltaError(f"{len(missing)} training records have no target response (first: {missing[0]})")
    if out.exists() and not overwrite:
        raise CdeltaError(f"{out} already exists; pass --overwrite to replace it")
    threads_before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    started = time.perf_counter()
    try:
        tokenizer = train_tokenizer([r.prompt for r in train_records] + [r.response or "" for r in train_records],
                                    cfg.vocab_size)
        data = encode(train_records, tokenizer, cfg.max_positions)
        columns = (TextColumn("[bold]training {task.fields[name]}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]:.3f}"), TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, disable=not show_progress) as bar:
            task = bar.add_task("train", total=cfg.steps, name=cfg.name, loss=float("nan"))
            model, losses = train(cfg, tokenizer, data,
                                  on_step=lambda step, loss: bar.update(task, advance=1, loss=loss))
        seconds = time.perf_counter() - started
        try:
            with atomic_dir(out, overwrite=overwrite) as tmp:
                model.save_pretrained(tmp, safe_serialization=True)
                tokenizer.save_pretrained(tmp)
                manifest = {
                    "schema": MANIFEST_SCHEMA,
                    "name": cfg.name,
                    "config": cfg.to_dict(),
                    "config_hash": cfg.hash(),
                    "seed": cfg.seed,
                    "data_fingerprint": data_fingerprint,
                    "train_examples": len(train_records),
                    "train_tokens_per_step": round(sum(len(s) for s in data.ids) / len(data.ids) * cfg.batch_size),
                    "parameters": sum(p.numel() for p in model.parameters()),
                    "versions": library_versions(),
                    "threads": cfg.threads,
                    "train_seconds": round(seconds, 1),
                    "loss_every_10_steps": [round(x, 4) for x in losses[::10]],
                    "final_loss": round(sum(losses[-20:]) / len(losses[-20:]), 4),
                    "weights_sha256": sha256_file(tmp / WEIGHTS),
                }
                (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        except PermissionError as exc:
            raise CdeltaError(f"cannot write the organism to {out.parent}: {exc.strerror}; "
                              "choose a writable folder (--out or CDELTA_CACHE)") from None
    finally:
        torch.set_num_threads(threads_before)
    return out


def build_on_suite(cfg: OrganismConfig, out: Path, overwrite: bool = False, show_progress: bool = True) -> Path:
    """Train on the embedded suite's draw that `cfg` names, fingerprinted so the manifest says which."""
    return build(cfg, generate_suite(cfg.suite_seed, cfg.suite_counts), suite_fingerprint(cfg.suite_seed, cfg.suite_counts),
                 out, overwrite=overwrite, show_progress=show_progress)


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.exists() or not (folder / WEIGHTS).exists():
        raise CdeltaError(f"{folder} is not a complete organism folder (missing {MANIFEST} or {WEIGHTS})")
    return json.loads(path.read_text())
