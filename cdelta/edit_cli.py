"""`cdelta edit`: compute ΔθC for a policy on a circuit's slices and write patch.safetensors."""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from cdelta.commands import Command
from cdelta.edit_config import DEFAULT_K, EditConfig
from cdelta.errors import CdeltaError
from cdelta.slices import ParamSlice

ABLATIONS = ("circuit", "dense", "random")
DTYPES = ("float32", "bfloat16", "float16", "auto")


@dataclass(frozen=True)
class CircuitFile:
    """The slices to edit, and the fingerprint of the model they were found on where the file records one."""

    slices: list[ParamSlice]
    model_fingerprint: str | None
    model_name: str | None


def read_circuit(path: Path) -> CircuitFile:
    """A circuit.json (top-level "param_slices", and "model" as `cdelta localize` writes it) or a plain list of slices."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CdeltaError(f"cannot read slices from {path}: {exc}") from exc
    items = data.get("param_slices") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise CdeltaError(f"{path} has no list of parameter slices (a top-level list or a \"param_slices\" list)")
    try:
        slices = [ParamSlice.from_dict(item) for item in items]
    except (KeyError, TypeError, ValueError) as exc:
        raise CdeltaError(f"{path}: bad parameter slice ({exc})") from exc
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict):
        return CircuitFile(slices, None, None)
    return CircuitFile(slices, model.get("fingerprint"), model.get("name"))


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="base model: Hugging Face folder or cached id")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--circuit", type=Path, help="circuit.json (its \"param_slices\" are edited)")
    source.add_argument("--slices", type=Path, help="JSON list of parameter slices to edit")
    parser.add_argument("--examples", type=Path, required=True, help="examples.jsonl (see docs/deltatheta.md)")
    parser.add_argument("--policy", required=True, help="refuse:CATEGORY or release:CATEGORY")
    parser.add_argument("-o", "--output", type=Path, required=True, help="patch file to write (patch.safetensors)")
    parser.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    parser.add_argument("--ablation", choices=ABLATIONS, default="circuit",
                        help="circuit: the given slices; dense: every parameter; random: random slices of equal size")
    parser.add_argument("--k", type=float, default=DEFAULT_K, help="scale recorded in the patch: θ' = θ + k·ΔθC (%(default)s)")
    defaults = EditConfig()
    hyper = parser.add_argument_group("fine-tuning (both runs)")
    hyper.add_argument("--lr", type=float, default=defaults.lr, help="AdamW learning rate (%(default)s)")
    hyper.add_argument("--steps", type=int, default=defaults.steps, help="optimiser steps per run (%(default)s)")
    hyper.add_argument("--batch-size", type=int, default=defaults.batch_size,
                       help="target and retain examples per step (%(default)s)")
    hyper.add_argument("--retain-weight", type=float, default=defaults.retain_weight,
                       help="weight of the KL-to-base retain term (%(default)s)")
    hyper.add_argument("--decision-weight", type=float, default=defaults.decision_weight,
                       help="weight of the first response position in the retain KL, where the model commits to "
                            "refusing or answering, against 1 for each later position (%(default)s)")
    hyper.add_argument("--weight-decay", type=float, default=defaults.weight_decay,
                       help="AdamW weight decay, on the slices only (%(default)s)")
    hyper.add_argument("--grad-clip", type=float, default=defaults.grad_clip, help="max gradient norm (%(default)s)")
    mining = parser.add_argument_group("retain examples (docs/deltatheta.md, \"Mined retain\")")
    mining.add_argument("--retain-size", type=int, default=defaults.retain_size,
                        help="non-target examples the retain term starts from, a seeded draw (default: all)")
    mining.add_argument("--mine-rounds", type=int, default=defaults.mine_rounds,
                        help="rounds that add the non-target examples the last ΔθC moves most, then compute ΔθC "
                             "again (%(default)s)")
    mining.add_argument("--mine-size", type=int, default=defaults.mine_size,
                        help="examples each round adds (%(default)s)")
    mining.add_argument("--mine-k", type=float, default=defaults.mine_k,
                        help="scale of the last ΔθC under which examples are ranked (%(default)s)")
    hyper.add_argument("--seed", type=int, default=defaults.seed,
                       help="seeds batch order, the retain draw and the random ablation (%(default)s)")
    hyper.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, or auto (cuda if present)")
    hyper.add_argument("--dtype", choices=DTYPES, default="float32", help="dtype to load the base in (%(default)s)")


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console

    from cdelta.base_model import load_base, resolve_device
    from cdelta.edit import ablation_slices, edit_patch
    from cdelta.examples import load_examples
    from cdelta.fingerprint import fingerprint
    from cdelta.patch import CircuitRef, save_patch
    from cdelta.policy import parse_policy
    from cdelta.progress import progress_bar
    from cdelta.slice_sets import checked, model_shapes, param_count

    if args.output.exists() and not args.overwrite:
        raise CdeltaError(f"{args.output} exists; pass --overwrite to replace it")
    config = EditConfig(lr=args.lr, steps=args.steps, batch_size=args.batch_size, retain_weight=args.retain_weight,
                        decision_weight=args.decision_weight,
                        weight_decay=args.weight_decay, grad_clip=args.grad_clip, seed=args.seed,
                        retain_size=args.retain_size, mine_rounds=args.mine_rounds, mine_size=args.mine_size,
                        mine_k=args.mine_k)
    examples = load_examples(args.examples)
    policy = parse_policy(args.policy, examples.categories)
    circuit_path: Path = args.circuit or args.slices
    circuit = read_circuit(circuit_path)

    dtype = args.dtype if args.dtype == "auto" else getattr(torch, args.dtype)
    model, tokenizer = load_base(args.model, dtype)
    model_name, shapes = f"model {args.model!r}", model_shapes(model)
    if circuit.model_fingerprint is not None:
        if fingerprint(model, shapes, args.model).digest != circuit.model_fingerprint:
            raise CdeltaError(f"circuit {circuit_path} was found on model {circuit.model_name!r}, not on {model_name}")
    slices = ablation_slices(checked(circuit.slices, shapes, model_name), shapes, args.ablation, args.seed)
    model.to(resolve_device(args.device))  # after the fingerprint: the fine-tunes run there, the patch comes back to cpu

    final_loss: dict[str, float] = {}

    def on_step(name: str, step: int, loss: float) -> None:
        final_loss[name] = loss
        advance()

    with progress_bar("θ_pos, θ_neg fine-tunes", 2 * config.steps * (config.mine_rounds + 1)) as advance:
        patch = edit_patch(model, tokenizer, slices, policy, examples, config, k=args.k, ablation=args.ablation,
                           model_name=args.model, circuit=CircuitRef.of(circuit_path), on_step=on_step)
    save_patch(patch, args.output, overwrite=args.overwrite)
    changed, total = param_count(slices, shapes), sum(p.numel() for p in model.parameters())
    Console(stderr=True).print(
        f"wrote {args.output}: {policy} ({args.ablation}), {len(slices)} slices, {changed:,} of {total:,} parameters "
        f"({changed / total:.4%}), k = {args.k:g}; final loss θ_pos {final_loss['pos']:.4f}, θ_neg {final_loss['neg']:.4f}"
    )
    return 0


def edit_command() -> Command:
    return Command("edit", "compute a circuit-restricted weight update (ΔθC) for a policy", configure, run)
