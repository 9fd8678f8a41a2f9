"""Gathers inspect's one-prompt-per-sample requests into engine batches.

inspect calls a provider once per sample, concurrently; an engine is fast only on batches. One
worker thread owns the engine: it takes the queued requests that share generation settings (up
to a batch), lingers briefly for more, generates, and hands each result back to the event loop
that asked. The engine thus runs off the event loop, which keeps scoring and logging meanwhile.
"""
from __future__ import annotations

import asyncio
import queue
import threading
from dataclasses import dataclass

from backends.generation import Generation, GenerationParams, Generator


@dataclass(eq=False)
class _Request:
    prompt: str
    params: GenerationParams
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Generation]


def _settle(future: asyncio.Future[Generation], result: Generation | BaseException) -> None:
    if future.done():  # the sample was cancelled meanwhile
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


class BatchQueue:
    """Serves `generate(prompt, params)` from concurrent coroutines in batches of `params.batch_size`."""

    def __init__(self, generator: Generator, linger_s: float = 0.01) -> None:
        self.generator, self.linger_s = generator, linger_s
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0

    async def generate(self, prompt: str, params: GenerationParams) -> Generation:
        loop = asyncio.get_running_loop()
        request = _Request(prompt, params, loop, loop.create_future())
        self._start()
        self._queue.put(request)
        return await request.future

    def close(self) -> None:
        """Stop the worker once the requests already queued are served."""
        with self._lock:
            if self._worker is not None:
                self._queue.put(None)
                self._worker.join()
                self._worker = None

    def _start(self) -> None:
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._serve, name="cdelta-batches", daemon=True)
                self._worker.start()

    def _serve(self) -> None:
        held: list[_Request] = []  # requests taken while gathering a batch of other settings
        stopping = False
        while True:
            if held:
                first = held.pop(0)
            elif stopping:
                return
            else:
                queued = self._queue.get()
                if queued is None:
                    return
                first = queued
            batch, stopped = self._gather(first, held, read_queue=not stopping)
            stopping = stopping or stopped
            self._run(batch)

    def _gather(self, first: _Request, held: list[_Request], read_queue: bool) -> tuple[list[_Request], bool]:
        """`first` and the requests with its settings, from `held` then the queue, until the batch
        is full or no request arrived for `linger_s`. True when the stop sentinel was read."""
        size = first.params.batch_size
        batch, rest = [first], []
        for request in held:
            (batch if request.params == first.params and len(batch) < size else rest).append(request)
        held[:] = rest
        while read_queue and len(batch) < size:
            try:
                queued = self._queue.get(timeout=self.linger_s)
            except queue.Empty:
                break
            if queued is None:
                return batch, True
            (batch if queued.params == first.params else held).append(queued)
        return batch, False

    def _run(self, batch: list[_Request]) -> None:
        try:
            results: list[Generation] | BaseException = self.generator.generate(
                [r.prompt for r in batch], batch[0].params)
        except Exception as error:  # every sample of the batch fails alike, and the worker lives on
            results = error
        self.batches += 1
        for index, request in enumerate(batch):
            outcome = results if isinstance(results, BaseException) else results[index]
            try:
                request.loop.call_soon_threadsafe(_settle, request.future, outcome)
            except RuntimeError:  # that event loop has closed: nobody waits for this result
                pass
