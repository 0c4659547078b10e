"""What handing a processed RGB frame to H.264 costs: the conversion to 4:2:0 and the encoder's threads.

    python benchmarks/bench_encode.py [--clip two_faces_selfie_portrait.mp4] [--frames 300]

Frames of a shared clip are decoded to RGB (as the pipeline sees them) and encoded again with the
live encoder's settings (libx264, ultrafast, zerolatency, no B-frames) into memory. Per row: how the
RGB frame becomes the encoder's yuv420p (``pyav``: ``VideoFrame.from_ndarray(rgb24)`` and the
encoder's own swscale conversion, as before; ``opencv``: ``deidstream.stream.yuv.yuv420_frame``)
and x264's thread count (0 = x264's choice, sliced threads under zerolatency). Prints the process's
CPU and the wall time per frame and writes benchmarks/out/encode.json. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import io
import resource
import time
from pathlib import Path

import av
import numpy as np
from benchlib import ROOT, public_argv, shared_clip, write_json

from deidstream.stream.yuv import yuv420_frame


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def load(clip: Path, n: int) -> list[np.ndarray]:
    with av.open(str(clip)) as container:
        frames = [f.to_ndarray(format="rgb24") for f, _ in zip(container.decode(video=0), range(n))]
    return [f[: f.shape[0] - f.shape[0] % 2, : f.shape[1] - f.shape[1] % 2] for f in frames]


def encode(frames: list[np.ndarray], count: int, convert: str, threads: int) -> dict:
    h, w = frames[0].shape[:2]
    out = av.open(io.BytesIO(), "w", format="matroska")
    stream = out.add_stream("libx264", rate=30)
    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
    stream.codec_context.options = {"preset": "ultrafast", "tune": "zerolatency", "bf": "0", "crf": "23"}
    stream.codec_context.thread_count = threads
    per_frame = []
    wall0, cpu0 = time.perf_counter(), cpu_s()
    for i in range(count):
        t = time.perf_counter()
        image = frames[i % len(frames)]
        vf = yuv420_frame(image) if convert == "opencv" else av.VideoFrame.from_ndarray(image, format="rgb24")
        out.mux(stream.encode(vf))
        per_frame.append(time.perf_counter() - t)
    out.mux(stream.encode(None))
    wall, cpu = time.perf_counter() - wall0, cpu_s() - cpu0
    out.close()
    return {"convert": convert, "threads": threads, "size": [w, h], "frames": count,
            "cpu_ms_per_frame": round(cpu / count * 1000, 2), "wall_ms_per_frame": round(wall / count * 1000, 2),
            "p99_ms": round(float(np.percentile(per_frame, 99)) * 1000, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip", default="two_faces_selfie_portrait.mp4")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "encode.json")
    args = ap.parse_args()
    clip = shared_clip(args.clip)
    if not clip.exists():
        raise SystemExit(f"{clip.name}: not found; the shared videos are needed")
    frames = load(clip, 60)
    rows = [encode(frames, args.frames, convert, threads)
            for convert in ("pyav", "opencv") for threads in (0, 1)]
    print(f"{'convert':8s} {'threads':>7s} {'size':>10s} {'cpu ms':>7s} {'wall ms':>8s} {'p99 ms':>7s}")
    for r in rows:
        print(f"{r['convert']:8s} {r['threads']:7d} {'x'.join(map(str, r['size'])):>10s} "
              f"{r['cpu_ms_per_frame']:7.2f} {r['wall_ms_per_frame']:8.2f} {r['p99_ms']:7.2f}")
    write_json(args.out, {"argv": public_argv(), "clip": args.clip, "rows": rows})


if __name__ == "__main__":
    main()
