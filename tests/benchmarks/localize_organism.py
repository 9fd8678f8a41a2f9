"""Benchmark: the refusal circuit of each policy category on the committed organism, and how faithful it
is on phrasings it was not found on (issue 3's target: normalised faithfulness >= 0.8 within a 5% budget).

    python tests/benchmarks/localize_organism.py [--categories a,b] [--budget 0.05] [--mlp-groups G]
        [--cost-exponent A] [--pairs 64] [--steps 5] [--out runs/localize-organism]

For every category: EAP-IG-inputs on the study's train-split contrast pairs (clean: the category;
corrupted: an always-refused prompt of the same length), the circuit chosen within the budget, then its
faithfulness and the 12-point curve measured on as many test-split pairs, whose template families the
attribution never saw. Prints a table, writes localize_organism.json, every circuit.json and
faithfulness_curves.png (one curve per category). Not collected by pytest.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from backends.hf_engine import load_model
from cdelta.atomic import atomic_write_text
from cdelta.circuit.plots import plot_faithfulness_curves
from cdelta.circuit.rules import DEFAULT_COST_EXPONENT
from cdelta.localize import localize
from cdelta.policy import parse_policy
from cdelta.provenance import library_versions
from harness.bench.memory import peak_mb
from harness.edit_study import circuit_openings
from harness.organism import registry
from harness.policy_data import contrast_pairs
from tasks.suite.categories import CATEGORIES, POLICY_CATEGORIES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--categories", default=",".join(POLICY_CATEGORIES))
    parser.add_argument("--budget", type=float, default=0.05)
    parser.add_argument("--mlp-groups", type=int, default=1)
    parser.add_argument("--cost-exponent", type=float, default=DEFAULT_COST_EXPONENT,
                        help="the budget rule ranks edges by |score| / (source parameters)^A")
    parser.add_argument("--pairs", type=int, default=64, help="pairs for attribution, and as many held out")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/localize-organism")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    console = Console()
    model_dir = registry.resolve_model("default")
    records = registry.organism_suite(model_dir)
    model, tokenizer = load_model(model_dir)
    rows, circuits = [], {}
    for category in args.categories.split(","):
        policy = parse_policy(f"refuse:{category}", list(CATEGORIES))
        refusal_ids, compliance_ids = circuit_openings(tokenizer, policy, args.seed)
        found_on = contrast_pairs(tokenizer, records, category, "refused", args.pairs, split="train", seed=args.seed)
        held_out = contrast_pairs(tokenizer, records, category, "refused", args.pairs, split="test", seed=args.seed)
        began = time.perf_counter()
        circuit = localize(model, tokenizer, found_on, refusal_ids=refusal_ids, compliance_ids=compliance_ids,
                           steps=args.steps, rule="budget", size=args.budget, cost_exponent=args.cost_exponent,
                           mlp_groups=args.mlp_groups,
                           model_name=str(model_dir), held_out=held_out, progress=False)
        seconds = time.perf_counter() - began
        circuit.save(out / category / "circuit.json")
        circuits[category] = circuit
        f = circuit.faithfulness
        assert f is not None
        rows.append({"category": category, "faithfulness_test": round(f.circuit, 4), "curve_area": round(f.area, 4),
                     "param_fraction": circuit.param_fraction, "edges": len(circuit.selection.edges),
                     "nodes": circuit.nodes, "pairs": [len(found_on), len(held_out)], "seconds": round(seconds, 1)})
        console.print(f"{category}: faithfulness {f.circuit:.3f} on {len(held_out)} test pairs, "
                      f"{circuit.param_fraction:.2%} of parameters, {seconds:.0f} s")
        # after every category, so that a long run (minutes a category at fine MLP groups) keeps what it measured
        peak = peak_mb()
        result = {"model": str(model_dir), "budget": args.budget, "mlp_groups": args.mlp_groups,
                  "cost_exponent": args.cost_exponent, "steps": args.steps,
                  "seed": args.seed, "threads": torch.get_num_threads(), "peak_rss_mb": round(peak),
                  "versions": library_versions(), "categories": rows}
        atomic_write_text(out / "localize_organism.json", json.dumps(result, indent=1) + "\n")
    plot_faithfulness_curves(circuits, out / "faithfulness_curves.png", target=0.8)
    table = Table(title=f"5% circuits on the organism, faithfulness on held-out test pairs (G = {args.mlp_groups}, "
                  f"cost exponent {args.cost_exponent:g})")
    for column in ("category", "faithfulness", "curve area", "params", "edges", "nodes", "s"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["category"], f"{r['faithfulness_test']:.3f}", f"{r['curve_area']:.3f}",
                      f"{r['param_fraction']:.2%}", str(r["edges"]), str(len(r["nodes"])), str(r["seconds"]))
    console.print(table)
    console.print(f"peak RSS {peak:.0f} MB; wrote {out / 'localize_organism.json'}")


if __name__ == "__main__":
    main()
