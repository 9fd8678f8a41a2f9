"""Benchmark: how close the committed organism sits to refusing, per category, on train and on test phrasings.

    python tests/benchmarks/decision_margin.py [--model organism-v4|FOLDER] [--per-category 600] [--out runs/decision-margin]

For each suite category and split: log P(a refusal opening) at the first response position (the
organism's refusal openings, as the edit study's metric uses them), its median, and the share of
prompts above log P = -4 (about 2%). An edit that nudges the refusal decision flips first the
prompts with the thinnest margin, so a category whose test phrasings sit much closer to refusing
than its train phrasings will leak under any edit, whatever its retain data. Prints a table and
writes decision_margin.json. Not collected by pytest.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from backends.hf_engine import HFEngine
from cdelta.atomic import atomic_write_text
from harness.organism import registry
from harness.policy_data import opening_ids
from tasks.suite.categories import CATEGORIES
from tasks.suite.refusals import ORGANISM_REFUSALS

NEAR = -4.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-category", type=int, default=600, help="prompts per category and split (the first N)")
    parser.add_argument("--out", default="runs/decision-margin")
    parser.add_argument("--model", default="default", help="an organism name or folder (default: the committed one)")
    args = parser.parse_args()
    model_dir = registry.resolve_model(args.model)
    records = registry.organism_suite(model_dir)
    engine = HFEngine.from_path(model_dir)
    refusal_ids = opening_ids(engine.tokenizer, list(ORGANISM_REFUSALS))
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for category in CATEGORIES:
        rows[category] = {}
        for split in ("train", "test"):
            prompts = [r.prompt for r in records if r.split == split and r.category == category][: args.per_category]
            # log P(the first response token is one of the refusal openings)
            logp = torch.logsumexp(engine.next_token_logprobs(prompts, 64)[:, refusal_ids], dim=-1).tolist()
            rows[category][split] = {"n": len(logp), "median_logp": statistics.median(logp),
                                     "share_above_near": sum(x > NEAR for x in logp) / len(logp)}
    table = Table(title=f"log P(refusal opening) at the first response position; 'near' = above {NEAR:g}")
    for col in ("category", "train median", "test median", "train near", "test near"):
        table.add_column(col)
    for category, d in rows.items():
        table.add_row(category, f"{d['train']['median_logp']:.2f}", f"{d['test']['median_logp']:.2f}",
                      f"{100 * d['train']['share_above_near']:.1f}%", f"{100 * d['test']['share_above_near']:.1f}%")
    Console().print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "decision_margin.json",
                      json.dumps({"model": str(model_dir), "near": NEAR, "per_category": args.per_category,
                                  "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
