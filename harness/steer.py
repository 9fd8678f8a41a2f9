"""Fitting the steering baselines on the embedded suite: the data choices `cdelta.steering` leaves open.

- refusal direction: harmful = the always-refused categories, harmless = benign (train split); the
  layer filters run on benign dev prompts; the refusal score counts the opening tokens of the
  refusals the judge knows;
- CAST condition: the target category against every other category (train prompts); read (the user's
  text or the template's tokens after it), vector method (CAST's first principal component or
  difference of means, or Fisher's discriminant), layer, threshold and comparator by F1 on the dev
  split;
- coefficient and positions (every position, or the prompt's only): swept together on a
  per-category dev sample, separately for ActAdd and for CAST; kept is the setting that gets the
  target category refused at the goal rate with the least collateral refusal of the answered
  categories (at equal collateral, the one refusing the target more; else the one that refuses the
  target most). Adding at every position can push each
  generated token towards a refusal opening until the text degenerates ("IIII…"), which the judge
  rightly does not count; the prompt-only setting leaves generated tokens unsteered. ActAdd's
  collateral refusal at its setting is the price of not being selective.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from backends.generation import GenerationParams
from backends.hf_engine import HFEngine, Intervention
from backends.steering import ActAdd, Cast
from cdelta.atomic import atomic_dir
from cdelta.chat import template_span
from cdelta.errors import CdeltaError
from cdelta.graph.adapters import adapter_for
from cdelta.steering import (POSITIONS, READS, ModelRef, Positions, Read, RefusalDirection, SteeringArtifact,
                             condition_vectors, fit_condition, fit_refusal_direction, read_mean, read_prompts,
                             save_artifact)
from cdelta.steering.condition import CONDITION_METHODS, ConditionFit, ConditionMethod
from harness.behaviour import measure
from harness.policy_data import opening_ids, subsample
from tasks.refusal_judge import REFUSAL_DIRECTION_PHRASES
from tasks.suite.categories import ALWAYS_REFUSED, CATEGORIES
from tasks.suite.records import PromptRecord
from tasks.suite.refusals import ORGANISM_REFUSALS


@dataclass(frozen=True)
class SteerConfig:
    category: str = "health_consultation"
    n_train: int = 512  # prompts per side for the difference of means and for the condition pairs
    condition_dev_per_category: int = 100
    dev_per_category: int = 40  # behavioural dev sample of the coefficient sweeps
    coefficients: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)  # × the raw difference of means
    positions: tuple[Positions, ...] = POSITIONS
    target_refusal: float = 0.9
    max_layer_fraction: float = 0.8
    kl_threshold: float = 0.1
    condition_methods: tuple[ConditionMethod, ...] = CONDITION_METHODS
    condition_reads: tuple[Read, ...] = READS
    max_new_tokens: int = 24
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES or self.category in ALWAYS_REFUSED:
            raise CdeltaError(f"the target category must be a suite category that is not always refused "
                              f"({', '.join(c for c in CATEGORIES if c not in ALWAYS_REFUSED)}); got {self.category!r}")
        if not self.coefficients or any(c <= 0 for c in self.coefficients):
            raise CdeltaError("steering coefficients must be positive numbers")
        for name, chosen, allowed in (("steering positions", self.positions, POSITIONS),
                                      ("condition methods", self.condition_methods, CONDITION_METHODS),
                                      ("condition reads", self.condition_reads, READS)):
            if not chosen or any(c not in allowed for c in chosen):
                raise CdeltaError(f"{name} must be among {', '.join(allowed)}; got {chosen!r}")


@dataclass(frozen=True)
class SweepRow:
    positions: Positions
    coefficient: float
    refusal: dict[str, float]

    def collateral(self, target: str) -> float:
        """Mean refusal of the categories that should stay answered (all but the target and the always-refused)."""
        rest = [v for c, v in self.refusal.items() if c != target and c not in ALWAYS_REFUSED]
        return sum(rest) / len(rest) if rest else 0.0


@dataclass(frozen=True)
class Fitted:
    actadd: SteeringArtifact
    cast: SteeringArtifact
    base_dev: dict[str, float]


def _prompts(records: Sequence[PromptRecord], split: str, categories: Sequence[str], n: int,
             rng: random.Random) -> list[str]:
    """About `n` prompts of `split`, the same share from each category (large categories would drown the rest)."""
    share = -(-n // len(categories))
    out: list[str] = []
    for category in categories:
        pool = [r.prompt for r in records if r.split == split and r.category == category]
        if not pool:
            raise CdeltaError(f"no {split} prompts of category {category} in the suite")
        out += pool if len(pool) <= share else rng.sample(pool, share)
    rng.shuffle(out)
    return out[:n]


def choose_setting(rows: Sequence[SweepRow], category: str, goal: float) -> SweepRow:
    """Of the settings whose target refusal meets the goal, the one with the least collateral refusal
    (ties: the one refusing the target more, then the smaller coefficient); if none meets it, the one
    refusing the target most."""
    reaching = [r for r in rows if r.refusal[category] >= goal]
    if reaching:
        return min(reaching, key=lambda r: (r.collateral(category), -r.refusal[category], r.coefficient))
    return max(rows, key=lambda r: (r.refusal[category], -r.collateral(category), -r.coefficient))


def _refused(engine: HFEngine, dev: Sequence[PromptRecord], params: GenerationParams) -> dict[str, bool]:
    """Per prompt id: did the judge see a refusal?"""
    return {str(x["id"]): bool(x["refused"]) for x in measure(engine, dev, params, show_progress=False).samples}


def _rates(dev: Sequence[PromptRecord], refused: dict[str, bool]) -> dict[str, float]:
    by_category: dict[str, list[bool]] = {}
    for r in dev:
        by_category.setdefault(r.category, []).append(refused[r.id])
    return {c: sum(v) / len(v) for c, v in by_category.items()}


def _sweep(engine: HFEngine, dev: Sequence[PromptRecord], params: GenerationParams, cfg: SteerConfig,
           make: Callable[[float, Positions], Intervention], base: dict[str, bool],
           steered: Sequence[PromptRecord] | None = None) -> list[SweepRow]:
    """Dev refusal at every setting. `steered`: the only prompts the intervention can change (CAST leaves a
    prompt that fails its condition exactly as noop answers it, per sequence whatever the batch: tested in
    tests/test_steering.py), so only they are generated again; the others keep their base answers."""
    again = dev if steered is None else steered
    rows = []
    for p in cfg.positions:
        for c in cfg.coefficients:
            answers = {**base, **(_refused(engine.with_intervention(make(c, p)), again, params) if again else {})}
            rows.append(SweepRow(p, c, _rates(dev, answers)))
    return rows


def fit_direction_on_suite(model: torch.nn.Module, tokenizer: Any, records: Sequence[PromptRecord],
                           cfg: SteerConfig) -> RefusalDirection:
    rng = random.Random(f"steer/direction/{cfg.seed}")
    harmful = _prompts(records, "train", ALWAYS_REFUSED, cfg.n_train, rng)
    harmless = _prompts(records, "train", ["benign"], cfg.n_train, rng)
    harmless_dev = _prompts(records, "dev", ["benign"], cfg.condition_dev_per_category, rng)
    refusal_ids = opening_ids(tokenizer, [*ORGANISM_REFUSALS, *REFUSAL_DIRECTION_PHRASES])
    return fit_refusal_direction(model, tokenizer, harmful, harmless, harmless_dev, refusal_ids,
                                 cfg.max_layer_fraction, cfg.kl_threshold, cfg.batch_size)


def fit_conditions_on_suite(model: torch.nn.Module, tokenizer: Any, records: Sequence[PromptRecord],
                            cfg: SteerConfig) -> list[ConditionFit]:
    """One condition per read and method, from target and other train prompts, each with its layer, threshold
    and comparator chosen by F1 on dev; in order (reads, then methods: CAST's own first)."""
    rng = random.Random(f"steer/condition/{cfg.seed}")
    layers = list(range(adapter_for(model).n_layers))
    others = [c for c in CATEGORIES if c != cfg.category]
    span = template_span(tokenizer)
    target_prompts = _prompts(records, "train", [cfg.category], cfg.n_train, rng)
    other_prompts = _prompts(records, "train", others, cfg.n_train, rng)
    dev = subsample(records, "dev", cfg.condition_dev_per_category, cfg.seed)
    labels = torch.tensor([r.category == cfg.category for r in dev])
    fits = []
    for read in cfg.condition_reads:
        def states(prompts: Sequence[str]) -> torch.Tensor:
            return read_prompts(model, tokenizer, prompts, layers, read_mean(read, *span), cfg.batch_size)

        target, other, dev_states = states(target_prompts), states(other_prompts), states([r.prompt for r in dev])
        fits += [fit_condition(condition_vectors(target, other, method), dev_states, labels, span, method, read)
                 for method in cfg.condition_methods]
    return fits


def candidate_row(fit: ConditionFit) -> dict[str, Any]:
    """What the artifact keeps of a condition that was tried: enough to see why the kept one won."""
    c, best = fit.condition, fit.by_layer[fit.condition.layer]
    return {"read": c.read, "method": c.method, "layer": c.layer, "f1_dev": fit.f1_dev,
            "precision_dev": best.precision, "recall_dev": best.recall}


def fit_steering(engine: HFEngine, model_name: str, records: Sequence[PromptRecord], cfg: SteerConfig,
                 console: Console | None = None) -> Fitted:
    """Both baselines for one target category, each with its dev sweep recorded in the artifact."""
    model, tokenizer = engine.model, engine.tokenizer
    say = console.print if console is not None else (lambda *a, **k: None)
    say("[bold cyan]▶ refusal direction[/]: difference of means per layer, layer filters on benign dev")
    direction = fit_direction_on_suite(model, tokenizer, records, cfg)
    say(f"[bold cyan]▶ CAST condition[/] for {cfg.category}: grid search for F1 on dev")
    candidates = fit_conditions_on_suite(model, tokenizer, records, cfg)
    condition = max(candidates, key=lambda f: f.f1_dev)  # ties: the earlier
    dev = subsample(records, "dev", cfg.dev_per_category, cfg.seed)
    params = GenerationParams(max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size)
    say(f"[bold cyan]▶ coefficient sweeps[/] on {len(dev)} dev prompts")
    base_answers = _refused(engine, dev, params)
    base = _rates(dev, base_answers)
    layer, r = direction.layer, direction.vector
    actadd_rows = _sweep(engine, dev, params, cfg, lambda c, p: ActAdd({layer: c * r}, p), base_answers)
    met = condition.condition.holds_for_prompts(model, tokenizer, [x.prompt for x in dev]).tolist()
    cast_rows = _sweep(engine, dev, params, cfg, lambda c, p: Cast(condition.condition, {layer: c * r}, p),
                       base_answers, [x for x, m in zip(dev, met) if m])
    ref = ModelRef.of(model, model_name)
    common = {"target_category": cfg.category, "config": asdict(cfg), "refusal_direction": direction.summary(),
              "base_dev_refusal": base}
    pick_a, pick_c = (choose_setting(rows, cfg.category, cfg.target_refusal) for rows in (actadd_rows, cast_rows))
    actadd = SteeringArtifact("actadd", ref, {layer: r}, pick_a.coefficient, positions=pick_a.positions,
                              fit={**common, "sweep_dev": [asdict(x) for x in actadd_rows]})
    cast = SteeringArtifact("cast", ref, {layer: r}, pick_c.coefficient, condition.condition, condition.f1_dev,
                            fit={**common, "condition": condition.summary(),
                                 "condition_candidates": [candidate_row(f) for f in candidates],
                                 "sweep_dev": [asdict(x) for x in cast_rows]},
                            positions=pick_c.positions)
    return Fitted(actadd, cast, base)


def write_artifacts(fitted: Fitted, out: Path, overwrite: bool = False) -> Path:
    """Both artifacts into `out`, which appears whole or not at all."""
    with atomic_dir(out, overwrite=overwrite) as folder:
        save_artifact(fitted.actadd, folder)
        save_artifact(fitted.cast, folder)
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def tables(fitted: Fitted) -> list[Table]:
    """Layer candidates, condition F1 per layer, and dev refusal per coefficient for both methods."""
    fit = fitted.cast.fit
    direction, condition = fit["refusal_direction"], fit["condition"]
    layers = Table(title=f"refusal direction: candidates (base harmless refusal score "
                         f"{direction['base_harmless_refusal_score']:.2f}); chosen layer {direction['layer']}"
                         + ("" if direction["filters_passed"] else " [yellow](no layer passed every filter)[/]"))
    for col in ("layer", "|r|", "steering score", "ablation KL", "kept", "why not"):
        layers.add_column(col)
    for c in direction["candidates"]:
        layers.add_row(str(c["layer"]), f"{c['norm']:.2f}",
                       "" if c["steering_score"] is None else f"{c['steering_score']:.2f}",
                       "" if c["kl"] is None else f"{c['kl']:.3f}", "yes" if c["kept"] else "no", c["reason"])
    f1 = Table(title=f"CAST condition for {fit['target_category']} ({condition['method']} vectors, "
                     f"{condition['read']} read): best threshold per layer on dev; chosen layer "
                     f"{condition['layer']} ({condition['comparator']} {condition['threshold']:.4f}, F1 {condition['f1_dev']:.3f})")
    for col in ("layer", "comparator", "threshold", "F1", "precision", "recall"):
        f1.add_column(col)
    for layer, s in enumerate(condition["by_layer"]):
        f1.add_row(str(layer), s["comparator"], f"{s['threshold']:.4f}", f"{s['f1']:.3f}", f"{s['precision']:.3f}",
                   f"{s['recall']:.3f}")
    tried = Table(title="CAST condition candidates: best layer of each read and method, on dev (kept: highest F1)")
    for col in ("read", "method", "layer", "F1", "precision", "recall"):
        tried.add_column(col)
    for row in fit["condition_candidates"]:
        kept = (row["read"], row["method"]) == (condition["read"], condition["method"])
        tried.add_row(row["read"], row["method"] + (" *" if kept else ""), str(row["layer"]), f"{row['f1_dev']:.3f}",
                      f"{row['precision_dev']:.3f}", f"{row['recall_dev']:.3f}")
    out = [layers, tried, f1]
    categories = list(fitted.base_dev)
    for artifact in (fitted.actadd, fitted.cast):
        sweep = Table(title=f"{artifact.method}: dev refusal % by setting (chosen: {artifact.positions} positions, "
                            f"coefficient {artifact.coefficient:g})")
        for col in ("positions", "coefficient", *categories):
            sweep.add_column(col)
        sweep.add_row("", "base", *(_pct(fitted.base_dev[c]) for c in categories))
        for row in artifact.fit["sweep_dev"]:
            chosen = (row["positions"], row["coefficient"]) == (artifact.positions, artifact.coefficient)
            sweep.add_row(row["positions"], f"{row['coefficient']:g}{' *' if chosen else ''}",
                          *(_pct(row["refusal"].get(c, 0.0)) for c in categories))
        out.append(sweep)
    return out
