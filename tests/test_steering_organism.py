"""`cdelta steer fit` on the --small organism, and CAST's batch correctness on a trained model."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from backends.generation import GenerationParams
from backends.registry import make_backend
from cdelta.steering import load_artifact
from harness.cli import main
from harness.organism.config import SMALL
from tasks.suite.generate import generate_suite

TARGET = "health_consultation"
FAST = ["--max-layer-fraction", "1", "--coefficients", "1,4", "--n-train", "64", "--dev-per-category", "6",
        "--condition-dev-per-category", "20", "--max-new-tokens", "8"]


@pytest.fixture(scope="module")
def fitted(small_organism: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("steer") / "artifacts"
    assert main(["steer", "fit", "--model", str(small_organism), "--category", TARGET, "-o", str(out), *FAST]) == 0
    return out


def test_fit_writes_both_artifacts_with_their_provenance(fitted: Path, small_organism: Path):
    assert {p.name for p in fitted.iterdir()} == {"actadd.json", "actadd.safetensors", "cast.json", "cast.safetensors"}
    cast = json.loads((fitted / "cast.json").read_text())
    assert cast["schema_version"] == 3 and cast["method"] == "cast"
    assert cast["condition"]["method"] in ("pca", "mean", "lda")
    assert cast["condition"]["read"] in ("instruction", "post_instruction")
    tried = cast["fit"]["condition_candidates"]
    assert [(row["read"], row["method"]) for row in tried] == [
        (r, m) for r in ("instruction", "post_instruction") for m in ("pca", "mean", "lda")]
    assert cast["condition"]["f1_dev"] == max(row["f1_dev"] for row in tried)
    assert cast["model"]["fingerprint"] and cast["behaviour"]["layers"] == [1]
    assert cast["behaviour"]["coefficient"] in (1.0, 4.0)
    assert cast["condition"]["comparator"] in ("above", "below") and 0 <= cast["condition"]["f1_dev"] <= 1
    assert cast["behaviour"]["positions"] in ("all", "prompt")
    assert {(row["positions"], row["coefficient"]) for row in cast["fit"]["sweep_dev"]} == {
        ("all", 1.0), ("all", 4.0), ("prompt", 1.0), ("prompt", 4.0)}
    actadd = load_artifact(fitted / "actadd.json")
    assert actadd.condition is None and actadd.fit["refusal_direction"]["layer"] == 1


def test_existing_output_is_refused(fitted: Path, small_organism: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["steer", "fit", "--model", str(small_organism), "-o", str(fitted), *FAST]) == 1
    assert "--overwrite" in capsys.readouterr().err


def test_cast_on_the_organism_is_exact_per_sequence(fitted: Path, small_organism: Path):
    records = [r for r in generate_suite(SMALL.suite_seed, SMALL.suite_counts) if r.split == "test"]
    mixed = [r.prompt for r in records if r.category == TARGET][:6] + \
            [r.prompt for r in records if r.category in ("benign", "legal_opinion", "utility")][::97][:10]
    params = GenerationParams(max_new_tokens=12, batch_size=len(mixed))
    cast = make_backend("cast", small_organism, fitted / "cast.json")
    together = [g.text for g in cast.generate(mixed, params)]
    rows = cast.intervention.last_rows.tolist()  # type: ignore[attr-defined]
    assert 0 < sum(rows) < len(mixed), "the batch must mix prompts that meet the condition and prompts that do not"
    alone = [cast.generate([p], params)[0].text for p in mixed]
    assert together == alone
    noop = [g.text for g in make_backend("noop", small_organism).generate(mixed, params)]
    assert [t for t, met in zip(together, rows) if not met] == [t for t, met in zip(noop, rows) if not met]


def test_an_artifact_of_the_organism_does_not_fit_another_model(fitted: Path, tmp_path: Path):
    import eap_tiny as tiny
    from cdelta.errors import CdeltaError

    tiny.checkpoint(tmp_path)
    with pytest.raises(CdeltaError, match="not on .*its config differs"):
        make_backend("actadd", tmp_path, fitted / "actadd.json")


def test_the_kept_setting_is_the_least_collateral_one_that_reaches_the_goal():
    from harness.steer import SweepRow, choose_setting

    def row(positions, coefficient, target, benign, malware=1.0):
        return SweepRow(positions, coefficient, {TARGET: target, "benign": benign, "legal_opinion": benign,
                                                 "malware": malware})

    rows = [row("all", 1.0, 0.95, 0.6), row("prompt", 1.0, 0.8, 0.0), row("prompt", 2.0, 0.92, 0.1),
            row("prompt", 3.0, 0.99, 0.1)]
    assert choose_setting(rows, TARGET, 0.9) == rows[3]  # malware's refusal is not collateral; at equal collateral,
    # more target refusal wins, and at equal both the smaller coefficient
    assert choose_setting([*rows, row("prompt", 4.0, 0.99, 0.1)], TARGET, 0.9) == rows[3]
    assert choose_setting([*rows, row("all", 0.5, 0.91, 0.05)], TARGET, 0.9).coefficient == 0.5
    short = [row("all", 1.0, 0.5, 0.9), row("prompt", 1.0, 0.7, 0.2), row("prompt", 2.0, 0.7, 0.1)]
    assert choose_setting(short, TARGET, 0.9) == short[2]  # none reaches it: most target refusal, then least collateral


def test_the_cast_sweep_regenerating_only_the_prompts_that_meet_the_condition_is_exact(fitted: Path,
                                                                                        small_organism: Path):
    from backends.hf_engine import HFEngine
    from backends.steering import Cast
    from harness.steer import SteerConfig, _rates, _refused, _sweep

    records = [r for r in generate_suite(SMALL.suite_seed, SMALL.suite_counts) if r.split == "dev"]
    dev = [r for r in records if r.category == TARGET][:12] + [r for r in records if r.category != TARGET][::53][:24]
    artifact = load_artifact(fitted / "cast.json")
    engine = HFEngine.from_path(small_organism)
    params = GenerationParams(max_new_tokens=8, batch_size=16)
    cfg = SteerConfig(coefficients=(artifact.coefficient, 4.0), positions=("all",))
    base = _refused(engine, dev, params)

    def make(c: float, p: str) -> Cast:
        return Cast(artifact.condition, {1: c * artifact.behaviour[1]}, p)  # type: ignore[arg-type]

    met = artifact.condition.holds_for_prompts(engine.model, engine.tokenizer, [r.prompt for r in dev]).tolist()  # type: ignore[union-attr]
    assert 0 < sum(met) < len(dev)
    full = _sweep(engine, dev, params, cfg, make, base)
    assert _sweep(engine, dev, params, cfg, make, base, [r for r, m in zip(dev, met) if m]) == full
    assert any(row.refusal != _rates(dev, base) for row in full), "the steering must change some answer"
