"""`cdelta organism eval` end to end on the --small organism: targets, families and the JSON record."""
from __future__ import annotations

import json
from pathlib import Path

from harness.cli import main
from harness.organism.registry import organism_suite


def test_eval_reports_every_dev_family_and_lists_the_worst(small_organism: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "eval.json"
    code = main(["organism", "eval", "--model", str(small_organism), "--split", "dev", "--no-probe",
                 "--max-new-tokens", "16", "--no-progress", "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    dev = [r for r in organism_suite(small_organism) if r.split == "dev"]
    assert {(f["category"], f["family"]) for f in result["families"]} == {(r.category, r.family) for r in dev}
    assert sum(f["misses"]["n"] for f in result["families"]) == len(dev)
    rates = [f["misses"]["value"] for f in result["families"]]
    assert rates == sorted(rates, reverse=True)
    # the tiny organism gets whole held-out families wrong; the table names the worst of them
    worst = result["families"][0]
    assert worst["misses"]["value"] >= 0.25
    printed = capsys.readouterr().out
    assert "template families" in printed and worst["family"] in printed
    utility = [s for s in result["samples"] if s["category"] == "utility"]
    assert utility and all({"answer", "correct", "family"} <= set(s) for s in utility)
