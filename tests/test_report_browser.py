"""Reports open in a browser as a reader sees them: headless Chromium loads the page from disk, every
plot decodes and takes up space, and the console stays free of errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from browser import render, require_browser
from test_report import report, run_dir  # noqa: F401  (run_dir is a fixture)

EXAMPLE = Path(__file__).resolve().parents[1] / "reports" / "example" / "report"


def assert_every_plot_shows(page: Path, profile: Path, plots: int) -> None:
    seen = render(page, profile)
    assert seen.console_errors == []
    assert len(seen.images) == plots, [i["alt"] for i in seen.images]
    broken = [i["alt"] for i in seen.images if not (i["complete"] and i["naturalWidth"] > 0 and i["visible"])]
    assert broken == [], f"plots that did not load or show: {broken}"
    assert seen.title and seen.tables >= 1


def test_the_committed_example_report_renders_with_every_plot(tmp_path: Path) -> None:
    require_browser()
    assert_every_plot_shows(EXAMPLE / "report.html", tmp_path / "profile", len(list(EXAMPLE.glob("*.png"))))


def test_a_report_written_now_renders_with_every_plot(run_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    require_browser()
    out = tmp_path / "report"
    assert report([str(run_dir / "logs"), "-o", str(out), "--bench", str(run_dir / "bench.json"),
                   "--study", str(run_dir / "study.json"), "--circuit", str(run_dir / "circuit.json")]) == 0
    assert_every_plot_shows(out / "report.html", tmp_path / "profile", len(list(out.glob("*.png"))))


def test_a_plot_that_does_not_decode_is_caught(tmp_path: Path) -> None:
    require_browser()
    page = (EXAMPLE / "report.html").read_text()
    start = page.index("data:image/png;base64,") + len("data:image/png;base64,")
    broken = tmp_path / "report.html"
    broken.write_text(page[:start] + "AAAA" + page[start + 4:])  # the PNG signature no longer decodes
    with pytest.raises(AssertionError, match="did not load or show"):
        assert_every_plot_shows(broken, tmp_path / "profile", len(list(EXAMPLE.glob("*.png"))))
