"""Dynamic batching: concurrent requests to one model signature become one model call.

``Batcher.submit(inputs)`` queues one request (a dict of arrays with a leading batch dimension, 1
for the text routes); a worker takes up to ``max_batch_size`` queued requests (at once when the
model is idle; while a call runs, waiting at most ``max_wait`` for more), concatenates them (rows of
different widths, e.g. token ids, padded with zeros to the widest: every such input has a length or
zero-means-none input beside it), runs the
model call in a thread (at most ``concurrency`` at once, off the event loop) and hands each request
its own rows of the outputs. More than ``max_queue`` waiting requests raise ``OverloadedError`` at
once instead of queueing without bound; a request whose client went away is dropped before it
reaches the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import numpy as np


def stacked(arrays: list[np.ndarray]) -> np.ndarray:
    """The arrays' rows in one array, each padded with zeros (b"" for strings) past its own width to
    the widest in every dimension after the first. One array is returned as it is, and only arrays
    narrower than the widest are padded (``np.pad`` costs 50-80 us an array, on the event loop)."""
    if len(arrays) == 1:
        return arrays[0]
    widest = tuple(np.max([a.shape for a in arrays], axis=0)[1:])
    padded = [
        a if a.shape[1:] == widest else
        np.pad(a, [(0, 0)] + [(0, w - n) for w, n in zip(widest, a.shape[1:])],
               constant_values=b"" if a.dtype == object else 0)
        for a in arrays
    ]  # fmt: skip
    return np.concatenate(padded)


class OverloadedError(RuntimeError):
    """Too many requests are waiting for this model."""


class Batcher:
    def __init__(
        self,
        call: Callable[[dict], dict],
        max_batch_size: int,
        max_wait: float,
        max_queue: int,
        concurrency: asyncio.Semaphore,
        on_batch: Callable[[int, float], None] | None = None,
    ):
        self.call = call
        self.max_batch_size, self.max_wait, self.max_queue = max_batch_size, max_wait, max_queue
        self.concurrency = concurrency
        self.on_batch = on_batch
        self.queue: asyncio.Queue = asyncio.Queue()
        self.waiting = 0
        self._worker: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    async def submit(self, inputs: dict) -> dict:
        """The model's outputs for one request (rows of the batched call)."""
        if self.waiting >= self.max_queue:
            raise OverloadedError(f"{self.waiting} requests are already waiting for this model")
        self.start()
        future = asyncio.get_running_loop().create_future()
        self.waiting += 1
        await self.queue.put((inputs, future))
        try:
            return await future
        finally:
            self.waiting -= 1

    async def _take_batch(self) -> list:
        """The next batch: what is queued, at once when the model is idle (nothing to wait for: a
        lone request, or a stream's next piece, pays no wait); while a call runs, up to ``max_wait``
        more for requests to merge with."""
        batch = [await self.queue.get()]
        wait = self.max_wait if self.concurrency.locked() else 0.0
        deadline = time.monotonic() + wait
        while len(batch) < self.max_batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if self.queue.empty():
                    break
                batch.append(self.queue.get_nowait())
                continue
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), remaining))
            except TimeoutError:
                break
        return [(inputs, future) for inputs, future in batch if not future.done()]  # done = cancelled

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._take_batch()
            if not batch:
                continue
            await self.concurrency.acquire()
            task = loop.create_task(self._execute(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _execute(self, batch: list) -> None:
        try:
            inputs = {k: stacked([item[k] for item, _ in batch]) for k in batch[0][0]}
            started = time.perf_counter()
            try:
                outputs = await asyncio.to_thread(self.call, inputs)
            except Exception as error:  # the model call failed: every request in it gets the error
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                return
            if self.on_batch:
                self.on_batch(len(batch), time.perf_counter() - started)
            start = 0
            for item, future in batch:
                rows = len(next(iter(item.values())))
                if not future.done():
                    future.set_result({k: v[start : start + rows] for k, v in outputs.items()})
                start += rows
        finally:
            self.concurrency.release()
