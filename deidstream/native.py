"""Helpers for native libraries that write to the process's stderr behind Python's back."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for a moment: MediaPipe's C++ start-up messages
    (TFLite delegate, absl warnings) cannot be turned off otherwise and mean nothing to users."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def blas_single_threaded() -> Iterator[None]:
    """One BLAS thread while a pipeline runs. Our linear algebra is many tiny products (Kalman
    updates, pose fits, colour statistics) called from several pipeline threads at once;
    OpenBLAS's own threads spin after each call: the tracker's updates on 3 faces cost 1.61 ms
    of CPU per frame with its 2 threads and 0.76 ms with one (benchmarks/bench_blas.py), CPU the
    detector and the encoder need."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


@contextlib.contextmanager
def opencv_single_threaded() -> Iterator[None]:
    """OpenCV's own thread pool off while a live relay runs. Its workers spin after each parallel
    call (resize, warp, blur, colour conversion), CPU a 2-core relay needs for its frames (in
    interleaved two-face relays with one key, one thread rendered more of the locked faces on
    fewer cores). File runs keep the pool."""
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


@contextlib.contextmanager
def heap_frozen() -> Iterator[None]:
    """Python's full garbage collections skip the objects alive on entry (modules, models) while a
    run goes on. Each full collection walks all of them, holding the GIL: with MediaPipe, SciPy and
    matplotlib imported, about 0.1 s during which no frame moves (benchmarks/bench_startup.py):
    as long as a live frame's whole budget (LiveConfig.budget_ms). They become collectable again
    on exit, so a process that calls deidstream keeps its own GC. No collection comes first: it
    would cost the same 0.1 s when a camera is already streaming (garbage frozen with the rest is
    freed after the run)."""
    import gc

    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def lower_priority(task_id: int, niceness: int = 10) -> bool:
    """Make a process or thread (Linux: a thread's native id is a task of its own) yield the CPU to
    the rest: background work (live E_id and locks) must not delay frames. False where the OS does
    not allow it (no PRIO_PROCESS, or not permitted); the work then runs at normal priority."""
    try:
        os.setpriority(os.PRIO_PROCESS, task_id, niceness)
    except (AttributeError, OSError):
        return False
    return True
