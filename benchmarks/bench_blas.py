"""Why a run limits BLAS to one thread: the tracker's Kalman updates, with and without the limit.

    python benchmarks/bench_blas.py [--frames 3000] [--faces 3]

The pipeline's linear algebra is many tiny products (here: the real FaceTracker, filterpy Kalman
predict/update with Hungarian assignment, on ``--faces`` moving boxes) called while other threads
work (here: one thread doing numpy work beside it, as detection and encoding do in a run).
OpenBLAS's own threads spin after each call. Prints, per setting, the tracker's wall time, the CPU
of the tracker and BLAS's threads (the process's less the thread beside it) and the process's system
time per frame, and writes benchmarks/out/blas.json.
"""

from __future__ import annotations

import argparse
import resource
import threading
import time
from pathlib import Path

import numpy as np
from benchlib import ROOT, machine, public_argv, write_json
from threadpoolctl import threadpool_info, threadpool_limits

from deidstream.tracking.tracker import FaceTracker
from deidstream.types import FaceDetections


def detections(frame: int, faces: int) -> FaceDetections:
    x = 100 + 200 * np.arange(faces) + 2.0 * frame % 50
    boxes = np.stack([x, np.full(faces, 100.0), x + 80, np.full(faces, 180.0)], axis=1).astype(np.float32)
    return FaceDetections(boxes, np.full(faces, 0.9, np.float32))


def busy(stop: threading.Event, spent: list[float]) -> None:
    """Work beside the tracker, as the other pipeline threads do (numpy releases the GIL for it);
    ``spent`` gets this thread's own CPU seconds, to take out of the process's."""
    a = np.random.default_rng(0).random((480, 640, 3), np.float32)
    t0 = time.thread_time()
    while not stop.is_set():
        np.multiply(a, 1.0001, out=a)
    spent.append(time.thread_time() - t0)


def run(frames: int, faces: int) -> dict:
    tracker = FaceTracker()
    stop = threading.Event()
    spent: list[float] = []
    beside = threading.Thread(target=busy, args=(stop, spent), daemon=True)
    beside.start()
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for i in range(frames):
        tracker.update(detections(i, faces), i, (1280, 720))
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    stop.set()
    beside.join()
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime) - spent[0]
    return {"wall_ms_per_frame": round(1e3 * wall / frames, 3),
            "cpu_ms_per_frame": round(1e3 * cpu / frames, 3),  # the tracker and BLAS's threads
            "system_ms_per_frame": round(1e3 * (r1.ru_stime - r0.ru_stime) / frames, 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--faces", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "blas.json")
    args = ap.parse_args()
    default = max((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), default=1)
    rows = []
    run(200, args.faces)  # warm-up
    for name, limit in ((f"BLAS default ({default} threads)", None), ("BLAS 1 thread (a run)", 1)):
        with threadpool_limits(limits=limit, user_api="blas"):
            row = {"setting": name, **run(args.frames, args.faces)}
        rows.append(row)
        print(f"{name:28s} wall {row['wall_ms_per_frame']:.3f}  CPU {row['cpu_ms_per_frame']:.3f} (the tracker and "
              f"BLAS's threads)  system {row['system_ms_per_frame']:.3f} ms per frame")
    write_json(Path(args.out), {"argv": public_argv(), **machine(), "faces": args.faces,
                                "frames": args.frames, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
