"""Benchmark: the C-Δθ study for each of the five policy categories on the committed organism (issue 4's table).

    python tests/benchmarks/edit_all_categories.py [--out runs/edit-all] [--model M] [--categories a,release:b] [--mlp-groups G]
        [--mine-rounds R] [--variants circuit,random,dense] [--random-draws N] [--curve-points P] [--ks 0.25,0.5]
        [--dev-utility U]

For every category: localize within the budget, ΔθC on the circuit and on the random and dense
ablations (the random one drawn N times), k chosen on dev, all measured on the test split. Prints
one table, and with N > 1 a second one that sets the circuit's score against the N random draws;
writes edit_all_categories.json after each category. Not collected by pytest.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cdelta.atomic import atomic_write_text
from harness.edit_study import VARIANTS, StudyConfig, run_study
from harness.cli_args import comma_names
from harness.organism import registry
from tasks.suite.categories import POLICY_CATEGORIES


def scales(text: str) -> tuple[float, ...]:
    """--ks: the shared comma-separated form, as numbers; argparse names this function in its error when a
    value is not a number."""
    return tuple(float(k) for k in comma_names(text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="runs/edit-all")
    parser.add_argument("--model", default="default", help="an organism name or folder (default: the committed one)")
    parser.add_argument("--categories", default=",".join(POLICY_CATEGORIES),
                        help="categories to refuse, or whole policies such as release:borderline")
    parser.add_argument("--budget", type=float, default=0.05)
    parser.add_argument("--mlp-groups", type=int, default=1, help="MLP groups of the circuit's graph")
    parser.add_argument("--cost-exponent", type=float, default=StudyConfig.cost_exponent,
                        help="the budget rule's cost weighting (0: rank edges by |score| alone)")
    parser.add_argument("--contrast", default="refused", choices=("refused", "benign"))
    parser.add_argument("--variants", default=",".join(VARIANTS), help="the circuit and the ablations to run")
    parser.add_argument("--mine-rounds", type=int, default=0, help="rounds of mined retain examples (EditConfig)")
    parser.add_argument("--random-draws", type=int, default=1, help="random-slice ablations, each its own seed")
    parser.add_argument("--curve-points", type=int, default=StudyConfig.curve_points,
                        help="points of each circuit's faithfulness curve")
    parser.add_argument("--ks", type=scales, default=StudyConfig.ks,
                        help="comma-separated scales k the dev split chooses among")
    parser.add_argument("--dev-utility", type=int, default=StudyConfig.dev_utility,
                        help="dev utility items the retention floor is checked on (the dev split has 600)")
    args = parser.parse_args()
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {', '.join(sorted(unknown))}; choose from {', '.join(VARIANTS)}")
    console = Console()
    model = registry.resolve_model(args.model)
    records = registry.organism_suite(model)
    rows = {}
    for category in args.categories.split(","):
        # a bare category is refused; a whole policy ("release:borderline") is taken as written
        policy = category if ":" in category else f"refuse:{category}"
        study = StudyConfig(policy=policy, budget=args.budget, contrast=args.contrast,
                            mlp_groups=args.mlp_groups, cost_exponent=args.cost_exponent,
                            random_draws=args.random_draws, curve_points=args.curve_points, ks=args.ks,
                            dev_utility=args.dev_utility)
        study = replace(study, edit=replace(study.edit, mine_rounds=args.mine_rounds))
        summary = run_study(model, records, study, Path(args.out) / category.replace(":", "-"), console,
                            variants=tuple(args.variants.split(",")), write_edited_checkpoint=False)
        rows[category] = {"circuit_param_fraction": summary["circuit"]["param_fraction"],
                          "faithfulness": summary["circuit"]["faithfulness"],
                          "variants": summary["variants"], "seconds": sum(summary["timings_s"].values())}
        atomic_write_text(Path(args.out) / "edit_all_categories.json", json.dumps(rows, indent=1) + "\n")
    table = Table(title=f"C-Δθ on {model.name}, test split (budget {args.budget:.0%}, {args.contrast} contrast, "
                          f"{args.mlp_groups} MLP groups, {args.mine_rounds} mining rounds)")
    for col in ("category", "variant", "k", "params %", "target refusal", "off-target |Δ|", "always-refused min",
                "benign", "utility retention", "score"):
        table.add_column(col)
    for category, row in rows.items():
        for variant, d in row["variants"].items():
            s = d["selectivity"]
            table.add_row(category, variant, f"{d['k']:g}", f"{100 * d['params_fraction']:.2f}",
                          f"{100 * s['target_refusal']:.1f}", f"{100 * s['off_target_change']:.1f}",
                          f"{100 * s['always_refused_min']:.1f}", f"{100 * s['benign_refusal']:.1f}",
                          f"{s['utility_retention']:.3f}", f"{s['score']:.3f}")
    console.print(table)
    if args.random_draws > 1:
        console.print(against_random(rows))


def against_random(rows: dict[str, dict]) -> Table:
    """The circuit's test score against every random draw's: how many draws it beats, and by how much."""
    table = Table(title="circuit against random slices of equal size (test score)")
    for col in ("category", "circuit", "random draws", "random mean", "circuit − mean", "draws beaten"):
        table.add_column(col)
    for category, row in rows.items():
        variants = row["variants"]
        drawn = [d["selectivity"]["score"] for d in variants.values() if d["ablation"] == "random"]
        if "circuit" not in variants or not drawn:
            continue
        circuit, mean = variants["circuit"]["selectivity"]["score"], sum(drawn) / len(drawn)
        table.add_row(category, f"{circuit:.3f}", " ".join(f"{s:.3f}" for s in drawn), f"{mean:.3f}",
                      f"{circuit - mean:+.3f}", f"{sum(circuit > s for s in drawn)} of {len(drawn)}")
    return table


if __name__ == "__main__":
    main()
