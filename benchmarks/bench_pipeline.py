"""End-to-end speed per shared clip: per-stage ms/frame, fps, and deface side by side.

    python benchmarks/bench_pipeline.py [--clips a.mp4|stage ...] [--mode blur] [--deface PATH] [-- extra options]

Both tools run as their command-line programs on the same clip in the same run. Two rates:
``e2e`` = input frames / wall seconds of the whole command (start-up included), and
``steady`` = the same after subtracting the wall time of a run on the clip's first
HEAD_FRAMES frames (start-up and model loading), i.e. throughput once running; the
speed-up is given for both. ``deface`` is used when on PATH or given with --deface.
Prints a table and writes benchmarks/out/pipeline.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
from benchlib import VIDEOS, machine, public_argv, shared_clip, write_json

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLIPS = ["stage_multi_person_cuts.mp4", "crowd_1080p.mp4", "hands_occlusion_expressions.mp4",
                 "talking_head_1.mp4", "two_faces_selfie_portrait.mp4"]
HEAD_FRAMES = 10


def head_clip(clip: Path, out: Path, n: int) -> int:
    """Write the first ``n`` frames of ``clip`` (same size and rate) to ``out``; returns the clip's frame count."""
    total = 0
    with av.open(str(clip)) as src, av.open(str(out), "w") as dst:
        vs = src.streams.video[0]
        rate = Fraction(vs.average_rate or 25)
        st = dst.add_stream("libx264", rate=rate, options={"crf": "12", "preset": "ultrafast"})
        st.width, st.height, st.pix_fmt = vs.codec_context.width, vs.codec_context.height, "yuv444p"
        for frame in src.decode(vs):
            if total < n:
                out = frame.reformat(format="yuv444p")
                out.pts = total
                out.time_base = 1 / rate
                dst.mux(st.encode(out))
            total += 1
        dst.mux(st.encode(None))
    return total


PEAK_RSS_MB: dict[str, float] = {}


def wall(cmd: list[str]) -> float:
    """Wall seconds of a command; its peak resident memory is kept in PEAK_RSS_MB by program name."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    PEAK_RSS_MB[Path(cmd[0]).name] = usage.ru_maxrss / 1024
    return elapsed


def rates(n: int, full_s: float, head_s: float) -> tuple[float, float]:
    return n / full_s, (n - HEAD_FRAMES) / max(full_s - head_s, 1e-6)


def bench_clip(clip: Path, mode: str, deface: str | None, extra: list[str], tmp: Path) -> dict:
    head = tmp / f"{clip.stem}.head.mp4"
    n = head_clip(clip, head, HEAD_FRAMES)
    report = tmp / f"{clip.stem}.json"

    def ours(src: Path, rep: Path) -> float:
        return wall([sys.executable, "-m", "deidstream", str(src), str(tmp / f"{src.stem}.deid.mp4"),
                     "--mode", mode, "--overwrite", "-q", "--report", str(rep), *extra])

    full_s = ours(clip, report)
    peak_mb = PEAK_RSS_MB[Path(sys.executable).name]
    r = json.loads(report.read_text())
    head_s = ours(head, tmp / "head.json")
    e2e, steady = rates(n, full_s, head_s)
    row = {"clip": clip.name, "frames": n, "mode": mode, "wall_s": round(full_s, 2),
           "startup_s": round(head_s, 2), "e2e_fps": round(e2e, 2), "steady_fps": round(steady, 2),
           "pipeline_fps": r["fps"], "peak_rss_mb": round(peak_mb), "stage_ms_per_frame": r["stage_ms_per_frame"],
           "faces_covered": r["faces_covered"], "tracks": len(r["tracks"])}
    if r.get("people"):  # surrogate mode: who was locked sets the lock's and the render's cost
        row.update(people=len(r["people"]), people_locked=sum(p["locked"] for p in r["people"]),
                   face_outcomes={k: r["face_outcomes"][k] for k in ("rendered", "fallback")})
    if deface:
        d_full = wall([deface, str(clip), "-o", str(tmp / f"{clip.stem}.deface.mp4")])
        row["deface_peak_rss_mb"] = round(PEAK_RSS_MB[Path(deface).name])
        d_head = wall([deface, str(head), "-o", str(tmp / f"{clip.stem}.head.deface.mp4")])
        d_e2e, d_steady = rates(n, d_full, d_head)
        row.update(deface_e2e_fps=round(d_e2e, 2), deface_steady_fps=round(d_steady, 2),
                   speedup_e2e=round(e2e / d_e2e, 2), speedup_steady=round(steady / d_steady, 2))
    return row


def print_row(r: dict) -> None:
    st = r["stage_ms_per_frame"]
    line = (f"{r['clip']:32s} {r['frames']:4d} fr | e2e {r['e2e_fps']:6.1f} steady {r['steady_fps']:6.1f} fps "
            f"{r['peak_rss_mb']:5d} MB | "
            f"ms/frame decode {st.get('decode', 0):5.1f} detect {st.get('detect', 0):5.1f} "
            f"track {st.get('track', 0):4.1f} anonymise {st.get('anonymise', 0):4.1f} "
            f"encode {st.get('encode', 0):5.1f}")
    if "deface_e2e_fps" in r:
        line += (f" | deface e2e {r['deface_e2e_fps']:5.1f} steady {r['deface_steady_fps']:5.1f} fps "
                 f"{r['deface_peak_rss_mb']:5d} MB"
                 f" | x{r['speedup_e2e']:.2f} e2e, x{r['speedup_steady']:.2f} steady")
    print(line, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description="deidstream throughput per clip, side by side with deface")
    ap.add_argument("--clips", nargs="*", help="clip files (default: a set of shared clips)")
    ap.add_argument("--mode", default="blur")
    ap.add_argument("--deface", default=shutil.which("deface"), help="deface executable (default: from PATH)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "pipeline.json")
    ap.add_argument("extra", nargs="*", help="extra deidstream options, after --")
    args = ap.parse_args()
    clips = [shared_clip(c) for c in args.clips] if args.clips else [VIDEOS / c for c in DEFAULT_CLIPS]
    missing = [str(c) for c in clips if not c.exists()]
    if missing:
        print(f"missing clips (is ../shared/data present?): {missing}", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            rows.append(bench_clip(clip, args.mode, args.deface, args.extra, Path(tmp)))
            print_row(rows[-1])
    meta = {**machine(), "argv": public_argv(), "head_frames": HEAD_FRAMES, "rows": rows}
    write_json(args.out, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
