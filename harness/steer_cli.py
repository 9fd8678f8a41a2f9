"""`cdelta steer fit`: fit the ActAdd and CAST baselines on the embedded suite and write their artifacts."""
from __future__ import annotations

import argparse
from pathlib import Path

from cdelta.commands import Command
from cdelta.errors import CdeltaError


def _coefficients(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from None


def _positions(text: str) -> tuple[str, ...]:
    from cdelta.steering import POSITIONS

    chosen = tuple(x.strip() for x in text.split(",") if x.strip())
    if not chosen or any(p not in POSITIONS for p in chosen):
        raise argparse.ArgumentTypeError(f"not a comma-separated list of {', '.join(POSITIONS)}: {text!r}")
    return chosen


def configure(parser: argparse.ArgumentParser) -> None:
    from cdelta.steering import READS
    from cdelta.steering.condition import CONDITION_METHODS
    from harness.steer import SteerConfig

    defaults = SteerConfig()
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fit = actions.add_parser("fit", help="fit the refusal direction (ActAdd) and the CAST condition; write artifacts",
                             description="Fit ActAdd and CAST for one target category on the embedded suite.")
    fit.add_argument("--model", required=True, help="model folder, or an organism name (organism-small, or one built with `cdelta organism build --config`)")
    fit.add_argument("--category", default=defaults.category, help="target category to refuse (%(default)s)")
    fit.add_argument("-o", "--output", type=Path, required=True, help="folder for actadd.* and cast.* artifacts")
    fit.add_argument("--overwrite", action="store_true", help="replace the output folder if it exists")
    fit.add_argument("--coefficients", type=_coefficients, default=defaults.coefficients,
                     help="coefficients to sweep on dev, comma-separated (%(default)s)")
    fit.add_argument("--positions", type=_positions, default=defaults.positions,
                     help="where the behaviour vector is added, swept with the coefficients: every position "
                          "('all'), the prompt's only ('prompt'), or both (default: all,prompt)")
    fit.add_argument("--target-refusal", type=float, default=defaults.target_refusal,
                     help="target-category refusal the kept setting must reach on dev; among those reaching it "
                          "the least collateral refusal wins (%(default)s)")
    fit.add_argument("--n-train", type=int, default=defaults.n_train, help="train prompts per side (%(default)s)")
    fit.add_argument("--dev-per-category", type=int, default=defaults.dev_per_category,
                     help="dev prompts per category in the coefficient sweeps (%(default)s)")
    fit.add_argument("--condition-dev-per-category", type=int, default=defaults.condition_dev_per_category,
                     help="dev prompts per category for the condition's F1 and the layer filters (%(default)s)")
    fit.add_argument("--max-layer-fraction", type=float, default=defaults.max_layer_fraction,
                     help="refusal-direction layers must lie below this fraction of the depth (%(default)s)")
    fit.add_argument("--kl-threshold", type=float, default=defaults.kl_threshold,
                     help="largest ablation KL on benign dev prompts a layer may have (%(default)s)")
    fit.add_argument("--condition-method", choices=CONDITION_METHODS, action="append", dest="condition_methods",
                     help="condition vector: CAST's first principal component of pair differences (pca) or "
                          "difference of means (mean), scored by CAST's similarity, or Fisher's discriminant (lda), "
                          "scored by projection; repeatable, the best dev F1 is kept (default: all three)")
    fit.add_argument("--condition-read", choices=READS, action="append", dest="condition_reads",
                     help="positions the condition averages: the user's text (instruction, as in CAST) or the "
                          "template's tokens after it (post_instruction); repeatable (default: both)")
    fit.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens,
                     help="tokens generated per dev prompt in the sweeps (%(default)s)")
    fit.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    fit.add_argument("--seed", type=int, default=defaults.seed, help="seeds the data samples (%(default)s)")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from backends.hf_engine import HFEngine
    from backends.registry import check_device
    from harness.organism import registry
    from harness.steer import SteerConfig, fit_steering, tables, write_artifacts

    if args.output.exists() and not args.overwrite:
        raise CdeltaError(f"output {args.output} exists; pass --overwrite to replace it")
    cfg = SteerConfig(category=args.category, n_train=args.n_train,
                      condition_dev_per_category=args.condition_dev_per_category,
                      dev_per_category=args.dev_per_category, coefficients=args.coefficients, positions=args.positions,
                      target_refusal=args.target_refusal, max_layer_fraction=args.max_layer_fraction,
                      kl_threshold=args.kl_threshold,
                      condition_methods=tuple(args.condition_methods or SteerConfig.condition_methods),
                      condition_reads=tuple(args.condition_reads or SteerConfig.condition_reads),
                      max_new_tokens=args.max_new_tokens, seed=args.seed)
    model = registry.resolve_model(args.model)
    records = registry.organism_suite(model)
    console = Console()
    check_device(args.device)
    fitted = fit_steering(HFEngine.from_path(model, device=args.device), str(model), records, cfg, console)
    for table in tables(fitted):
        console.print(table)
    write_artifacts(fitted, args.output, overwrite=args.overwrite)
    console.print(f"[green]wrote[/] {args.output}/actadd.json, {args.output}/cast.json (and their .safetensors)")
    return 0


def steer_command() -> Command:
    return Command("steer", "fit activation-steering baselines (refusal direction, CAST)", configure, run)
