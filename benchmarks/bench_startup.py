"""What a run costs before its first frame: imports and model loading, in fresh interpreters.

    python benchmarks/bench_startup.py [--runs 5] [--clip single_face_short.mp4]

Each run is a new Python process. ``import`` rows time one import after numpy (scipy.stats comes
with filterpy, the Kalman filters' library; MediaPipe brings matplotlib); ``load`` rows time
building the models the default mode needs; ``full garbage collection`` is one of Python's full
collections once all that is loaded (each holds the GIL: every thread waits), then the same after
``gc.freeze()``, as deidstream runs (``deidstream.native.heap_frozen``); ``command`` is the whole
``deidstream IN OUT`` on a short clip minus the run's own clock (its report's ``seconds``): the
start-up a user waits through. Prints the medians and writes benchmarks/out/startup.json. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import ROOT, public_argv, shared_clip, write_json

PROBE = r"""
import json, time
import numpy
t = {}
def timed(name, fn):
    t0 = time.perf_counter(); out = fn(); t[name] = time.perf_counter() - t0; return out
timed("import scipy.stats", lambda: __import__("scipy.stats"))
timed("import mediapipe", lambda: __import__("mediapipe"))
timed("import deidstream.cli", lambda: __import__("deidstream.cli"))
from deidstream.config import DetectorConfig
from deidstream.tracking.detector import MediaPipeDetector
from deidstream.tracking.landmarks import FaceLandmarker
from deidstream.engine.generator.facemodel import default_model
timed("load detector", lambda: MediaPipeDetector(DetectorConfig()).close())
timed("load FaceMesh", lambda: FaceLandmarker().close())
timed("load G_3d", default_model)
import deidstream.pipelines.live_surrogate, deidstream.pipelines.live_run, deidstream.pipelines.twopass, dlib
import gc
timed("full garbage collection", gc.collect)
gc.freeze()
timed("the same, heap frozen", gc.collect)
print(json.dumps(t))
"""


def command_overhead(clip: Path) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "r.json"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "deidstream", str(clip), str(Path(tmp) / "out.mp4"), "-q",
                        "--identity-key", "bench", "--report", str(report)], check=True)
        wall = time.perf_counter() - t0
        return wall - json.loads(report.read_text())["seconds"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--clip", default="single_face_short.mp4")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "startup.json")
    args = ap.parse_args()
    clip = shared_clip(args.clip)
    if not clip.exists():
        raise SystemExit(f"{clip.name}: not found; the shared videos are needed")
    runs = []
    for _ in range(args.runs):
        probe = subprocess.run([sys.executable, "-c", PROBE], check=True, capture_output=True, text=True)
        runs.append({**json.loads(probe.stdout.strip().splitlines()[-1]), "command": command_overhead(clip)})
    import scipy

    medians = {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}
    print(f"scipy {scipy.__version__}, {args.runs} runs, median seconds")
    for name, value in medians.items():
        print(f"{name:24s} {value:6.2f}")
    write_json(args.out, {"argv": public_argv(), "scipy": scipy.__version__, "clip": args.clip,
                          "median_s": medians, "runs": runs})


if __name__ == "__main__":
    main()
