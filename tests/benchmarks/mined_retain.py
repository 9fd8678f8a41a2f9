"""Benchmark: ΔθC with and without mined retain examples, on the same circuit, at fixed k.

    python tests/benchmarks/mined_retain.py [--categories a,b] [--mlp-groups 172] [--ks 0.25,0.5,1]
        [--mine-rounds 1] [--utility 400] [--out runs/mined-retain]

For every category: the study's circuit (EAP-IG within 5%, no faithfulness curve), then ΔθC from the
study's 512 random retain examples alone and with `--mine-rounds` rounds of mining over 4,096 more
train prompts (EditConfig), each measured on the test split (200 prompts a category, `--utility`
utility items) at every k. Fixed k separates the retain data's effect from the dev rule that picks
k. Prints a table, writes mined_retain.json. Not collected by pytest.
"""
from __future__ import annotations

import argparse
import json
import random
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from backends.generation import GenerationParams
from backends.hf_engine import HFEngine
from cdelta.apply import patched
from cdelta.atomic import atomic_write_text
from cdelta.edit import ablation_slices, edit_patch
from cdelta.patch import with_k
from cdelta.policy import parse_policy
from cdelta.slice_sets import model_shapes
from harness.behaviour import measure, selectivity
from harness.edit_study import StudyConfig, find_circuit, study_examples
from harness.organism import registry
from harness.policy_data import contrast_pairs
from tasks.suite.categories import CATEGORIES, POLICY_CATEGORIES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--categories", default=",".join(POLICY_CATEGORIES))
    parser.add_argument("--mlp-groups", type=int, default=172)
    parser.add_argument("--ks", default="0.25,0.5,1")
    parser.add_argument("--mine-rounds", type=int, default=1)
    parser.add_argument("--utility", type=int, default=400, help="test utility items (a seeded sample)")
    parser.add_argument("--out", default="runs/mined-retain")
    args = parser.parse_args()
    ks = [float(k) for k in args.ks.split(",")]
    console = Console()
    model_dir = registry.resolve_model("default")
    records = registry.organism_suite(model_dir)
    engine = HFEngine.from_path(model_dir)
    model, tokenizer = engine.model, engine.tokenizer
    test = [r for r in records if r.split == "test" and r.category != "utility"]
    test += random.Random(0).sample([r for r in records if r.split == "test" and r.category == "utility"], args.utility)
    params = GenerationParams(max_new_tokens=24, batch_size=64)
    base = measure(engine, test, params, "base")
    rows: dict[str, dict[str, dict[str, dict[str, float | str]]]] = {}
    for category in args.categories.split(","):
        study = StudyConfig(policy=f"refuse:{category}", mlp_groups=args.mlp_groups)
        study = replace(study, edit=replace(study.edit, mine_rounds=args.mine_rounds))
        policy = parse_policy(study.policy, list(CATEGORIES))
        pairs = contrast_pairs(tokenizer, records, category, study.contrast, study.n_pairs, seed=study.seed)
        circuit = find_circuit(model, tokenizer, pairs, policy, study, with_faithfulness=False)
        slices = ablation_slices(circuit.param_slices, model_shapes(model), "circuit", study.seed)
        examples, mined = study_examples(records, policy, study)  # both edits start from the same draw
        rows[category] = {}
        for name, config in (("random retain", replace(mined, mine_rounds=0)), (f"mined x{args.mine_rounds}", mined)):
            console.print(f"[bold cyan]▶ {category}: ΔθC, {name}[/]")
            patch = edit_patch(model, tokenizer, slices, policy, examples, config, k=1.0, ablation="circuit",
                               model_name=str(model_dir))
            for k in ks:
                with patched(model, with_k(patch, k)):
                    seen = measure(engine, test, params, f"{name} k={k:g}")
                rows[category][f"{name} k={k:g}"] = selectivity(base, seen, category).to_dict()
        atomic_write_text(Path(args.out) / "mined_retain.json", json.dumps(rows, indent=1) + "\n")
    table = Table(title=f"ΔθC on the circuit (G = {args.mlp_groups}), test split: random retain against mined")
    for col in ("category", "retain, k", "target", "off-target pts", "benign", "utility retention", "score"):
        table.add_column(col)
    for category, by_run in rows.items():
        for run, s in by_run.items():
            table.add_row(category, run, f"{100 * s['target_refusal']:.1f}", f"{100 * s['off_target_change']:.1f}",
                          f"{100 * s['benign_refusal']:.1f}", f"{s['utility_retention']:.3f}", f"{s['score']:.3f}")
    console.print(table)


if __name__ == "__main__":
    main()
