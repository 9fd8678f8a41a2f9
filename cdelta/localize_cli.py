"""`cdelta localize`: load a model folder and contrast pairs, write circuit.json and its plots."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cdelta.circuit.rules import DEFAULT_COST_EXPONENT, check_cost_exponent
from cdelta.commands import Command
from cdelta.eap.methods import INTERVENTIONS, METHODS
from cdelta.errors import CdeltaError

DEFAULT_REFUSAL = ("I cannot", "I can't", "I'm sorry", "Sorry", "As an AI", "Unfortunately")
DEFAULT_COMPLIANCE = ("Sure", "Here", "Certainly", "Of course", "Yes", "To")


def localize_command() -> Command:
    return Command("localize", "find the refusal circuit of a category with EAP-IG", _configure, _run)


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="Hugging Face model folder")
    parser.add_argument("--pairs", type=Path, required=True, help='JSONL, one {"clean": ..., "corrupted": ...} a line')
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder for circuit.json and plots")
    rule = parser.add_mutually_exclusive_group()
    rule.add_argument("--budget", type=float, help="fraction of all parameters the circuit may own (default 0.05)")
    rule.add_argument("--edges", type=int, help="keep the top-N edges by |score|")
    rule.add_argument("--nodes", type=int, help="keep the top-K heads/MLPs by |node score|")
    rule.add_argument("--greedy", type=int, help="grow N edges greedily from the logits")
    parser.add_argument("--cost-exponent", type=float,
                        help="with --budget: rank edges by |score| / (source parameters)^A "
                             f"(default {DEFAULT_COST_EXPONENT}; 0 ranks by |score| alone)")
    parser.add_argument("--mlp-groups", type=int,
                        help="split each MLP into G nodes of equal unit blocks (G divides its units; default 1, "
                             "or the --scores-from file's)")
    parser.add_argument("--method", choices=METHODS, help="attribution method (default EAP-IG-inputs)")
    parser.add_argument("--steps", type=int, help="integration steps for EAP-IG (default 5)")
    parser.add_argument("--intervention", choices=INTERVENTIONS, help="default patching")
    parser.add_argument("--scores-from", type=Path, metavar="CIRCUIT_JSON",
                        help="skip attribution: choose from this circuit.json's edge scores (same model; its method, "
                             "steps and intervention apply) and measure faithfulness on --pairs")
    parser.add_argument("--refusal", action="append", help="a refusal opening (repeatable); its first token counts")
    parser.add_argument("--compliance", action="append", help="a compliance opening (repeatable)")
    parser.add_argument("--refusal-ids", help="comma-separated refusal-opening token ids (instead of --refusal)")
    parser.add_argument("--compliance-ids", help="comma-separated compliance-opening token ids")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--no-chat-template", action="store_true", help="tokenize prompts as raw text")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, or auto (cuda if present)")
    parser.add_argument("--held-out-pairs", type=Path,
                        help="JSONL like --pairs: measure faithfulness on these instead (phrasings not attributed on)")
    parser.add_argument("--curve-points", type=int, default=12, help="points on the faithfulness curve")
    parser.add_argument("--no-faithfulness", action="store_true", help="skip the faithfulness pass")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _opening_ids(tokenizer: Any, texts: list[str] | None, ids: str | None, defaults: tuple[str, ...]) -> list[int]:
    """Token ids given outright, or the first token of each opening the tokenizer knows."""
    if ids:
        try:
            return [int(i) for i in ids.split(",") if i.strip()]
        except ValueError:
            raise CdeltaError(f"token ids must be comma-separated integers, got {ids!r}") from None
    openings = texts or list(defaults)
    found = {
        encoded[0]
        for encoded in (tokenizer.encode(text, add_special_tokens=False) for text in openings)
        if encoded and encoded[0] != tokenizer.unk_token_id
    }
    if not found:
        raise CdeltaError(f"none of the openings {openings} is a known token of this tokenizer; give token ids instead")
    return sorted(found)


def _saved_scores(args: argparse.Namespace) -> Any:
    """The circuit whose scores --scores-from reuses; attribution settings given alongside it would be ignored."""
    from cdelta.circuit.artifact import Circuit

    given = [flag for flag, value in (("--method", args.method), ("--steps", args.steps),
                                      ("--intervention", args.intervention)) if value is not None]
    if given:
        raise CdeltaError(f"{', '.join(given)} set how scores are attributed, and --scores-from reuses scores "
                          "already attributed: drop one or the other")
    return Circuit.load(args.scores_from)


def _mlp_groups(args: argparse.Namespace, scores_from: Any) -> int:
    if args.mlp_groups is not None:
        return args.mlp_groups
    return 1 if scores_from is None else scores_from.model.mlp_groups


def _load(args: argparse.Namespace) -> tuple[Any, Any]:
    import torch

    from cdelta.base_model import load_base, resolve_device

    model, tokenizer = load_base(str(args.model), dtype=getattr(torch, args.dtype))
    return model.to(resolve_device(args.device)), tokenizer


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from cdelta.circuit.plots import plot_faithfulness, plot_heatmap
    from cdelta.eap.pairs import load_pairs
    from cdelta.localize import localize

    pairs = load_pairs(args.pairs)
    if args.held_out_pairs is not None and args.no_faithfulness:
        raise CdeltaError("--held-out-pairs are only read to measure faithfulness: drop --no-faithfulness")
    held_out = None if args.held_out_pairs is None else load_pairs(args.held_out_pairs)
    rule, size = "budget", 0.05
    for name, value in (("budget", args.budget), ("top_edges", args.edges), ("top_nodes", args.nodes), ("greedy", args.greedy)):
        if value is not None:
            rule, size = name, value
    if args.cost_exponent is not None and rule != "budget":
        raise CdeltaError(f"--cost-exponent weighs the budget rule only; drop it or use --budget instead of the {rule} rule")
    cost_exponent = DEFAULT_COST_EXPONENT if args.cost_exponent is None else args.cost_exponent
    check_cost_exponent(cost_exponent)
    scores_from = None if args.scores_from is None else _saved_scores(args)
    model, tokenizer = _load(args)
    circuit = localize(
        model, tokenizer, pairs,
        refusal_ids=_opening_ids(tokenizer, args.refusal, args.refusal_ids, DEFAULT_REFUSAL),
        compliance_ids=_opening_ids(tokenizer, args.compliance, args.compliance_ids, DEFAULT_COMPLIANCE),
        method=args.method or "EAP-IG-inputs", steps=5 if args.steps is None else args.steps,
        intervention=args.intervention or "patching", rule=rule, size=size,
        cost_exponent=cost_exponent, mlp_groups=_mlp_groups(args, scores_from), batch_size=args.batch_size, chat=not args.no_chat_template,
        model_name=str(args.model),
        curve_points=None if args.no_faithfulness else args.curve_points, progress=not args.quiet,
        held_out=held_out, scores_from=scores_from,
    )
    circuit.save(args.output / "circuit.json")
    plot_heatmap(circuit, args.output / "heatmap.png")
    if circuit.faithfulness is not None:
        plot_faithfulness(circuit, args.output / "faithfulness.png")
    console = Console()
    console.print(
        f"[bold]circuit[/]: {len(circuit.selection.edges)} edges, {len(circuit.nodes)} nodes, "
        f"parameter fraction {circuit.param_fraction:.4%} ({circuit.param_count:,} of {circuit.model.total_params:,})"
    )
    if circuit.faithfulness is not None:
        f = circuit.faithfulness
        where = "attribution pairs" if f.held_out is None else f"{f.held_out[1]} held-out pairs"
        console.print(f"faithfulness {f.circuit:.3f}; curve area {f.area:.3f} (on the {where})")
    console.print(f"wrote {args.output / 'circuit.json'}")
    return 0
