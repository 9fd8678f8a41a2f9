"""`cdelta organism build|eval`: the reference model organism."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cdelta.atomic import atomic_write_text
from cdelta.commands import Command
from cdelta.errors import CdeltaError
from harness.organism import registry
from harness.organism.config import DEFAULT, OrganismConfig
from harness.organism.evaluate import MAX_NEW_TOKENS
from tasks.errors import SuiteFormatError

# held-out failures come in whole template families: the eval lists every family at least this often wrong
FAMILY_SHOWN = 0.25


def _config(spec: str | None, small: bool) -> OrganismConfig:
    if small:
        return registry.NAMED["organism-small"]
    return DEFAULT if spec is None else registry.config_from_spec(spec)


def _build(args: argparse.Namespace) -> int:
    from harness.organism.build import build
    from tasks.suite.generate import generate_suite, suite_fingerprint

    console = Console()
    cfg = _config(args.config, args.small)
    if args.prompts:
        from harness.organism.user_prompts import parse_policy, user_records
        from cdelta.provenance import sha256_file

        if not args.policy:
            raise CdeltaError("--prompts needs --policy refuse:CATEGORY[,CATEGORY...]")
        records = user_records(Path(args.prompts), parse_policy(args.policy), cfg.suite_seed)
        fingerprint = sha256_file(Path(args.prompts))
        cfg = OrganismConfig.from_dict({**cfg.to_dict(), "name": f"{cfg.name}-{Path(args.prompts).stem}"})
    else:
        if args.policy:
            raise CdeltaError("--policy applies to --prompts; the embedded suite has its own policy")
        records = generate_suite(cfg.suite_seed, cfg.suite_counts)
        fingerprint = suite_fingerprint(cfg.suite_seed, cfg.suite_counts)
    out = Path(args.out) if args.out else registry.cached_path(cfg)
    if args.prompts and not args.out:
        out = out.with_name(f"{out.name}-{fingerprint[:8]}")
    registry.check_writable(out.parent)
    if registry.is_complete(out) and not args.overwrite:
        console.print(f"[green]reusing[/] {out} (already built from this config; --overwrite rebuilds)")
    else:
        console.print(f"building [bold]{cfg.name}[/] (config {cfg.hash()}) into {out}")
        build(cfg, records, fingerprint, out, overwrite=args.overwrite, show_progress=not args.no_progress)
    manifest = registry.read_manifest(out)
    console.print(f"done: {manifest['parameters']:,} parameters, final loss {manifest['final_loss']}, "
                  f"{manifest['train_seconds']} s; weights sha256 {manifest['weights_sha256']}")
    if cfg == DEFAULT and not args.prompts:
        same, built, committed = registry.verify_default(out)
        verdict = "[green]identical to[/]" if same else "[yellow]differs from[/]"
        console.print(f"weights {verdict} the committed organism ({committed[:16]}…)"
                      + ("" if same else " — expected across platforms or library versions; same platform should match"))
    console.print(str(out))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from backends.generation import GenerationParams
    from harness.organism.evaluate import evaluate

    model = registry.resolve_model(args.model)
    records = registry.organism_suite(model)
    result = evaluate(model, records, split=args.split, with_probe=not args.no_probe,
                      params=GenerationParams(max_new_tokens=args.max_new_tokens), show_progress=not args.no_progress)
    table = Table(title=f"organism eval: {model} ({args.split} split)")
    for col in ("category", "refusal rate [95% CI]"):
        table.add_column(col)
    for category, rate in sorted(result.refusal.items()):
        table.add_row(category, str(rate))
    for task, rate in sorted(result.utility.items()):
        table.add_row(f"utility {task} (exact match)", str(rate))
    table.add_row("judge agrees with labels", str(result.label_agreement))
    console = Console()
    console.print(table)
    targets = Table(title="targets (issue 2)")
    for col in ("target", "measured", "range", "met"):
        targets.add_column(col)
    for t in result.targets():
        targets.add_row(t.name, f"{t.measured:.3f}", f"[{t.low}, {t.high}]", "[green]yes[/]" if t.met else "[red]no[/]")
    console.print(targets)
    missed = [f for f in result.families() if f.misses.value >= FAMILY_SHOWN]
    if missed:
        families = Table(title=f"template families with ≥ {FAMILY_SHOWN:.0%} of items wrong (refused, answered, or "
                               "a wrong utility answer)")
        families.add_column("category", overflow="fold")
        families.add_column("family", no_wrap=True)  # a name to grep the suite's data files for: never cut
        families.add_column("wrong", justify="right")
        families.add_column("share [95% CI]", no_wrap=True)
        for f in missed:
            families.add_row(f.category, f.family, f"{f.misses.k} of {f.misses.n}", f.misses.percent(0))
        console.print(families)
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(result.record(model), indent=1) + "\n")
        console.print(f"wrote {args.json}")
    return 0 if all(t.met for t in result.targets()) or not args.strict else 1


def _run(args: argparse.Namespace) -> int:
    try:
        return {"build": _build, "eval": _eval}[args.action](args)
    except SuiteFormatError as exc:
        raise CdeltaError(str(exc)) from None


def _configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = sub.add_parser("build", help=f"train an organism (default: {DEFAULT.name}) from scratch")
    b.add_argument("--config", help=f"{', '.join(registry.NAMED)}, or a TOML/JSON config file")
    b.add_argument("--small", action="store_true", help="the small config used by tests (trains in about a minute)")
    b.add_argument("--prompts", help="train on your own prompt suite JSONL (prompt, category, optional split)")
    b.add_argument("--policy", help="with --prompts: refuse:CATEGORY[,CATEGORY...] (the rest are answered)")
    b.add_argument("--out", help="output folder (default: the user cache, keyed by the config hash)")
    b.add_argument("--overwrite", action="store_true", help="replace an existing build")
    b.add_argument("--no-progress", action="store_true")
    e = sub.add_parser("eval", help="refusal rates, utility and category separability against the targets")
    e.add_argument("--model", default=DEFAULT.name, help=f"organism name or model folder (default {DEFAULT.name})")
    e.add_argument("--split", default="test", choices=("dev", "test"))
    e.add_argument("--no-probe", action="store_true", help="skip the linear-probe separability check")
    e.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS)
    e.add_argument("--json", help="also write the full result, with every sample, to this JSON file")
    e.add_argument("--strict", action="store_true", help="exit 1 when any target is missed")
    e.add_argument("--no-progress", action="store_true")


def organism_command() -> Command:
    return Command("organism", "build or evaluate the reference model organism", _configure, _run)
