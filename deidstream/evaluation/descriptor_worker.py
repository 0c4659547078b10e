"""dlib's ResNet descriptor in a child process.

dlib's Python binding holds the GIL for the whole network pass, so run on a thread it stops
every other thread of the process: a busy thread beside it ran 5.8x slower, and 1.54x beside
this worker with the caller sending chips back to back (benchmarks/bench_lock.py; 21.8x and
unslowed when dlib had no BLAS and a pass took 110-360 ms). A child process
leaves the detector, the landmarks, the renderer and the encoder running on the other core.
Only aligned 150x150 chips cross the pipe (67 kB each); descriptors come back. The child runs
this file with this interpreter, not multiprocessing, so a user's script is never re-imported;
this module therefore imports nothing from the package. Each child keeps its BLAS to one
thread: parallelism is the number of children, and a second BLAS thread would take the core
the parent's detection runs on.
"""

from __future__ import annotations

import logging
import os
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
CHIP = 150
CHIP_BYTES = CHIP * CHIP * 3
READY = b"R"


def _read_exact(stream: object, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        part = stream.read(n - len(data))  # type: ignore[attr-defined]
        if not part:
            raise EOFError(f"descriptor worker pipe closed after {len(data)} of {n} bytes")
        data.extend(part)
    return bytes(data)


def _single_threaded_env() -> dict[str, str]:
    """This process's environment with BLAS and OpenMP held to one thread (read when the child loads them)."""
    return {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class DescriptorWorker:
    """One child process running dlib's network: ``send`` a batch of chips, then ``receive`` it."""

    def __init__(self, model_file: Path) -> None:
        # this file as a script (-P: its folder stays off sys.path): the child imports numpy and
        # dlib only, not the package (MediaPipe, filterpy: 1.5 s of start-up, beside the analysis)
        self._proc = subprocess.Popen(
            [sys.executable, "-P", str(Path(__file__).resolve()), str(model_file)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, env=_single_threaded_env())
        self._ready = False

    @property
    def pid(self) -> int:
        return self._proc.pid

    def send(self, chips: list[np.ndarray]) -> None:
        payload = struct.pack("<I", len(chips)) + b"".join(np.ascontiguousarray(c).tobytes() for c in chips)
        try:
            if not self._ready:
                if _read_exact(self._proc.stdout, 1) != READY:
                    raise EOFError("no ready byte")
                self._ready = True
            self._proc.stdin.write(payload)  # type: ignore[union-attr]
        except (BrokenPipeError, EOFError) as exc:
            raise RuntimeError(f"the descriptor worker stopped (exit code {self._proc.poll()})") from exc

    def receive(self, n: int) -> np.ndarray:
        try:
            reply = _read_exact(self._proc.stdout, n * 128 * 4)
        except EOFError as exc:
            raise RuntimeError(f"the descriptor worker stopped (exit code {self._proc.poll()})") from exc
        return np.frombuffer(reply, np.float32).reshape(n, 128).copy()

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._proc.stdin.write(struct.pack("<I", 0))  # type: ignore[union-attr]
                self._proc.stdin.close()  # type: ignore[union-attr]
                self._proc.wait(timeout=5)
            except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __del__(self) -> None:  # a forgotten worker must not outlive its parent
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()


class DescriptorPool:
    """``describe(chips)`` split across ``workers`` child processes; thread-safe (one batch at a time)."""

    def __init__(self, model_file: Path, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"expected at least one worker, got {workers}")
        self._workers = [DescriptorWorker(model_file) for _ in range(workers)]
        self._lock = threading.Lock()

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self._workers]

    def describe(self, chips: list[np.ndarray]) -> np.ndarray:
        if not chips:
            return np.zeros((0, 128), np.float32)
        for c in chips:
            if c.shape != (CHIP, CHIP, 3) or c.dtype != np.uint8:
                raise ValueError(f"expected ({CHIP}, {CHIP}, 3) uint8 chips, got {c.shape} {c.dtype}")
        parts = [part for part in np.array_split(np.arange(len(chips)), len(self._workers)) if len(part)]
        with self._lock:
            for worker, part in zip(self._workers, parts):
                worker.send([chips[i] for i in part])
            return np.concatenate([worker.receive(len(part)) for worker, part in zip(self._workers, parts)])

    def close(self) -> None:
        for worker in self._workers:
            worker.close()


def _serve(model_file: str) -> None:
    import signal

    import dlib

    # Ctrl-C in a terminal reaches the whole process group: the parent decides (it finalises its
    # outputs and closes this pipe, which ends the loop below), the worker must not die first
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    encoder = dlib.face_recognition_model_v1(model_file)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    stdout.write(READY)
    stdout.flush()
    while True:
        try:
            (n,) = struct.unpack("<I", _read_exact(stdin, 4))
        except EOFError:
            return
        if n == 0:
            return
        raw = np.frombuffer(_read_exact(stdin, n * CHIP_BYTES), np.uint8).reshape(n, CHIP, CHIP, 3)
        out = np.array(encoder.compute_face_descriptor([np.ascontiguousarray(c) for c in raw]), np.float32)
        stdout.write(out.reshape(n, 128).tobytes())
        stdout.flush()


if __name__ == "__main__":
    _serve(sys.argv[1])
