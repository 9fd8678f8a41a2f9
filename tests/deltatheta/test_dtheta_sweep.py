"""Choosing k: most selective under a retention floor and a refusal-drop limit; the sweep is kept and plotted."""
from __future__ import annotations

import json

import pytest

from cdelta.sweep import KSweep, sweep_k

# k: (selectivity, retention, largest fall in always-refused refusal)
SCORES = {0.5: (0.2, 1.0, 0.0), 1.0: (0.6, 0.99, 0.025), 2.0: (0.9, 0.97, 0.10), 3.0: (0.9, 0.96, 0.2),
          4.0: (0.95, 0.80, 0.3)}


def test_best_k_is_most_selective_above_the_floor_and_smallest_on_ties() -> None:
    sweep = sweep_k(lambda k: SCORES[k], SCORES, retention_floor=0.95)
    assert sweep.best_k == 2.0
    assert [p.k for p in sweep.points] == list(SCORES)
    assert sweep_k(lambda k: SCORES[k], SCORES, retention_floor=0.5).best_k == 4.0


def test_refusal_drop_limit_rules_out_the_ks_that_release_always_refused_prompts() -> None:
    sweep = sweep_k(lambda k: SCORES[k], SCORES, retention_floor=0.5, max_refusal_drop=0.05)
    assert sweep.best_k == 1.0  # 2, 3 and 4 are more selective but each lowers the guarded refusals by 10+ points
    assert sweep_k(lambda k: SCORES[k], SCORES, retention_floor=0.5, max_refusal_drop=0.1).best_k == 2.0
    assert sweep_k(lambda k: SCORES[k], [2.0, 3.0], retention_floor=0.5, max_refusal_drop=0.05).best_k is None


def test_a_drop_or_retention_on_its_bound_is_eligible_despite_rounding() -> None:
    on_bounds = {0.5: (0.3, 0.97 - 1e-12, 36 / 40 - 34 / 40)}  # 2 prompts in 40: 0.050000000000000044
    assert sweep_k(lambda k: on_bounds[k], on_bounds, retention_floor=0.97, max_refusal_drop=0.05).best_k == 0.5


def test_no_k_meets_the_floor() -> None:
    assert sweep_k(lambda k: SCORES[k], SCORES, retention_floor=1.5).best_k is None


def test_sweep_is_saved_plotted_and_read_back(tmp_path) -> None:
    sweep = sweep_k(lambda k: SCORES[k], SCORES, retention_floor=0.95, max_refusal_drop=0.05)
    data = json.loads(sweep.save(tmp_path / "sweep.json").read_text())
    assert data["best_k"] == 1.0 and len(data["points"]) == 5 and data["schema_version"] == 3
    assert data["max_refusal_drop"] == 0.05 and data["points"][2]["refusal_drop"] == 0.10
    assert KSweep.from_dict(data) == sweep
    png = sweep.plot(tmp_path / "sweep.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_schema_1_sweep_reads_as_unguarded(tmp_path) -> None:
    old = {"schema_version": 1, "retention_floor": 0.97, "best_k": 1.0,
           "points": [{"k": 1.0, "selectivity": 0.5, "retention": 0.99}]}
    sweep = KSweep.from_dict(old)
    assert sweep.max_refusal_drop is None and sweep.points[0].refusal_drop is None and sweep.best_k == 1.0
    assert sweep.plot(tmp_path / "old.png").is_file()


def test_a_retention_interval_is_kept_read_back_and_plotted_but_does_not_choose(tmp_path) -> None:
    with_interval = {k: (*v, v[1] - 0.05, min(1.0, v[1] + 0.05)) for k, v in SCORES.items()}
    sweep = sweep_k(lambda k: with_interval[k], with_interval, retention_floor=0.95, max_refusal_drop=0.05)
    assert sweep.best_k == sweep_k(lambda k: SCORES[k], SCORES, retention_floor=0.95, max_refusal_drop=0.05).best_k
    data = json.loads(sweep.save(tmp_path / "sweep.json").read_text())
    assert data["schema_version"] == 3 and data["points"][1]["retention_low"] == 0.99 - 0.05
    assert KSweep.from_dict(data) == sweep
    assert sweep.plot(tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_score_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="3 or 5 numbers"):
        sweep_k(lambda k: (0.5, 1.0), [1.0], retention_floor=0.9)
