"""What every benchmark script shares: a command line fit to publish, and the JSON it writes."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "videos"


def public_argv() -> list[str]:
    """The command line without machine paths (a path keeps only its last part)."""
    return [Path(a).name if "/" in a else a for a in sys.argv[1:]]


def machine() -> dict:
    """Which CPU a run had: the same 2-core kind of machine has come with processors of different speed,
    so numbers from two runs compare only where these agree."""
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "cpu family", "model", "cpu MHz") and key.strip() not in info:
                info[key.strip()] = value.strip()
    except OSError:
        pass
    name = info.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in info and "model" in info:
        name += f" (family {info['cpu family']}, model {info['model']})"
    return {"cpus": os.cpu_count(), "cpu": name, "cpu_mhz": float(info.get("cpu MHz", 0)) or None}


def limit_cpus(cores: float, period_us: int = 10_000) -> None:
    """Run this process, its threads and its children under a CPU quota of ``cores`` (a cgroup; needs
    root): a stand-in for a slower machine, which says how much CPU a mode needs to meet its targets.
    It caps the CPU time per 10 ms, not the speed of a core, so one thread runs as fast as before."""
    quota = max(1000, int(cores * period_us))
    v1, v2 = Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")
    try:
        if (v1 / "cpu.cfs_quota_us").exists():
            group = v1 / "deidstream-bench"
            group.mkdir(exist_ok=True)
            (group / "cpu.cfs_period_us").write_text(str(period_us))
            (group / "cpu.cfs_quota_us").write_text(str(quota))
        else:
            if "cpu" not in (v2 / "cgroup.subtree_control").read_text().split():
                (v2 / "cgroup.subtree_control").write_text("+cpu")
            group = v2 / "deidstream-bench"
            group.mkdir(exist_ok=True)
            (group / "cpu.max").write_text(f"{quota} {period_us}")
        (group / "cgroup.procs").write_text(str(os.getpid()))
    except OSError as e:
        raise SystemExit(f"--cpus {cores}: cannot set a CPU quota here (a cgroup needs root): {e}") from e


def write_json(path: Path, data: object, *, indent: int = 1) -> None:
    """Write the results and say where (relative to the repository when inside it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=indent) + "\n")
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name}")


def shared_clip(name: str | Path) -> Path:
    """A path, or a shared clip's name (``stage_multi_person_cuts.mp4``, or ``stage`` for short);
    a name that matches nothing comes back as given, for the caller's "missing" message."""
    if Path(name).exists():
        return Path(name)
    named = sorted(VIDEOS.glob(f"{Path(name).stem}*.mp4"))
    return named[0] if len(named) == 1 else Path(name)


def largest_faces(judge, video: Path, every: int, frames: int | None = None):
    """(n, 128) descriptors by ``judge`` (detect + describe, as the evaluation's DlibRecognizer) of the largest face
    of every ``every``-th frame of ``video``, over its first ``frames`` such frames (all when None)."""
    import av
    import numpy as np

    found = []
    with av.open(str(video)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i % every:
                continue
            if frames is not None and i // every >= frames:
                break
            image = frame.to_ndarray(format="rgb24")
            faces = judge.detect(image)
            if faces:
                face = max(faces, key=lambda f: float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1])))
                found.append(judge.describe(image, [face])[0])
    return np.array(found).reshape(-1, 128)
