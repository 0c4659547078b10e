"""What splitting one long file into segments costs and gains on Ray, and that no frame is lost at the joins.

    python benchmarks/bench_segments.py [--loops 6] [--segment-s 30] [--modes blur surrogate] [--out FILE]

The long file is the README's sample (19.7 s, Pexels licence) looped ``--loops`` times by ffmpeg without
re-encoding (its keyframes every 3 s and its audio kept). Each run is its own command: one process
(``deidstream IN OUT``); Ray with one worker, the file whole (``--segment-s 0``) and in segments
(``--segment-s S``); Ray with two workers, whole and in segments. The cost of segmenting is the one-worker
segmented run against the one-worker whole run (the same Ray, the same single task slot: only the
segmenting differs) and against one process. Every output is decoded: its frames' timestamps against the
input's (lost = in the input, not in the output; duplicated = the other way round).

Prints a table and writes benchmarks/out/segments.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchlib import machine, public_argv, write_json

SAMPLE = ROOT / "examples" / "sample.mp4"


def runs(segment_s: float) -> tuple[tuple[str, list[str]], ...]:
    seg = ["--segment-s", f"{segment_s:g}"]
    return (("one process", []), ("ray, 1 worker, whole", ["--ray", "--workers", "1", "--segment-s", "0"]),
            ("ray, 1 worker, segments", ["--ray", "--workers", "1", *seg]),
            ("ray, 2 workers, whole", ["--ray", "--workers", "2", "--segment-s", "0"]),
            ("ray, 2 workers, segments", ["--ray", "--workers", "2", *seg]))


def loop_clip(out: Path, loops: int) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", str(loops - 1), "-i", str(SAMPLE), "-c", "copy",
                    str(out)], check=True)
    return out


def times_of(path: Path) -> list[Fraction]:
    with av.open(str(path)) as c:
        return [Fraction(f.pts) * f.time_base for f in c.decode(video=0)]


def keyframe_gap_s(path: Path) -> float:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        keys = sorted(p.pts for p in c.demux(stream) if p.pts is not None and p.is_keyframe)
    return float(max(b - a for a, b in zip(keys, keys[1:])) * stream.time_base) if len(keys) > 1 else 0.0


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--loops", type=int, default=6)
    ap.add_argument("--segment-s", type=float, default=30.0)
    ap.add_argument("--modes", nargs="+", default=["blur", "surrogate"])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "segments.json")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = loop_clip(Path(tmp) / "long.mp4", args.loops)
        original = times_of(clip)
        seconds = float(original[-1] - original[0])
        print(f"{clip.name}: {len(original)} frames, {seconds:.1f} s, keyframes at most "
              f"{keyframe_gap_s(clip):.1f} s apart", flush=True)
        for mode in args.modes:
            extra = ["--mode", mode, "-q"] + (["--identity-key", "deidstream-benchmark"] if mode == "surrogate" else [])
            for label, flags in runs(args.segment_s):
                out = Path(tmp) / f"out_{len(rows)}.mp4"
                wall = timed([sys.executable, "-m", "deidstream", str(clip), str(out), *extra, *flags])
                got = times_of(out)
                lost = len(set(original) - set(got))
                duplicated = len(got) - len(set(got)) + len(set(got) - set(original))
                rows.append({"mode": mode, "run": label, "frames": len(original), "wall_s": round(wall, 2),
                             "fps": round(len(original) / wall, 2), "frames_out": len(got), "lost": lost,
                             "duplicated": duplicated})
                print(f"{mode:9s} {label:26s} {wall:7.1f} s {len(original) / wall:6.1f} fps  frames out "
                      f"{len(got)}  lost {lost}  duplicated {duplicated}", flush=True)
                out.unlink()
    for mode in args.modes:
        by = {r["run"]: r["wall_s"] for r in rows if r["mode"] == mode}
        one, whole, two = by["ray, 1 worker, segments"], by["ray, 1 worker, whole"], by["ray, 2 workers, segments"]
        alone = by["one process"]
        print(f"{mode}: segmenting costs {100 * (one / whole - 1):+.1f}% on one worker "
              f"({100 * (one / alone - 1):+.1f}% against one process); two workers in segments: {alone / two:.2f}x")
    write_json(args.out, {"argv": public_argv(), "machine": machine(), "clip": f"examples/sample.mp4 x {args.loops}",
                          "seconds": round(seconds, 2), "segment_s": args.segment_s, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
