"""`cdelta apply`: add one or more patches to their base model and write a plain checkpoint folder."""
from __future__ import annotations

import argparse
from pathlib import Path

from cdelta.commands import Command
from cdelta.errors import CdeltaError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="base model: Hugging Face folder or cached id")
    parser.add_argument("--patch", type=Path, action="append", required=True,
                        help="patch.safetensors; repeat to compose patches")
    parser.add_argument("--scale", type=float, action="append", default=[],
                        help="multiplier on a patch's own k (one for all patches, or one per --patch); -1 negates")
    parser.add_argument("-o", "--output", type=Path, required=True, help="checkpoint folder to write")
    parser.add_argument("--overwrite", action="store_true", help="replace the output folder if it exists")


def scales_for(n_patches: int, scales: list[float]) -> list[float]:
    """One scale per patch: none given means 1, one given applies to all."""
    if not scales:
        return [1.0] * n_patches
    if len(scales) == 1:
        return scales * n_patches
    if len(scales) != n_patches:
        raise CdeltaError(f"give one --scale for all patches or one per --patch ({n_patches} patches, {len(scales)} scales)")
    return scales


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from cdelta.apply import write_checkpoint
    from cdelta.patch import compose, load_patch

    if args.output.exists() and not args.overwrite:
        raise CdeltaError(f"output {args.output} exists; pass --overwrite to replace it")
    scales = scales_for(len(args.patch), args.scale)
    patch = compose([load_patch(p) for p in args.patch], scales)
    write_checkpoint(args.model, patch, args.output, overwrite=args.overwrite)
    Console(stderr=True).print(f"wrote {args.output}: {args.model} + {patch.meta.policy} ({patch.numel():,} parameters changed)")
    return 0


def apply_command() -> Command:
    return Command("apply", "add one or more patches to a base model and write a plain checkpoint", configure, run)
