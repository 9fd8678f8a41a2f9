"""Choosing k: most selective under a retention floor; the sweep is kept and plotted."""
from __future__ import annotations

import json

from cdelta.sweep import sweep_k

SCORES = {0.5: (0.2, 1.0), 1.0: (0.6, 0.99), 2.0: (0.9, 0.97), 3.0: (0.9, 0.96), 4.0: (0.95, 0.80)}


def test_best_k_is_most_selective_above_the_floor_and_smallest_on_ties() -> None:
    sweep = sweep_k(lambda k: SCORES[k], SCORES, retention_floor=0.95)
    assert sweep.best_k == 2.0
    assert [p.k for p in sweep.points] == list(SCORES)
    assert sweep_k(lambda k: SCORES[k], SCORES, retention_floor=0.5).best_k == 4.0


def test_no_k_meets_the_floor() -> None:
    assert sweep_k(lambda k: SCORES[k], SCORES, retention_floor=1.5).best_k is None


def test_sweep_is_saved_and_plotted(tmp_path) -> None:
    sweep = sweep_k(lambda k: SCORES[k], SCORES, retention_floor=0.95)
    data = json.loads(sweep.save(tmp_path / "sweep.json").read_text())
    assert data["best_k"] == 2.0 and len(data["points"]) == 5 and data["schema_version"] == 1
    png = sweep.plot(tmp_path / "sweep.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
