"""Benchmark: the C-Δθ study for each of the five policy categories on the committed organism (issue 4's table).

    python tests/benchmarks/edit_all_categories.py [--out runs/edit-all] [--categories a,b] [--mlp-groups G]
        [--mine-rounds R] [--variants circuit,random,dense]

For every category: localize within the budget, ΔθC on the circuit and on the random and dense
ablations, k chosen on dev, all measured on the test split. Prints one table and writes
edit_all_categories.json. Not collected by pytest.
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
from harness.organism import registry
from tasks.suite.categories import POLICY_CATEGORIES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="runs/edit-all")
    parser.add_argument("--categories", default=",".join(POLICY_CATEGORIES))
    parser.add_argument("--budget", type=float, default=0.05)
    parser.add_argument("--mlp-groups", type=int, default=1, help="MLP groups of the circuit's graph")
    parser.add_argument("--contrast", default="refused", choices=("refused", "benign"))
    parser.add_argument("--variants", default=",".join(VARIANTS), help="the circuit and the ablations to run")
    parser.add_argument("--mine-rounds", type=int, default=0, help="rounds of mined retain examples (EditConfig)")
    args = parser.parse_args()
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {', '.join(sorted(unknown))}; choose from {', '.join(VARIANTS)}")
    console = Console()
    model = registry.resolve_model("default")
    records = registry.organism_suite(model)
    rows = {}
    for category in args.categories.split(","):
        study = StudyConfig(policy=f"refuse:{category}", budget=args.budget, contrast=args.contrast,
                            mlp_groups=args.mlp_groups)
        study = replace(study, edit=replace(study.edit, mine_rounds=args.mine_rounds))
        summary = run_study(model, records, study, Path(args.out) / category, console,
                            variants=tuple(args.variants.split(",")), write_edited_checkpoint=False)
        rows[category] = {"circuit_param_fraction": summary["circuit"]["param_fraction"],
                          "faithfulness": summary["circuit"]["faithfulness"],
                          "variants": summary["variants"], "seconds": sum(summary["timings_s"].values())}
    table = Table(title=f"C-Δθ on the committed organism, test split (budget {args.budget:.0%}, {args.contrast} contrast, "
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
    Path(args.out).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.out) / "edit_all_categories.json", json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
