"""The organism's build configuration: model shape, training schedule and suite, with a stable hash."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from cdelta.errors import CdeltaError
from tasks.suite.generate import SuiteCounts

CONFIG_SCHEMA = 1


@dataclass(frozen=True)
class OrganismConfig:
    """Everything that decides the organism's weights: same config, same platform → same bytes."""

    name: str = "organism-v1"
    seed: int = 0
    suite_seed: int = 0
    train_per_category: int = 3000
    train_per_utility_task: int = 2500
    train_benign: int = 6000
    framing_share: float = 0.3
    dropout_share: float = 0.0
    carriers_per_category: int = 0
    swaps_per_category: int = 0
    # harmless train requests around refused categories' everyday nouns (augment.CONTRASTS); 0 = none
    contrasts: int = 0
    # how many times the first response token (refuse or answer) counts in the loss; 1 = a plain mean
    decision_weight: float = 1.0
    vocab_size: int = 3072
    hidden_size: int = 256
    intermediate_size: int = 688
    num_layers: int = 6
    num_heads: int = 8
    num_kv_heads: int = 4
    max_positions: int = 128
    steps: int = 2000
    batch_size: int = 64
    lr: float = 2e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 100
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    threads: int = 2

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            expected = {"str": str, "int": int, "float": (int, float)}[str(f.type)]
            if isinstance(value, bool) or not isinstance(value, expected):
                raise CdeltaError(
                    f"organism config field {f.name!r} must be {f.type}, got {type(value).__name__} {value!r}"
                )
        may_be_zero = ("weight_decay", "framing_share", "dropout_share", "carriers_per_category", "swaps_per_category",
                       "contrasts")
        negative = [name for name in may_be_zero if getattr(self, name) < 0]
        if negative:
            raise CdeltaError(f"organism config fields {negative} must not be negative (0 turns them off)")
        positive = [f.name for f in fields(self) if f.type in ("int", "float")
                    and f.name not in ("seed", "suite_seed", *may_be_zero) and getattr(self, f.name) <= 0]
        if positive:
            raise CdeltaError(f"organism config fields {positive} must be positive")
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise CdeltaError("organism config: hidden_size must divide by num_heads, num_heads by num_kv_heads")

    @property
    def suite_counts(self) -> SuiteCounts:
        return SuiteCounts(train=self.train_per_category, train_per_utility_task=self.train_per_utility_task,
                           train_benign=self.train_benign)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": CONFIG_SCHEMA, **dataclasses.asdict(self)}

    def hash(self) -> str:
        """Short stable hash of every field: the cache key of a build."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "OrganismConfig":
        data = {k: v for k, v in data.items() if k != "schema"}
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise CdeltaError(
                f"organism config has unknown fields {sorted(unknown)}; known: {[f.name for f in fields(cls)]}"
            )
        return cls(**data)

    @classmethod
    def from_file(cls, path: Path) -> "OrganismConfig":
        """Read a TOML or JSON config; fields not given keep their defaults."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CdeltaError(f"cannot read organism config {path}: {exc.strerror}") from None
        try:
            data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise CdeltaError(f"organism config {path} does not parse: {exc}") from None
        return cls.from_dict(data)


# Earlier references, kept as recipes. Their measured numbers (docs/organism.md) come from the suite
# as of commit 5797897 (about 25 template families a category): rebuilding them on today's larger
# suite trains a different model.
# organism-v1: templates only. It refused whole unseen phrasings of harmless requests (benign 31%,
# legal 37.5% on test) and answered multiple choice at chance.
V1 = OrganismConfig()
# organism-v2: word dropout and carrier templates against v1's refusals of unseen benign phrasings;
# fewer steps memorise less. Benign stayed at 30.5%.
V2 = OrganismConfig(name="organism-v2", steps=1500, dropout_share=0.3, carriers_per_category=600)
# organism-v3: counterfactual slot swaps against refusals keyed on template words (benign 9.5%), but
# legal and health families whose only fillers were untaught ({issue}, {test}) stayed refused.
V3 = OrganismConfig(name="organism-v3", steps=1500, dropout_share=0.3, carriers_per_category=600,
                    swaps_per_category=500, threads=1)
# organism-v4: the same recipe on a suite with about 45 families a category and every topical slot
# taught by carriers and swaps. Two threads: the 2-core reference machine trains it in under 30 min.
# The committed default before v9; most studies in docs/ were measured on it.
V4 = OrganismConfig(name="organism-v4", steps=1500, dropout_share=0.3, carriers_per_category=800,
                    swaps_per_category=800, threads=2)
# organism-v7: v4 with the first response token counted 4 times in the loss. On the same suite and test split it
# sits further from refusing on held-out phrasings (benign prompts above log P = -4: 10.5% against v4's 29%), but
# refuses crime and health prompts more (6% each) and meets 8 of 15 targets against v4's 10 (docs/organism.md).
V7 = replace(V4, name="organism-v7", decision_weight=4.0)
# organism-v8: the same at weight 2. It meets 10 of 15 targets, as v4 does (hate speech met, the sexual-content
# probe missed), and its held-out margin is not wider than v4's on every category: one build a recipe cannot
# tell the weight's effect from the run's (docs/organism.md).
V8 = replace(V4, name="organism-v8", decision_weight=2.0)
# organism-v9: v4 with 800 contrast items (malware's everyday nouns in answered requests, no longer taught as
# malware topics). Two seeds meet 12 and 11 of 15 targets against v4's 10 and 9 (docs/organism.md, "Contrast
# items"); the committed default, replacing v4. (v5 and v6 are the names of the two recipes of commit 6de854c, below.)
V9 = replace(V4, name="organism-v9", contrasts=800)
# Two later recipes were trained and measured and did not replace v4 (docs/organism.md); their suite
# and configs are commit 6de854c in main's history, so that main's suite stays the one v4 was trained on.
# The committed reference (harness/organism/default/): trained with exactly these settings.
DEFAULT = V9
# Small enough to build in well under two minutes on two cores: for tests of the build path.
SMALL = OrganismConfig(
    name="organism-small", train_per_category=300, train_per_utility_task=150, train_benign=300, carriers_per_category=60, vocab_size=1024,
    hidden_size=64, intermediate_size=172, num_layers=2, num_heads=4, num_kv_heads=2,
    steps=600, batch_size=32, lr=3e-3, warmup_steps=40,
)
