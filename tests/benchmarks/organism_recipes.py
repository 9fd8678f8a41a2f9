"""Benchmark: compare organism recipes over several seeds, because one build's numbers move as much
from seed to seed as from recipe to recipe (docs/organism.md).

    python tests/benchmarks/organism_recipes.py --config organism-v4 --config my.toml [--seeds 0,1]
        [--split test] [--out runs/organism-recipes]

Each recipe (a named config or a TOML/JSON file) is built once per seed, as the config with only
`seed` replaced (same suite draw, another initialisation and batch order), into OUT/<name>/seed<s>,
and measured like `cdelta organism eval --json` into OUT/<name>/seed<s>-eval.json. A build or a
measurement already in OUT is reused when its config and weights match, so a comparison can be
extended a seed at a time. Prints every measure per seed with the recipe's mean, and writes
organism_recipes.json and organism_recipes.md. A build of a full recipe takes 16-27 minutes on 2
cores (1,500-2,400 steps), its measurement about a minute. Not collected by pytest.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cdelta.atomic import atomic_write_text
from cdelta.errors import CdeltaError
from cdelta.provenance import library_versions
from harness.organism import registry
from harness.organism.build import build_on_suite, read_manifest
from harness.organism.config import OrganismConfig
from harness.organism.evaluate import MAX_NEW_TOKENS, evaluate
from tasks.suite.categories import CATEGORIES, POLICY_CATEGORIES


def with_seed(cfg: OrganismConfig, seed: int) -> OrganismConfig:
    return OrganismConfig.from_dict({**cfg.to_dict(), "seed": seed})


def built(cfg: OrganismConfig, folder: Path, console: Console) -> dict:
    """The build's manifest, training it first unless `folder` already holds this exact config."""
    if registry.is_complete(folder):
        manifest = read_manifest(folder)
        if manifest["config_hash"] != cfg.hash():
            raise CdeltaError(f"{folder} holds a build of another config ({manifest['config_hash']}, not "
                              f"{cfg.hash()}); remove it or choose another --out")
        console.print(f"reusing {folder}")
        return manifest
    console.print(f"building [bold]{cfg.name}[/] seed {cfg.seed} into {folder}")
    build_on_suite(cfg, folder)
    return read_manifest(folder)


def measured(folder: Path, manifest: dict, split: str, path: Path, console: Console) -> dict:
    """The eval record of `folder`, reused from `path` when it was measured on these same weights."""
    if path.is_file():
        record = json.loads(path.read_text())
        if (record.get("weights_sha256"), record.get("split"), record.get("max_new_tokens")) == \
                (manifest["weights_sha256"], split, MAX_NEW_TOKENS):
            console.print(f"reusing {path}")
            return record
    console.print(f"measuring {folder} on the {split} split")
    result = evaluate(folder, registry.organism_suite(folder), split=split)
    record = {**result.record(folder), "weights_sha256": manifest["weights_sha256"], "max_new_tokens": MAX_NEW_TOKENS}
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return record


def measures(record: dict, manifest: dict) -> dict[str, float]:
    """One build's numbers: refusal and utility in percent, probe balanced accuracy, targets met,
    training seconds."""
    out = {f"refusal {c}": 100 * record["refusal"][c]["value"] for c in CATEGORIES if c in record["refusal"]}
    utility = record["utility_exact_match"]
    out |= {f"utility {t}": 100 * utility[t]["value"] for t in sorted(utility, key=lambda t: t != "all")}
    if record["probe"]:
        acc = record["probe"]["test_balanced_accuracy"]
        out |= {f"probe {c}": acc[c] for c in POLICY_CATEGORIES if c in acc}
    out["targets met"] = sum(t["met"] for t in record["targets"])
    out["train seconds"] = manifest["train_seconds"]
    return out


def cell(name: str, values: list[float]) -> str:
    """Each seed's value, then the mean when there is more than one seed."""
    fmt = "{:.3f}" if name.startswith("probe") else "{:.0f}" if name in ("targets met", "train seconds") else "{:.1f}"
    text = " / ".join(fmt.format(v) for v in values)
    return f"{text} (mean {fmt.format(statistics.mean(values))})" if len(values) > 1 else text


def compare(args: argparse.Namespace) -> None:
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        raise CdeltaError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
    recipes = [registry.config_from_spec(spec) for spec in args.config]
    names = [cfg.name for cfg in recipes]
    if len(set(names)) != len(names):
        raise CdeltaError(f"two recipes share a name ({names}); give each config its own `name`")
    console, out = Console(), Path(args.out)
    per_recipe: dict[str, list[dict[str, float]]] = {}
    builds: dict[str, list[dict[str, object]]] = {}
    for cfg in recipes:
        for seed in seeds:
            folder = out / cfg.name / f"seed{seed}"
            manifest = built(with_seed(cfg, seed), folder, console)
            record = measured(folder, manifest, args.split, out / cfg.name / f"seed{seed}-eval.json", console)
            per_recipe.setdefault(cfg.name, []).append(measures(record, manifest))
            builds.setdefault(cfg.name, []).append({"seed": seed, "folder": str(folder),
                                                    "config_hash": manifest["config_hash"],
                                                    "weights_sha256": manifest["weights_sha256"]})
    rows = list(dict.fromkeys(m for runs in per_recipe.values() for run in runs for m in run))
    table = Table(title=f"organism recipes, {args.split} split, seeds {args.seeds} (each seed, then the mean)")
    table.add_column("measure", no_wrap=True)
    for name in names:
        table.add_column(name)
    lines = ["| measure | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for m in rows:
        cells = [cell(m, [run[m] for run in per_recipe[name] if m in run]) for name in names]
        table.add_row(m, *cells)
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    console.print(table)
    summary = {"split": args.split, "seeds": seeds, "max_new_tokens": MAX_NEW_TOKENS, "versions": library_versions(),
               "recipes": {cfg.name: {"config": cfg.to_dict(), "builds": builds[cfg.name],
                                      "measures": per_recipe[cfg.name]} for cfg in recipes}}
    atomic_write_text(out / "organism_recipes.json", json.dumps(summary, indent=1) + "\n")
    atomic_write_text(out / "organism_recipes.md", "\n".join(lines) + "\n")
    console.print(f"wrote {out / 'organism_recipes.json'} and {out / 'organism_recipes.md'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", action="append", required=True,
                        help=f"a recipe: {', '.join(registry.NAMED)} or a TOML/JSON config file (repeat to compare)")
    parser.add_argument("--seeds", default="0,1", help="comma-separated training seeds (default 0,1)")
    parser.add_argument("--split", default="test", choices=("dev", "test"))
    parser.add_argument("--out", default="runs/organism-recipes")
    args = parser.parse_args()
    try:
        compare(args)
    except CdeltaError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
