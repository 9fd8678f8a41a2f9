"""Benchmark: how the budget rule's cost weighting changes the organism's circuits and their faithfulness.

    python tests/benchmarks/cost_weighting.py [--categories a,b] [--mlp-groups 688] [--budget 0.05]
        [--exponents 0,0.25,0.5,0.75] [--circuits DIR] [--pairs 64] [--steps 5] [--out runs/cost-weighting]

For every category: EAP-IG-inputs scores of the study's train-split contrast pairs (read from
DIR/<category>/circuit.json when --circuits names a `localize_organism.py` output of the same model,
MLP groups, method, steps and pairs; otherwise attributed here and saved), then one circuit within the
budget for each cost exponent a (edges ranked by |score| / source parameters^a; a = 0 is |score|
alone), and each circuit's normalised faithfulness on dev-split and on test-split pairs, whose template
families the attribution never saw. The dev column is where an exponent may be chosen; the test column
is the held-out check. Prints a table, writes cost_weighting.json after every category and
cost_weighting.png. Not collected by pytest.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from backends.hf_engine import load_model  # noqa: E402
from cdelta.atomic import atomic_write_text  # noqa: E402
from cdelta.circuit.artifact import Circuit  # noqa: E402
from cdelta.circuit.faithfulness import circuit_metrics, normalised  # noqa: E402
from cdelta.circuit.plots import save_figure  # noqa: E402
from cdelta.circuit.rules import check_cost_exponent  # noqa: E402
from cdelta.circuit.selection import within_budget  # noqa: E402
from cdelta.eap.metrics import metric_name, refusal_logit_diff  # noqa: E402
from cdelta.eap.pairs import batch_pairs, data_fingerprint, tokenize_pairs  # noqa: E402
from cdelta.errors import CdeltaError  # noqa: E402
from cdelta.fingerprint import fingerprint  # noqa: E402
from cdelta.graph.adapters import adapter_for  # noqa: E402
from cdelta.graph.params import ParamAccount  # noqa: E402
from cdelta.localize import localize, reused_scores  # noqa: E402
from cdelta.policy import parse_policy  # noqa: E402
from cdelta.provenance import library_versions  # noqa: E402
from harness.edit_study import circuit_openings  # noqa: E402
from harness.organism import registry  # noqa: E402
from harness.policy_data import contrast_pairs  # noqa: E402
from tasks.suite.categories import CATEGORIES, POLICY_CATEGORIES  # noqa: E402

SPLITS = ("dev", "test")


def saved_scores(path: Path, weights: str, mlp_groups: int, metric: str, steps: int, pairs: str) -> torch.Tensor | None:
    """The score matrix of a saved circuit.json this run may reuse, or None when it is absent; an error when
    it was attributed on another model, graph or metric, or with other settings or pairs."""
    if not path.exists():
        return None
    circuit = Circuit.load(path)
    scores = reused_scores(circuit, weights, mlp_groups, metric)
    if (circuit.method, circuit.steps, circuit.data.fingerprint) != ("EAP-IG-inputs", steps, pairs):
        raise CdeltaError(f"{path} was attributed with {circuit.method}, {circuit.steps} steps on pairs "
                          f"{circuit.data.fingerprint[:19]}; this run asks for EAP-IG-inputs, {steps} steps on pairs "
                          f"{pairs[:19]}: drop --circuits or point it at a matching run")
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--categories", default=",".join(POLICY_CATEGORIES))
    parser.add_argument("--budget", type=float, default=0.05)
    parser.add_argument("--mlp-groups", type=int, default=688)
    parser.add_argument("--exponents", default="0,0.25,0.5,0.75")
    parser.add_argument("--circuits", type=Path, help="a localize_organism.py --out folder whose scores to reuse")
    parser.add_argument("--pairs", type=int, default=64, help="pairs for attribution, and as many per split measured")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/cost-weighting")
    args = parser.parse_args()
    exponents = [float(a) for a in args.exponents.split(",")]
    for a in exponents:
        check_cost_exponent(a)
    categories = args.categories.split(",")
    unknown = sorted(set(categories) - set(POLICY_CATEGORIES))
    if unknown:
        raise SystemExit(f"unknown categories {unknown}; choose from {', '.join(POLICY_CATEGORIES)}")
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    console = Console()
    model_dir = registry.resolve_model("default")
    records = registry.organism_suite(model_dir)
    model, tokenizer = load_model(model_dir)
    adapter = adapter_for(model, args.mlp_groups)
    graph, account = adapter.graph, ParamAccount(adapter)
    names = graph.source_names()
    weights = fingerprint(model, [name for name, _ in model.named_parameters()], str(model_dir)).digest
    rows: list[dict] = []
    for category in categories:
        policy = parse_policy(f"refuse:{category}", list(CATEGORIES))
        refusal_ids, compliance_ids = circuit_openings(tokenizer, policy, args.seed)
        metric = refusal_logit_diff(refusal_ids, compliance_ids)
        found_on = contrast_pairs(tokenizer, records, category, "refused", args.pairs, split="train", seed=args.seed)
        began = time.perf_counter()
        scores = None
        if args.circuits is not None:
            scores = saved_scores(args.circuits / category / "circuit.json", weights, args.mlp_groups, metric_name(metric),
                                  args.steps, data_fingerprint(tokenize_pairs(tokenizer, found_on)))
        if scores is None:
            circuit = localize(model, tokenizer, found_on, refusal_ids=refusal_ids, compliance_ids=compliance_ids,
                               steps=args.steps, rule="budget", size=args.budget, mlp_groups=args.mlp_groups,
                               curve_points=None, model_name=str(model_dir), progress=False)
            circuit.save(out / category / "circuit.json")
            scores = circuit.score_matrix()
        attributed = time.perf_counter() - began
        chosen = {a: within_budget(graph, scores, account, args.budget, a) for a in exponents}
        masks = [graph.edge_mask(), torch.zeros_like(graph.edge_mask())] + [c.edges for c in chosen.values()]
        faith: dict[str, list[float]] = {}
        for split in SPLITS:
            pairs = contrast_pairs(tokenizer, records, category, "refused", args.pairs, split=split, seed=args.seed)
            batches = batch_pairs(tokenize_pairs(tokenizer, pairs), 8)
            full, empty, *values = circuit_metrics(adapter, batches, masks, metric, progress=False)
            faith[split] = [normalised(v, full, empty) for v in values]
        for i, (a, selection) in enumerate(chosen.items()):
            kept = [n for n, keep in zip(names, selection.nodes.tolist()) if keep]
            rows.append({"category": category, "cost_exponent": a, "faithfulness_dev": round(faith["dev"][i], 4),
                         "faithfulness_test": round(faith["test"][i], 4),
                         "param_fraction": account.fraction(selection.nodes), "edges": selection.n_edges,
                         "heads": sum(n.startswith("a") for n in kept), "mlp_nodes": sum(n.startswith("m") for n in kept),
                         "attribution_seconds": round(attributed, 1), "seconds": round(time.perf_counter() - began, 1)})
        console.print(f"{category}: " + ", ".join(f"a={r['cost_exponent']:g} dev {r['faithfulness_dev']:.3f} "
                                                  f"test {r['faithfulness_test']:.3f}" for r in rows if r["category"] == category))
        result = {"model": str(model_dir), "budget": args.budget, "mlp_groups": args.mlp_groups, "steps": args.steps,
                  "pairs": args.pairs, "seed": args.seed, "threads": torch.get_num_threads(),
                  "versions": library_versions(), "rows": rows}
        atomic_write_text(out / "cost_weighting.json", json.dumps(result, indent=1) + "\n")
    plot(rows, categories, out / "cost_weighting.png")
    table = Table(title=f"Faithfulness of {args.budget:.0%} circuits by cost exponent (G = {args.mlp_groups}): dev / test")
    table.add_column("category")
    for a in exponents:
        table.add_column(f"a = {a:g}")
    for category in categories:
        own = [r for r in rows if r["category"] == category]
        table.add_row(category, *(f"{r['faithfulness_dev']:.3f} / {r['faithfulness_test']:.3f} "
                                  f"({r['heads']} h, {r['mlp_nodes']} m)" for r in own))
    console.print(table)
    console.print(f"wrote {out / 'cost_weighting.json'} and {out / 'cost_weighting.png'}")


def plot(rows: list[dict], categories: list[str], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, category in enumerate(categories):
        own = [r for r in rows if r["category"] == category]
        xs = [r["cost_exponent"] for r in own]
        ax.plot(xs, [r["faithfulness_test"] for r in own], "o-", color=f"C{i}", label=f"{category} (test)")
        ax.plot(xs, [r["faithfulness_dev"] for r in own], "x--", color=f"C{i}", alpha=0.6)
    ax.axhline(0.8, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("cost exponent a (edges ranked by |score| / parameters^a)")
    ax.set_ylabel("normalised faithfulness (dashed: dev)")
    ax.legend(fontsize=7)
    save_figure(fig, path)


if __name__ == "__main__":
    try:
        main()
    except CdeltaError as exc:
        raise SystemExit(f"error: {exc}") from None
