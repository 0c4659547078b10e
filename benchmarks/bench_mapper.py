"""M_c against the keyed search: lock time per person, candidates rendered, who locks and how far.

    python benchmarks/bench_mapper.py [--clips a.mp4 ...] [--key TEXT]

Each clip is anonymised by the default mode twice, ``--chooser mapper`` and ``--chooser search``, with one key
and ``--report``; from the reports: people searched and locked, candidates rendered per person, the verified E_id
distance of each (|d − τ| ≤ 0.05 is the paper's objective), and the lock stage's seconds per person searched
(the renderer and the bank loaded included); and M_c's forward pass alone. Prints a table and writes
benchmarks/out/mapper.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchlib import VIDEOS, machine, public_argv, write_json

from deidstream.config import DEFAULT_TAU

CLIPS = ("talking_d6.mp4", "talking_d9.mp4", "talking_d10.mp4", "talking_d13.mp4", "talking_d20.mp4",
         "talking_head_1.mp4", "portrait_s18.mp4", "portrait_s29.mp4", "portrait_s32.mp4",
         "hands_occlusion_expressions.mp4", "stage_multi_person_cuts.mp4", "crowd_1080p.mp4")
CHOOSERS = ("mapper", "search")


def run(clip: Path, chooser: str, key: str, folder: Path) -> dict:
    out, report = folder / f"{clip.stem}_{chooser}.mp4", folder / f"{clip.stem}_{chooser}.json"
    subprocess.run([sys.executable, "-m", "deidstream", str(clip), str(out), "--identity-key", key, "-q",
                    "--chooser", chooser, "--report", str(report), "--overwrite"], check=True)
    data = json.loads(report.read_text())
    searched = [p for p in data["people"] if "candidates_tried" in p]
    return {"clip": clip.name, "chooser": chooser, "searched": len(searched),
            "locked": sum(bool(p["locked"]) for p in searched),
            "candidates": [p["candidates_tried"] for p in searched],
            "distances": [p["id_distance_verified"] for p in searched if "id_distance_verified" in p],
            "lock_s": round(data["stage_ms_per_frame"].get("lock", 0.0) * data["frames"] / 1000.0, 3)}


def summary(rows: list[dict], tau: float) -> dict:
    searched = sum(r["searched"] for r in rows)
    distances = [d for r in rows for d in r["distances"]]
    return {"people_searched": searched, "locked": sum(r["locked"] for r in rows),
            "candidates_per_person": round(float(np.mean([c for r in rows for c in r["candidates"]])), 2),
            "lock_s_per_person": round(sum(r["lock_s"] for r in rows) / max(searched, 1), 3),
            "verified_distance_mean": round(float(np.mean(distances)), 3) if distances else None,
            "within_0.05_of_tau": round(float(np.mean(np.abs(np.array(distances) - tau) <= 0.05)), 3)
            if distances else None}


def forward_ms(repeats: int = 1000) -> float:
    """Milliseconds of one M_c forward pass for one person (the shipped weights, numpy, this process)."""
    from deidstream.networks.mapper import FEATURES, IdentityMapper

    mapper = IdentityMapper.load()
    features = np.random.default_rng(0).normal(0, 0.3, (1, FEATURES)).astype(np.float32)
    mapper.distances(features)
    started = time.perf_counter()
    for _ in range(repeats):
        mapper.distances(features)
    return round((time.perf_counter() - started) / repeats * 1000.0, 3)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", nargs="*", default=list(CLIPS))
    p.add_argument("--key", default="deidstream-benchmark")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "mapper.json")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.clips:
            for chooser in CHOOSERS:
                rows.append(run(VIDEOS / name, chooser, args.key, Path(tmp)))
                r = rows[-1]
                print(f"{name:34s} {chooser:6s} locked {r['locked']}/{r['searched']}  candidates {r['candidates']}  "
                      f"distances {r['distances']}  lock {r['lock_s']} s", flush=True)
    result = {c: summary([r for r in rows if r["chooser"] == c], DEFAULT_TAU) for c in CHOOSERS}
    result["mapper"]["forward_ms"] = forward_ms()
    for chooser, s in result.items():
        print(chooser, s)
    write_json(args.out, {"argv": public_argv(), "machine": machine(), "tau": DEFAULT_TAU, "summary": result,
                          "clips": rows})


if __name__ == "__main__":
    main()
