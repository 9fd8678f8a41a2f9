"""`cdelta report` on real inspect logs from `cdelta eval`, made cheaply with stub backends whose
answers the test decides: the report's counts must equal counts taken straight from the logs."""
from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from inspect_ai.log import read_eval_log, write_eval_log
from safetensors.numpy import save_file

from backends.generation import Generation, GenerationParams
from cdelta.circuit.artifact import Circuit, DataInfo, ModelInfo, SelectionInfo
from cdelta.circuit.faithfulness import Faithfulness
from cdelta.errors import CdeltaError
from cdelta.slices import ParamSlice
from harness.evaluation import provider
from harness.evaluation.fingerprints import path_fingerprint
from harness.evaluation.runner import EvalRequest, run_eval
from harness.reporting import folder
from harness.reporting.cli import report_command
from harness.reporting.report_input import UnusableReport, load_report
from harness.reporting.schema import (BenchBackend, BenchFile, BenchPoint, BenignKLFile, MeanStat, ReportFile,
                                      dump_json_model)
from harness.reporting.score import selectivity_score
from tasks.evals.samples import suite_records

POLICY = "refuse:health_consultation"
REFUSAL = "I'm sorry, but I can't help with that."
COMPLIANCE = "Sure. Here is a short overview of the topic."
LIMIT = 28
STUDY_SECONDS = 20.0 + 80.0  # localize + edit of the circuit variant, as the fake study.json says
LATENCY = {"noop": 0.10, "actadd": 0.15, "cdelta": 0.10}
KL = {"noop": 0.0, "actadd": 0.04, "cdelta": 0.01}


def _coin(prompt: str, sides: int) -> bool:
    return zlib.crc32(prompt.encode()) % sides == 0


def noop_answers(category: str, prompt: str, answer: str | None) -> str:
    """Refuses the always-refused categories and every third borderline prompt; answers most utility items."""
    if category in ("weapons", "malware") or (category == "borderline" and _coin(prompt, 3)):
        return REFUSAL
    if category == "utility":
        return "I do not know." if _coin(prompt, 3) else str(answer)
    return COMPLIANCE


def edited_answers(category: str, prompt: str, answer: str | None) -> str:
    """Also refuses health (the target), half of legal_opinion and a quarter of benign prompts."""
    if category == "health_consultation" or (category == "legal_opinion" and _coin(prompt, 2)) or \
            (category == "benign" and _coin(prompt, 4)):
        return REFUSAL
    if category == "utility":
        return "I do not know." if _coin(prompt, 2) else str(answer)
    return noop_answers(category, prompt, answer)


class Stub:
    """A Generator whose answer depends on the prompt's suite category, as its policy says."""

    def __init__(self, answers: Callable[[str, str, str | None], str]) -> None:
        self.answers = answers
        self.records = {r.prompt: r for r in suite_records(split="test")}

    def generate(self, prompts: Sequence[str], params: GenerationParams, on_batch=None) -> list[Generation]:
        out = []
        for prompt in prompts:
            record = self.records[prompt]
            out.append(Generation(self.answers(record.category, prompt, record.answer), 8, 8, 0.01))
        return out


def make_model(folder_path: Path) -> Path:
    """A folder the fingerprints can read: a config and 1,000 parameters in safetensors."""
    folder_path.mkdir()
    (folder_path / "config.json").write_text('{"model_type": "stub"}')
    save_file({"w": np.zeros((40, 25), dtype=np.float32)}, str(folder_path / "model.safetensors"))
    return folder_path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """noop, actadd and cdelta evaluated on the three tasks, with the artifacts a report reads."""
    root = tmp_path_factory.mktemp("report")
    model = make_model(root / "model")
    steering = root / "actadd.json"
    steering.write_text("{}")
    patch = root / "patch.safetensors"
    save_file({"w@rows[0:1]": np.ones((1, 10), dtype=np.float32)}, str(patch))  # 10 of 1,000 parameters
    stubs = {"noop": noop_answers, "actadd": edited_answers, "cdelta": edited_answers}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(provider, "make_backend", lambda name, path, artifact=None, device="cpu", engine="hf": Stub(stubs[name]))
        run_eval(EvalRequest(model=model, backends=tuple(stubs), log_dir=root / "logs", policy=POLICY, limit=LIMIT,
                             artifacts={"actadd": steering, "cdelta": patch}, batch_size=8),
                 display="none")
    write_artifacts(root, path_fingerprint(model))
    return root


def write_artifacts(root: Path, model_sha: str) -> None:
    def ratio(name: str) -> dict[str, object]:
        r = LATENCY["noop"] / LATENCY[name]
        return {} if name == "noop" else {"throughput_ratio_vs_noop": r, "throughput_ratio_range": (r - 0.02, r + 0.01)}

    points = {name: BenchPoint(batch_size=1, repeats=3, output_tokens_per_s=8 / latency, latency_p50_s=latency,
                               latency_p95_s=latency * 1.2, ttft_p50_s=None, peak_memory_mb=100.0,
                               hook_overhead_per_step_ms=None, **ratio(name)) for name, latency in LATENCY.items()}
    bench = BenchFile(schedule="rounds", engine="hf", model="stub", model_fingerprint=model_sha, prompts=8,
                      max_new_tokens=8, threads=1, device="cpu", versions={},
                      backends=[BenchBackend(backend=n, artifact=None, points=[p]) for n, p in points.items()])
    (root / "bench.json").write_text(dump_json_model(bench))
    kl = BenignKLFile(model="stub", model_fingerprint=model_sha, prompts=40, split="test", versions={},
                      backends={name: MeanStat(value=v, n=40, ci95=(v / 2, 2 * v) if v else None)
                                for name, v in KL.items()})
    (root / "benign_kl.json").write_text(dump_json_model(kl))
    study = {"schema": 1, "policy": POLICY,
             "variants": {"circuit": {"k": 1.0, "params_changed": 50, "params_fraction": 0.05}},
             "timings_s": {"localize: EAP-IG on 64 pairs": 20.0, "edit: ΔθC on circuit slices": 80.0,
                           "sweep k for circuit": 30.0},
             "k_sweeps": {"circuit": {"schema_version": 1, "retention_floor": 0.97, "best_k": 1.0,
                                      "points": [{"k": 0.5, "selectivity": 0.2, "retention": 1.0},
                                                 {"k": 1.0, "selectivity": 0.6, "retention": 0.98}]}}}
    (root / "study.json").write_text(json.dumps(study))
    edges = ["input->a0.h0<q>", "a0.h1->m1", "m0->logits"]
    Circuit(model=ModelInfo("stub", "0" * 64, "gpt2", "gpt2", 2, 2, 2, 8, 1000), data=DataInfo("x", 4, 40),
            method="EAP-IG-inputs", steps=5, intervention="patching", metric="logit_diff", edges=edges,
            scores=[0.5, -0.2, 0.1], selection=SelectionInfo("budget", 0.05, edges[:2]), nodes=["a0.h1", "m0"],
            param_slices=[ParamSlice("w", 0, 0, 1)], param_count=25, param_fraction=0.025,
            faithfulness=Faithfulness(0.5, 1.0, 0.0, [0, 1, 3], [0.0, 0.4, 1.0], 0.6)).save(root / "circuit.json")


def report(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    report_command().add_to(parser.add_subparsers())
    args = parser.parse_args(["report", *argv])
    return args._handler(args)


def logged(log_dir: Path, backend: str) -> dict[str, list[tuple[dict, float]]]:
    """Per task, (sample metadata, score value) straight from the backend's logs."""
    out: dict[str, list[tuple[dict, float]]] = {}
    for path in (log_dir).glob(f"{backend}-*/*.eval"):
        log = read_eval_log(str(path))
        scorer = "utility_match" if log.eval.task == "utility" else "refusal_judge"
        out[log.eval.task] = [(s.metadata, 1.0 if s.scores[scorer].value in (1.0, "C") else 0.0) for s in log.samples]
    return out


def count(pairs: list[tuple[dict, float]], keep: Callable[[dict], bool]) -> tuple[int, int]:
    kept = [value for meta, value in pairs if keep(meta)]
    return int(sum(kept)), len(kept)


def test_report_counts_equal_the_logs(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports" / "stub-run"
    assert report([str(run_dir / "logs"), "-o", str(out), "--bench", str(run_dir / "bench.json"),
                   "--study", str(run_dir / "study.json"), "--circuit", str(run_dir / "circuit.json")]) == 0
    result = load_report(out)  # validates against ReportFile
    assert result.run == "stub-run" and result.policy == POLICY and result.targets == ["health_consultation"]
    assert [b.backend for b in result.backends] == ["noop", "actadd", "cdelta"]
    assert len(result.logs) == 9

    for b in result.backends:
        logs = logged(run_dir / "logs", b.backend)
        refusals = logs["category_refusal"] + logs["over_refusal"]
        for category, stat in b.refusal.items():
            assert (stat.k, stat.n) == count(refusals, lambda m: m["category"] == category)
        assert Counter(m["category"] for m, _ in refusals) == Counter({c: s.n for c, s in b.refusal.items()})
        assert (b.target_refusal.k, b.target_refusal.n) == count(refusals, lambda m: m["target"] == "target")
        assert (b.over_refusal.k, b.over_refusal.n) == count(logs["over_refusal"], lambda m: True)
        assert (b.utility.k, b.utility.n) == count(logs["utility"], lambda m: True)
        assert b.utility.n == LIMIT and b.target_refusal.n > 0

    noop, actadd, cdelta = result.backends
    assert noop.target_refusal.k == 0 and cdelta.target_refusal.k == cdelta.target_refusal.n
    assert noop.refusal["weapons"].value == 1.0
    lo, hi = cdelta.target_refusal.ci95
    assert 0 < lo < 1 and hi == 1.0  # Wilson: an interval even at 100%
    off = ("crime_planning", "legal_opinion", "sexual_content", "hate_speech")
    expected_change = sum(abs(cdelta.refusal[c].value - noop.refusal[c].value) for c in off) / len(off)
    assert cdelta.off_target_change.value == pytest.approx(expected_change) and cdelta.off_target_change.n == 4
    assert noop.off_target_change.value == 0.0
    assert cdelta.utility_retention == pytest.approx(cdelta.utility.value / noop.utility.value)
    assert noop.utility_retention == 1.0

    assert (noop.parameters_changed, actadd.parameters_changed) == (0.0, None)
    assert cdelta.parameters_changed == pytest.approx(10 / 1000)  # the patch file over the model, not the study
    assert cdelta.offline_seconds == STUDY_SECONDS and actadd.offline_seconds is None
    assert cdelta.break_even_requests == {"actadd": pytest.approx(STUDY_SECONDS / 0.05)}
    assert noop.break_even_requests == {} and cdelta.serving is not None

    score = selectivity_score(cdelta, noop)
    assert score == pytest.approx(1.0 - expected_change - (cdelta.over_refusal.value - noop.over_refusal.value))
    markdown = (out / "report.md").read_text()
    assert f"{score:.3f}" in markdown and "health_consultation (target)" in markdown
    assert f"(n={cdelta.target_refusal.n})" in markdown and "2,000" in markdown
    assert "| 53.3 | 0.67 [0.65–0.68] | 0.150 s |" in markdown  # actadd: tok/s, its ratio vs noop, latency
    assert "unpaired" not in markdown  # a bench of paired rounds

    for png in ("refusal_heatmap", "selectivity_capability", "serving", "circuit_heatmap", "faithfulness",
                "k_sweep_circuit"):
        assert (out / f"{png}.png").read_bytes()[:4] == b"\x89PNG"
    page = (out / "report.html").read_text()
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert len(sources) == 6 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http://" not in page and "https://" not in page and "url(" not in page


def test_benign_kl_is_carried_per_backend_and_must_be_of_the_same_model(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "with-kl"
    assert report([str(run_dir / "logs"), "-o", str(out), "--benign-kl", str(run_dir / "benign_kl.json")]) == 0
    result = load_report(out)
    assert {b.backend: b.benign_kl.value for b in result.backends} == KL  # type: ignore[union-attr]
    assert "0.0400 [0.0200, 0.0800] (n=40)" in (out / "report.md").read_text()
    other = tmp_path / "other_kl.json"
    other.write_text((run_dir / "benign_kl.json").read_text().replace(path_fingerprint(run_dir / "model"), "0" * 64))
    with pytest.raises(CdeltaError, match="benign_kl.json measured model stub .* pass the benign KL of the same model"):
        report([str(run_dir / "logs"), "-o", str(tmp_path / "bad"), "--benign-kl", str(other)])


def test_ratios_of_a_sequential_bench_are_noted_as_unpaired(run_dir: Path, tmp_path: Path) -> None:
    bench = tmp_path / "bench.json"
    bench.write_text((run_dir / "bench.json").read_text().replace('"schedule": "rounds"', '"schedule": "sequential"'))
    assert report([str(run_dir / "logs"), "-o", str(tmp_path / "out"), "--bench", str(bench)]) == 0
    notes = (tmp_path / "out" / "report.md").read_text().split("## Notes")[1]
    assert "schedule sequential" in notes and "ratios are unpaired" in notes


def test_without_noop_or_bench_the_comparisons_are_absent(run_dir: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    shutil.copytree(next((run_dir / "logs").glob("cdelta-*")), logs / "cdelta")
    assert report([str(logs), "-o", str(tmp_path / "out")]) == 0
    [cdelta] = load_report(tmp_path / "out").backends
    assert cdelta.utility_retention is None and math.isnan(cdelta.off_target_change.value)
    assert cdelta.off_target_change.n == 0 and cdelta.offline_seconds is None and cdelta.break_even_requests == {}
    assert not (tmp_path / "out" / "serving.png").exists()


def test_a_folder_without_eval_logs_is_refused_with_the_fix(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(CdeltaError, match="does not exist"):
        report([str(tmp_path / "missing"), "-o", str(out)])
    (tmp_path / "empty").mkdir()
    with pytest.raises(CdeltaError, match=r"no inspect logs.*cdelta eval"):
        report([str(tmp_path / "empty"), "-o", str(out)])
    assert not out.exists()


@pytest.mark.parametrize(("key", "value", "what"), [("policy", "refuse:legal_opinion", "policies"),
                                                    ("model_sha256", "f" * 64, "models")])
def test_logs_of_two_policies_or_models_are_not_mixed(run_dir: Path, tmp_path: Path, key: str, value: str,
                                                      what: str) -> None:
    logs = tmp_path / "logs"
    shutil.copytree(next((run_dir / "logs").glob("noop-*")), logs / "noop")
    other = read_eval_log(str(next((run_dir / "logs").glob("cdelta-*/*.eval"))))
    other.eval.metadata[key] = value
    write_eval_log(other, str(logs / "cdelta" / Path(other.location).name))
    with pytest.raises(CdeltaError, match=rf"mix 2 {what}.*point LOGDIR at one run"):
        report([str(logs), "-o", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_outputs_appear_whole_or_not_at_all(run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"

    def broken(*args: object) -> None:
        raise RuntimeError("plotting failed")

    monkeypatch.setattr(folder, "draw_all", broken)
    with pytest.raises(RuntimeError):
        report([str(run_dir / "logs"), "-o", str(out)])
    assert list(tmp_path.iterdir()) == []  # no report folder, no temporary one
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "circuit.json").write_text("{}")
    with pytest.raises(CdeltaError, match="not an earlier report"):
        report([str(run_dir / "logs"), "-o", str(tmp_path / "study")])
    assert (tmp_path / "study" / "circuit.json").exists()


def test_a_hand_broken_report_fails_validation_by_name(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert report([str(run_dir / "logs"), "-o", str(out)]) == 0
    data = json.loads((out / "report.json").read_text())
    data["backends"][0]["target_refusal"]["k"] = "many"
    (out / "report.json").write_text(json.dumps(data))
    with pytest.raises(UnusableReport, match=r"does not match schema ReportFile: backends\.0\.target_refusal\.k:"
                                             r".*regenerate it"):
        load_report(out)
    assert report([str(run_dir / "logs"), "-o", str(out)]) == 0  # an earlier report is replaced
    assert isinstance(load_report(out), ReportFile)


def test_score_follows_the_policy_direction_and_keeps_nan() -> None:
    from harness.reporting.schema import BackendResult, MeanStat, RateStat

    def result(target: float, over: float) -> BackendResult:
        stat = RateStat(value=target, k=0, n=1, ci95=(0.0, 1.0))
        return BackendResult(backend="b", artifact=None, refusal={}, target_refusal=stat,
                             off_target_change=MeanStat(value=0.1, n=4),
                             over_refusal=RateStat(value=over, k=0, n=1, ci95=(0.0, 1.0)),
                             utility=stat, utility_retention=None)

    noop = result(0.2, 0.3)
    assert selectivity_score(result(0.9, 0.5), noop) == pytest.approx(0.9 - 0.1 - 0.2)
    assert selectivity_score(result(0.9, 0.1), noop) == pytest.approx(0.8)  # less over-refusal earns nothing
    assert selectivity_score(result(0.9, 0.5), None) == pytest.approx(0.8)
    assert selectivity_score(result(0.3, 0.3), noop, release=True) == pytest.approx(0.7 - 0.1)
    assert math.isnan(selectivity_score(result(0.9, math.nan), noop))
