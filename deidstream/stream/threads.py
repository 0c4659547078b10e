"""Reader → stages → writer, each on its own thread with bounded queues, that cannot hang.

Decoding, each processing stage and encoding run concurrently (PyAV, OpenCV and MediaPipe
release the GIL in their native code). A stop event and queue operations with timeouts mean
an error or Ctrl-C anywhere ends every thread; the first error is re-raised to the caller.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

END = object()  # the sentinel that ends a stream of queue items
_POLL_S = 0.05


class StageClock:
    """Seconds spent per named stage, summed over a run."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


def put_until_stopped(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


def guard(body: Callable[[], None], errors: list[BaseException], stop: threading.Event) -> Callable[[], None]:
    """``body`` for a worker thread: an exception is kept for the caller's thread and stops the rest."""
    def run() -> None:
        try:
            body()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            errors.append(exc)
            stop.set()
    return run


def get_until_stopped(q: queue.Queue, stop: threading.Event) -> Any:
    while not stop.is_set():
        try:
            return q.get(timeout=_POLL_S)
        except queue.Empty:
            continue
    return END


class Stage(Protocol):
    """One processing step: an item in, zero or more items out (a stage may hold items back,
    e.g. to revise a frame once it has seen the next). ``flush()``, if defined, releases what
    is held when the input ends."""

    def __call__(self, item: Any) -> Iterable[Any]: ...


def run_pipeline(
    produce: Iterable[Any],
    stages: Sequence[Stage],
    consume: Callable[[Any], None],
    *,
    queue_size: int = 8,
    clock: StageClock | None = None,
) -> None:
    """Feed ``produce`` through each of ``stages`` in order into ``consume``; blocks until done."""
    clock = clock or StageClock()
    stop = threading.Event()
    queues = [queue.Queue(queue_size) for _ in range(len(stages) + 1)]
    errors: list[BaseException] = []

    def guarded(body: Callable[[], None]) -> Callable[[], None]:
        return guard(body, errors, stop)

    def reader() -> None:
        it = iter(produce)
        while True:
            t0 = time.perf_counter()
            item = next(it, END)
            clock.add("decode", time.perf_counter() - t0)
            if not put_until_stopped(queues[0], item, stop) or item is END:
                return

    def stage(fn: Stage, q_in: queue.Queue, q_out: queue.Queue) -> Callable[[], None]:
        def body() -> None:
            while True:
                item = get_until_stopped(q_in, stop)
                if item is END:
                    flush = getattr(fn, "flush", None)
                    for out in (flush() if flush else []):
                        if not put_until_stopped(q_out, out, stop):
                            return
                    put_until_stopped(q_out, END, stop)
                    return
                for out in fn(item):
                    if not put_until_stopped(q_out, out, stop):
                        return
        return body

    def writer() -> None:
        while True:
            item = get_until_stopped(queues[-1], stop)
            if item is END:
                return
            t0 = time.perf_counter()
            consume(item)
            clock.add("encode", time.perf_counter() - t0)

    bodies = [reader] + [stage(fn, queues[i], queues[i + 1]) for i, fn in enumerate(stages)] + [writer]
    threads = [threading.Thread(target=guarded(b), name=f"deidstream-{i}", daemon=True) for i, b in enumerate(bodies)]
    for t in threads:
        t.start()
    try:
        while threads[-1].is_alive():
            threads[-1].join(_POLL_S)
    except BaseException:
        stop.set()
        raise
    finally:
        stop.set()
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
