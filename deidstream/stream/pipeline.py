"""Reader → process → writer on three threads with bounded queues, that cannot hang.

Decoding and encoding run on their own threads (PyAV releases the GIL in the codecs), the
per-frame work on the caller's thread. A stop event and queue operations with timeouts mean
an error or Ctrl-C anywhere ends all three threads; the first error is re-raised.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")
U = TypeVar("U")

_END = object()
_POLL_S = 0.1


class StageClock:
    """Seconds spent per named stage, summed over a run (thread-safe for distinct stages)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event) -> Any:
    while not stop.is_set():
        try:
            return q.get(timeout=_POLL_S)
        except queue.Empty:
            continue
    return _END


def run_pipeline(
    produce: Iterable[T],
    process: Callable[[T], U],
    consume: Callable[[U], None],
    *,
    queue_size: int = 8,
    clock: StageClock | None = None,
) -> None:
    """Feed ``produce`` through ``process`` (this thread) into ``consume`` (writer thread)."""
    clock = clock or StageClock()
    stop = threading.Event()
    q_in: queue.Queue = queue.Queue(queue_size)
    q_out: queue.Queue = queue.Queue(queue_size)
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            it = iter(produce)
            while True:
                t0 = time.perf_counter()
                item = next(it, _END)
                clock.add("decode", time.perf_counter() - t0)
                if not _put(q_in, item, stop) or item is _END:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            errors.append(exc)
            stop.set()

    def writer() -> None:
        try:
            while True:
                item = _get(q_out, stop)
                if item is _END:
                    return
                t0 = time.perf_counter()
                consume(item)
                clock.add("encode", time.perf_counter() - t0)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=reader, name="deidstream-reader", daemon=True),
               threading.Thread(target=writer, name="deidstream-writer", daemon=True)]
    for t in threads:
        t.start()
    try:
        while True:
            item = _get(q_in, stop)
            if item is _END:
                break
            if not _put(q_out, process(item), stop):
                break
        _put(q_out, _END, stop)
        threads[1].join()
    except BaseException:
        stop.set()
        raise
    finally:
        stop.set()
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
