"""Paper-style privacy / consistency / utility tables for several anonymisers on the shared clips.

    python benchmarks/bench_privacy.py [--clips a.mp4 ... | --all] [--methods blur pixelate deface] [--every K]

Each method anonymises each clip (deidstream's modes through its command; ``deface`` when it is
on PATH or given with --deface), then ``deidstream evaluate`` measures the pair. Prints three
tables (privacy, consistency, utility; face-weighted means over the clips) and writes
benchmarks/out/privacy.json with the per-clip numbers.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "videos"
sys.path.insert(0, str(ROOT))

from benchlib import public_argv, write_json

from deidstream.evaluation.command import evaluate

DEFAULT_CLIPS = ["stage_multi_person_cuts.mp4", "talking_head_1.mp4", "hands_occlusion_expressions.mp4",
                 "two_faces_selfie_portrait.mp4", "crowd_1080p.mp4"]
OURS = ("blur", "pixelate", "solid", "surrogate")
BENCH_KEY = "deidstream-benchmark"  # a fixed identity key: the surrogate runs are reproducible


def anonymise(method: str, clip: Path, out: Path, deface: str | None, extra: list[str] | None = None) -> dict:
    """Runs one method; returns its wall time and, for ours, the run report's people and outcomes."""
    report = out.with_suffix(".report.json")
    if method in OURS:
        cmd = [sys.executable, "-m", "deidstream", str(clip), str(out), "--mode", method, "-q", "--overwrite",
               "--report", str(report)]
        if method == "surrogate":
            cmd += ["--identity-key", BENCH_KEY]
        cmd += extra or []
    elif method == "deface" and deface:
        cmd = [deface, str(clip), "-o", str(out)]
    else:
        raise SystemExit(f"unknown or unavailable method {method!r}")
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run = {"seconds": round(time.perf_counter() - started, 2)}
    if report.exists():
        data = json.loads(report.read_text())
        run.update({"frames": data["frames"], "fps_end_to_end": round(data["frames"] / run["seconds"], 2),
                    "people": data.get("people", []), "face_outcomes": data.get("face_outcomes", {})})
    return run


def weighted(rows: list[dict], key: str) -> float | None:
    pairs = [(r["summary"][key], r["summary"]["faces"]) for r in rows if r["summary"].get(key) is not None]
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total else None


def fmt(v: float | None, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def main() -> int:
    ap = argparse.ArgumentParser(description="privacy and utility of several anonymisers")
    ap.add_argument("--clips", nargs="*")
    ap.add_argument("--all", action="store_true", help="every video of ../shared/data/videos instead of the five")
    ap.add_argument("--methods", nargs="*", default=["blur", "pixelate", "deface"])
    ap.add_argument("--deface", default=shutil.which("deface"))
    ap.add_argument("--every", type=int, default=5)
    ap.add_argument("--args", default="", help="more options for deidstream's own methods, e.g. '--privacy low'")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "privacy.json")
    args = ap.parse_args()
    clips = [Path(c) for c in args.clips] if args.clips else [VIDEOS / c for c in DEFAULT_CLIPS]
    if args.all:
        clips = sorted(p for p in VIDEOS.glob("*") if p.suffix.lower() in {".mp4", ".mov", ".mkv", ".webm"})
    if any(not c.exists() for c in clips):
        print(f"missing clips (is ../shared/data present?): {[str(c) for c in clips if not c.exists()]}",
              file=sys.stderr)
        return 2
    methods = [m for m in args.methods if m != "deface" or args.deface]
    results: dict[str, list[dict]] = {m: [] for m in methods}
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            for method in methods:
                out = Path(tmp) / f"{clip.stem}.{method}.mp4"
                run = anonymise(method, clip, out, args.deface, shlex.split(args.args))
                ev = evaluate(clip, out, every=args.every)
                s = ev.summary
                results[method].append({"clip": clip.name, "summary": s, "mismatches": ev.comparison.mismatches,
                                        "run": run})
                print(f"{clip.name:32s} {method:9s} faces {s['faces']:4d}  ID {fmt(s['mean_id_distance'], '.3f')}"
                      f"  reid {fmt(s['reidentified_fraction'], '.1%')}  leak {fmt(s['leak_rate'], '.1%')}"
                      f"  FD {fmt(s['face_detectability'], '.1%')}  SSIM {fmt(s['ssim'], '.3f')}"
                      + f"  {run['seconds']:.1f} s"
                      + (f"  [{'; '.join(ev.comparison.mismatches)}]" if ev.comparison.mismatches else ""),
                      flush=True)
    print(f"\nface-weighted means over {len(clips)} clips, every {args.every}. frame, faces from dlib HOG")
    print(f"\n{'privacy':10s} {'ID dist ↑':>10s} {'re-id ↓':>8s} {'leak ↓':>7s}")
    for m, rows in results.items():
        print(f"{m:10s} {fmt(weighted(rows, 'mean_id_distance'), '10.3f')} "
              f"{fmt(weighted(rows, 'reidentified_fraction'), '8.1%')} {fmt(weighted(rows, 'leak_rate'), '7.1%')}")
    print(f"\n{'consistency':12s} {'ID spread ↓':>12s}")
    for m, rows in results.items():
        print(f"{m:12s} {fmt(weighted(rows, 'id_consistency'), '12.3f')}")
    print(f"\n{'utility':10s} {'FD ↑':>6s} {'PD':>6s} {'PSNR ↑':>7s} {'SSIM ↑':>7s} {'flicker':>8s}")
    for m, rows in results.items():
        print(f"{m:10s} {fmt(weighted(rows, 'face_detectability'), '6.1%')} {fmt(weighted(rows, 'pd'), '6.2f')} "
              f"{fmt(weighted(rows, 'psnr'), '7.2f')} {fmt(weighted(rows, 'ssim'), '7.3f')} "
              f"{fmt(weighted(rows, 'flicker_ratio'), '8.2f')}")
    write_json(args.out, {"argv": public_argv(), "every": args.every, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
