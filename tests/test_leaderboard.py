"""`cdelta leaderboard`: ranking by the selectivity score, one section per policy, and the three formats."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from harness.reporting.leaderboard import ranked, sections
from harness.reporting.schema import RateStat
from harness.reporting.score import SCORE_FORMULA, selectivity_score
from harness.reporting.leaderboard_cli import leaderboard_command, outputs
from report_factory import invoke, report, result, serving, write


def test_score_follows_the_stated_formula() -> None:
    noop = result("noop", target=0.1, off=0.0, over=0.1)
    edit = result("cdelta", target=0.9, off=0.05, over=0.25)
    assert selectivity_score(edit, noop) == pytest.approx(0.9 - 0.05 - 0.15)
    assert selectivity_score(edit, None) == pytest.approx(0.9 - 0.05)
    assert selectivity_score(result("cdelta", target=0.9, off=0.05, over=0.05), noop) == pytest.approx(0.85)
    assert selectivity_score(edit, noop, release=True) == pytest.approx(0.1 - 0.05 - 0.15)
    assert "max(0, over_refusal − noop over_refusal)" in SCORE_FORMULA


def test_rows_rank_by_score_with_shared_ranks_for_ties() -> None:
    runs = [
        report("a", [result("noop", target=0.1), result("cdelta", target=0.95, off=0.01)]),
        report("b", [result("noop", target=0.1), result("actadd", target=0.95, off=0.01),
                     result("cast", target=0.6)]),
    ]
    [section] = sections(runs)
    assert [(r.rank, r.run, r.backend) for r in section.rows] == [
        (1, "a", "cdelta"), (1, "b", "actadd"), (3, "b", "cast"), (4, "a", "noop"), (4, "b", "noop")]
    assert ranked(list(reversed(section.rows))) == section.rows


def test_unmeasured_score_ranks_last() -> None:
    nan = float("nan")
    unmeasured = result("cast").model_copy(update={"target_refusal": RateStat(value=nan, k=0, n=0, ci95=(nan, nan))})
    [section] = sections([report("a", [unmeasured, result("noop", target=0.1), result("cdelta")])])
    assert [(r.rank, r.backend) for r in section.rows] == [(1, "cdelta"), (2, "noop"), (3, "cast")]


def test_policies_are_separate_sections() -> None:
    runs = [
        report("health", [result("noop", target=0.1), result("cdelta")]),
        report("legal", [result("noop", target=0.1), result("cdelta", target=0.99)], policy="refuse:legal_opinion",
               targets=("legal_opinion",)),
        report("health2", [result("cdelta", target=0.5)]),
    ]
    board = sections(runs)
    assert [s.policy for s in board] == ["refuse:health_consultation", "refuse:legal_opinion"]
    assert [(r.rank, r.run) for r in board[0].rows] == [(1, "health"), (2, "health2"), (3, "health")]
    assert [r.rank for r in board[1].rows] == [1, 2]
    assert board[0].notes == ["run health2 has no noop backend: its scores have no over-refusal term"]


def test_markdown_html_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit = result("cdelta", parameters_changed=0.048, serving=serving(120.5, 0.25, ratio=0.99),
                  break_even_requests={"actadd": 1234.0, "cast": None})
    paths = [write(tmp_path, report("run<1>", [result("noop", target=0.1), edit])),
             write(tmp_path, report("rel", [result("noop"), result("cdelta", target=0.2)],
                                    policy="release:legal_opinion", targets=("legal_opinion",)))]
    assert invoke(leaderboard_command(), [*map(str, paths), "-o", str(tmp_path / "board")]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "board.csv" in out

    md = (tmp_path / "board.md").read_text()
    assert "## refuse:health_consultation (targets: health_consultation)" in md
    assert "## release:legal_opinion (targets: legal_opinion)" in md
    assert "| 1 | run<1> | cdelta | 0.880 | 90.0% [85.1, 93.4] (n=200) | 2.0 pts | 10.0% | 80.0% | 1.000 | 4.80% " \
           "| 120.5 | 0.99 | 0.250 s | vs actadd: 1,234; vs cast: – |" in md
    release_table = md.split("## release:legal_opinion")[1]
    assert "tokens/s" not in release_table  # no serving data in that section: the column is left out
    assert "| 1 | rel | cdelta | 0.780 |" in release_table

    page = (tmp_path / "board.html").read_text()
    assert page.startswith("<!doctype html>") and "<style>" in page
    assert "<link" not in page and "<script" not in page and "http" not in page  # self-contained
    assert "<td>run&lt;1&gt;</td>" in page

    rows = list(csv.DictReader(io.StringIO((tmp_path / "board.csv").read_text())))
    assert [(r["policy"], r["rank"], r["run"], r["backend"]) for r in rows] == [
        ("refuse:health_consultation", "1", "run<1>", "cdelta"), ("refuse:health_consultation", "2", "run<1>", "noop"),
        ("release:legal_opinion", "1", "rel", "cdelta"), ("release:legal_opinion", "2", "rel", "noop")]
    top = rows[0]
    assert float(top["score"]) == pytest.approx(0.88) and top["target_refusal_n"] == "200"
    assert top["parameters_changed"] == "0.048" and top["tokens_per_s_batch1"] == "120.5"
    assert top["throughput_ratio_vs_noop_batch1"] == "0.99" and rows[1]["throughput_ratio_vs_noop_batch1"] == ""
    assert top["break_even_vs_actadd"] == "1234.0" and top["break_even_vs_cast"] == ""


def test_output_paths_name_a_format_or_a_stem() -> None:
    assert outputs(["lb.csv", "lb.md"]) == [Path("lb.csv"), Path("lb.md")]
    assert outputs(["out/leaderboard"]) == [Path("out/leaderboard.md"), Path("out/leaderboard.html"),
                                            Path("out/leaderboard.csv")]


def test_duplicate_run_names_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one = write(tmp_path / "one", report("same", [result("noop")]))
    two = write(tmp_path / "two", report("same", [result("noop")]))
    assert invoke(leaderboard_command(), [str(one), str(two)]) == 2
    assert "same run ['same']" in capsys.readouterr().out


def test_malformed_report_exits_2_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, report("good", [result("noop")]))
    bad = tmp_path / "bad" / "report.json"
    bad.parent.mkdir()
    bad.write_text('{"schema": 1, "run": "bad"}')
    assert invoke(leaderboard_command(), [str(good), str(bad.parent), "-o", str(tmp_path / "lb.md")]) == 2
    assert "does not match schema ReportFile" in capsys.readouterr().out
    assert not (tmp_path / "lb.md").exists()
