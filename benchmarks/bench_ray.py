"""Throughput of a folder job with 1 and 2 Ray workers against one process, on this machine.

    python benchmarks/bench_ray.py [--clips a.mp4 ...] [--modes blur surrogate] [--out FILE]

A folder of shared clips is anonymised four ways per mode, each by its own command: one process
(``deidstream IN OUT``); Ray with one and with two workers (``--ray --workers N``: each task one CPU); and Ray with
one worker on one core (``taskset -c 0``: the command, Ray and the worker on one core, since a worker alone uses
more than one: its pipeline runs on threads). Measured from outside while each command runs (every 0.2 s, /proc):
the wall time, the peak resident memory of each worker process while it runs a file, and CPU time of the driver
(the command's own process) against the workers'. Throughput is the folder's frames over the command's wall time,
Ray's start-up included (also timed alone: a cluster is started once for many files).

Prints a table and writes benchmarks/out/ray.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchlib import machine, public_argv, shared_clip, write_json

CLIPS = ("talking_head_1.mp4", "talking_d9.mp4", "talking_d13.mp4", "portrait_s18.mp4", "two_faces_selfie_portrait.mp4",
         "hands_occlusion_expressions.mp4")
TASK = b"ray::_anonymize_file"
# (label, CPU pinning, flags): a worker's pipeline runs decode, detection and encoding on threads, so one worker
# alone uses more than one core; "1 core" pins the whole command (driver, Ray, worker) to one, which is how the
# scaling from 1 to 2 workers is measured with each worker given one core
RUNS = (("one process", [], []), ("ray, 1 worker", [], ["--ray", "--workers", "1"]),
        ("ray, 1 worker, 1 core", ["taskset", "-c", "0"], ["--ray", "--workers", "1"]),
        ("ray, 2 workers", [], ["--ray", "--workers", "2"]))
TICKS = os.sysconf("SC_CLK_TCK")  # clock ticks per second of /proc/<pid>/stat
PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat(pid: int) -> tuple[float, float] | None:
    """(CPU seconds, resident MB) of a process, None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        rss_pages = int(fields[21])
        return (int(fields[11]) + int(fields[12])) / TICKS, rss_pages * PAGE / 1e6
    except (OSError, IndexError, ValueError):
        return None


def _workers() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(TASK):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def run(command: list[str]) -> dict:
    """Run ``command``; its wall time, the driver's CPU time, each worker's CPU time and peak memory."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    driver_cpu, workers = 0.0, {}
    while proc.poll() is None:
        if (own := _stat(proc.pid)) is not None:
            driver_cpu = own[0]
        for pid in _workers():
            if (seen := _stat(pid)) is not None:
                cpu, peak = workers.get(pid, (0.0, 0.0))
                workers[pid] = (max(cpu, seen[0]), max(peak, seen[1]))
        time.sleep(0.2)
    wall = time.perf_counter() - start
    err = proc.stderr.read() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}): {err[-2000:]}")
    return {"wall_s": round(wall, 2), "driver_cpu_s": round(driver_cpu, 2),
            "worker_cpu_s": round(sum(c for c, _ in workers.values()), 2),
            "worker_peak_mb": round(max((p for _, p in workers.values()), default=0.0), 1),
            "worker_processes": len(workers)}


def ray_startup(workers: int) -> float:
    """Seconds ``ray.init`` takes for a local instance of ``workers`` CPUs, and its shutdown."""
    code = ("import logging, time, ray; t = time.perf_counter(); "
            "logging.getLogger('ray._private.authentication.authentication_token_setup').setLevel(logging.ERROR); "
            f"ray.init(num_cpus={workers}, include_dashboard=False, logging_level=logging.WARNING); "
            "print(time.perf_counter() - t); ray.shutdown()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return round(float(out.strip().splitlines()[-1]), 2)


def frames_of(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--clips", nargs="+", default=list(CLIPS))
    ap.add_argument("--modes", nargs="+", default=["blur", "surrogate"])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "ray.json")
    args = ap.parse_args()
    clips = [shared_clip(c) for c in args.clips]
    missing = [str(c) for c in clips if not c.exists()]
    if missing:
        raise SystemExit(f"missing clips: {', '.join(missing)}")
    base = [sys.executable, "-m", "deidstream"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for clip in clips:
            shutil.copyfile(clip, folder / clip.name)
        frames = sum(frames_of(c) for c in clips)
        for mode in args.modes:
            extra = ["--mode", mode, "-q"] + (["--identity-key", "deidstream-benchmark"] if mode == "surrogate" else [])
            for label, pin, flags in RUNS:
                out = Path(tmp) / f"out_{mode}_{len(rows)}"
                measured = run(pin + base + [str(folder), str(out)] + extra + flags)
                row = {"mode": mode, "run": label, "frames": frames, **measured,
                       "fps": round(frames / measured["wall_s"], 2)}
                rows.append(row)
                print(f"{mode:9s} {label:15s} {measured['wall_s']:7.1f} s {row['fps']:6.1f} fps  driver CPU "
                      f"{measured['driver_cpu_s']:5.1f} s  workers CPU {measured['worker_cpu_s']:6.1f} s  "
                      f"worker peak {measured['worker_peak_mb']:6.0f} MB", flush=True)
    startup = {str(n): ray_startup(n) for n in (1, 2)}
    print(f"ray.init + shutdown, local instance: {startup} s")
    write_json(args.out, {"argv": public_argv(), "machine": machine(), "clips": [c.name for c in clips],
                          "rows": rows, "ray_startup_s": startup})
    return 0


if __name__ == "__main__":
    sys.exit(main())
