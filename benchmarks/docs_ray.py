"""The docs page's section for benchmarks/out/ray.json (bench_ray.py): a folder job in one process and on Ray with
one and two workers, per mode."""

from __future__ import annotations

from typing import Any

from docs_format import table

Json = dict[str, Any]


def ray_job(d: Json) -> tuple[str, list[str]]:
    rows, alone = [], {}
    for r in d["rows"]:
        if r["run"] == "one process":
            alone[r["mode"]] = r["fps"]
        one = next(x["fps"] for x in d["rows"] if x["mode"] == r["mode"] and x["run"] == "ray, 1 worker, 1 core")
        driver = r["driver_cpu_s"] / max(r["driver_cpu_s"] + r["worker_cpu_s"], 1e-9) if r["worker_cpu_s"] else None
        rows.append([r["mode"], r["run"], r["frames"], f"{r['wall_s']:.1f}", f"{r['fps']:.1f}",
                     f"{r['fps'] / one:.2f}×" if r["run"].startswith("ray") else "—",
                     f"{r['fps'] / alone[r['mode']]:.2f}×", "—" if driver is None else f"{100 * driver:.1f}%",
                     f"{r['worker_peak_mb']:.0f}" if r["worker_peak_mb"] else "—"])
    startup = ", ".join(f"{n} CPU{'s' if n != '1' else ''}: {s} s" for n, s in d.get("ray_startup_s", {}).items())
    note = (f"A folder of {len(d['clips'])} shared clips ({', '.join(d['clips'])}), each way by its own command: "
            "`deidstream IN OUT` (one process) and `--ray --workers N` (a local Ray instance; each file a task of "
            "one CPU). fps = the folder's frames / the command's wall time, Ray's start-up included "
            f"(`ray.init` and shutdown alone: {startup}). × 1 worker on 1 core: against one worker with the whole "
            "command pinned to one core (`taskset -c 0`), scaling with each worker given one core (a worker alone "
            "uses more than one: its pipeline runs on threads). Driver share = the command's own CPU time against "
            "the workers' (Ray's daemons not counted); worker peak = the largest resident memory of a worker "
            "process while it ran a file.")
    return note, table(["mode", "run", "frames", "wall s", "fps", "× 1 worker on 1 core", "× one process",
                        "driver share", "worker peak MB"], rows)


def segments(d: Json) -> tuple[str, list[str]]:
    """benchmarks/out/segments.json (bench_segments.py): one long file whole and in segments."""
    rows = []
    for r in d["rows"]:
        by = {x["run"]: x["wall_s"] for x in d["rows"] if x["mode"] == r["mode"]}
        whole = by.get(r["run"].replace("segments", "whole"), r["wall_s"])
        rows.append([r["mode"], r["run"], r["frames"], f"{r['wall_s']:.1f}", f"{r['fps']:.1f}",
                     f"{100 * (r['wall_s'] / whole - 1):+.1f}%" if r["run"].endswith("segments") else "—",
                     f"{by['one process'] / r['wall_s']:.2f}×", f"{r['frames_out']}",
                     f"{r['lost']} / {r['duplicated']}"])
    note = (f"One long file ({d['clip']}: {d['seconds']} s, looped by ffmpeg without re-encoding, its keyframes every "
            f"3 s and its audio kept), each way by its own command: one process, and `--ray --workers N` with the file "
            f"whole (`--segment-s 0`) or in segments of about {d['segment_s']:g} s. Segmenting costs = the segmented "
            "run's wall time against the whole file's with the same workers; lost / duplicated = frame times of the "
            "input missing from the output / extra in it (every output decoded).")
    return note, table(["mode", "run", "frames", "wall s", "fps", "segmenting costs", "× one process", "frames out",
                        "lost / duplicated"], rows)
