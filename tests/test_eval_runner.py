"""`cdelta eval` on the small organism: tasks × backends into tagged inspect logs, a summary read
back from them, resuming a run killed half-way, and inspect's own CLI through the entry point."""
from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
from inspect_ai.log import read_eval_log

from backends.generation import Generation, GenerationParams, Generator
from harness.cli import main
from harness.evaluation import provider
from harness.evaluation.runner import EvalRequest, run_eval
from harness.evaluation.summary import summary_rows


class Counting:
    """Wraps a backend and counts the prompts it generates."""

    def __init__(self, name: str, inner: Generator) -> None:
        self.name, self.inner, self.prompts = name, inner, 0

    def generate(self, prompts: Sequence[str], params: GenerationParams, on_batch=None) -> list[Generation]:
        self.prompts += len(prompts)
        return self.inner.generate(prompts, params, on_batch)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[Counting]:
    """Every backend the provider opens during the test, counting its generations."""
    opened: list[Counting] = []
    real = provider.make_backend

    def make_backend(name: str, model_path: Path, artifact: Path | None = None, device: str = "cpu",
                     engine: str = "hf") -> Generator:
        opened.append(Counting(name, real(name, model_path, artifact, device=device, engine=engine)))
        return opened[-1]

    monkeypatch.setattr(provider, "make_backend", make_backend)
    return opened


def test_tasks_by_backends_tagged_and_summarised(small_organism: Path, tmp_path: Path,
                                                 counted: list[Counting]) -> None:
    request = EvalRequest(model=small_organism, backends=("noop", "cdelta"), log_dir=tmp_path,
                          policy="refuse:health_consultation", limit=7)
    logs = run_eval(request, display="none")
    assert len(logs) == 6 and {log.status for log in logs} == {"success"}
    assert [(c.name, c.prompts) for c in counted] == [("noop", 21), ("cdelta", 21)]  # one engine, three tasks
    for log in logs:
        backend = log.eval.metadata["backend"]
        assert f"backend:{backend}" in log.tags and "policy:refuse:health_consultation" in log.tags
        assert any(t.startswith("model:") for t in log.tags) and any(t.startswith("artifact:") for t in log.tags)
        assert log.eval.metadata["model_sha256"] and log.eval.metadata["generation"]["max_new_tokens"] == 48
        assert log.eval.metadata["artifact_sha256"] is None and "artifact:none" in log.tags
        assert log.eval.model == f"cdelta/{backend}" and log.eval.model_args["engine"] == "hf"
        usage = log.stats.model_usage[f"cdelta/{backend}"]
        assert usage.input_tokens > 0 and usage.output_tokens > 0
        full = read_eval_log(log.location)
        assert full.samples is not None and len(full.samples) == 7
        assert all(s.output.usage is not None for s in full.samples)

    backends, rows = summary_rows(logs)
    assert backends == ["noop", "cdelta"]
    assert rows[("category_refusal", "samples", "completed")] == {"noop": 7, "cdelta": 7}
    # no patch given: the same weights behind both backends, the same behaviour metric for metric
    for metric in ("mean", "target", "non_target"):
        values = rows[("category_refusal", "refusal_judge", metric)]
        assert values["noop"] == values["cdelta"]
    assert 0.0 <= rows[("utility", "utility_match", "accuracy")]["noop"] <= 1.0

    again = run_eval(request, display="none")  # everything is done: nothing is generated again
    assert [c.prompts for c in counted[2:]] == [0, 0]
    names = sorted(Path(log.location).name for log in logs)
    assert sorted(Path(log.location).name for log in again) == names
    in_processes = run_eval(request, display="none", parallel=2)  # one process per backend
    assert sorted(Path(log.location).name for log in in_processes) == names
    assert sorted(p.name for p in tmp_path.rglob("*.eval")) == names  # and no task was run again


KILLER = """
import os, signal, sys
from inspect_ai.hooks import Hooks, SampleEnd, hooks

@hooks(name="kill_half_way", description="test only: SIGKILL the run after {n} samples")
class KillHalfWay(Hooks):
    ended = 0

    async def on_sample_end(self, data: SampleEnd) -> None:
        KillHalfWay.ended += 1
        if KillHalfWay.ended == {n}:
            os.kill(os.getpid(), signal.SIGKILL)

from harness.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_killed_run_resumes_without_redoing_samples(small_organism: Path, tmp_path: Path,
                                                        counted: list[Counting],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "killed_eval.py"
    script.write_text(KILLER.replace("{n}", "12"), encoding="utf-8")
    log_dir = tmp_path / "logs"
    argv = ["eval", "--model", str(small_organism), "--backends", "noop", "--tasks", "utility", "--limit", "24",
            "--batch-size", "4", "--log-dir", str(log_dir), "--display", "none"]
    killed = subprocess.run([sys.executable, str(script), *argv], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]

    assert main(argv) == 0
    [engine] = counted
    assert 0 < engine.prompts < 24  # the samples finished before the kill were not generated again
    logs = [read_eval_log(p) for p in log_dir.rglob("*.eval")]
    finished = [log for log in logs if log.status == "success"]
    assert len(finished) == 1
    samples = finished[0].samples or []
    assert sorted(Counter(s.id for s in samples).values()) == [1] * 24
    assert all(s.scores is not None and list(s.scores) == ["utility_match"] for s in samples)
    assert "cdelta eval summary" in capsys.readouterr().out


def test_inspect_cli_finds_the_provider_through_the_entry_point(small_organism: Path, tmp_path: Path) -> None:
    inspect = Path(sys.executable).with_name("inspect")
    result = subprocess.run(
        [str(inspect), "eval", "over_refusal", "--model", "cdelta/noop",
         "-M", f"model_path={small_organism}", "-M", "batch_size=8", "--limit", "4",
         "-T", "policy=release:borderline", "--log-dir", str(tmp_path), "--display", "none"],
        cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    [path] = tmp_path.glob("*.eval")
    log = read_eval_log(path)
    assert log.status == "success" and log.results is not None and log.results.completed_samples == 4
    assert log.eval.model_args["model_path"] == str(small_organism)
    assert log.stats.model_usage["cdelta/noop"].output_tokens > 0
