"""Live relay in real time, per mode: added latency, achieved fps, drops and fallbacks.

    python benchmarks/bench_live.py [--clip portrait_s18.mp4] [--seconds 28] [--modes blur pixelate solid]
                                    [--record] [--cpus 1.1] [-- extra deidstream options]

The shared clip is re-encoded the way a camera streams (1280x720, or 720x1280 for an upright clip, 30
fps, H.264, no B-frames, a keyframe a second, looped past ``--seconds``) and served in real time by
GStreamer's RTSP server on loopback; deidstream relays it with the command line's live defaults and
publishes to ffmpeg listening as a media server, all on this machine. Added latency is from the
moment a picture's data arrived (its packet was read) to the moment its encoded frame was handed to
the RTSP connection. Prints a table and writes benchmarks/out/bench_live.json.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))  # the deidstream of this tree, not whichever one is installed

from benchlib import VIDEOS, limit_cpus, machine, public_argv, shared_clip, write_json
from live_peers import camera_clip, rtsp_camera, rtsp_receiver

from deidstream.cli import build_parser, config_from_args, live_config_from_args
from deidstream.pipelines.live import LIVE_MODES
from deidstream.pipelines.live_run import relay

GENERATOR_MODE = "surrogate"


def frames_in_file(path: Path) -> int:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
                          "stream=nb_read_packets", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, timeout=120)
    return int(out.stdout.strip() or 0)


def bench_mode(mode: str, clip: Path, seconds: float, extra: list[str], record: bool, tmp: Path) -> dict:
    args = build_parser().parse_args(["rtsp://camera/stream", "rtsp://server/out", "--mode", mode, *extra])
    config = config_from_args(args, live=True)
    live = live_config_from_args(args)
    received = tmp / f"{mode}.received.mkv"
    load_before = os.getloadavg()[0]
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    face_path = None
    if mode == GENERATOR_MODE:
        from deidstream.cli import generator_config
        from deidstream.engine.generator.face_render import make_renderer
        from deidstream.pipelines.live_surrogate import SurrogatePath

        generator = generator_config(args, live=True)
        face_path = SurrogatePath(generator, make_renderer(generator))
    try:
        with rtsp_camera(clip) as camera, rtsp_receiver(received) as receiver:
            stats = relay(camera.url, push=receiver.url, record=tmp / f"{mode}.mp4" if record else None,
                          config=config, live=live, duration_s=seconds, face_path=face_path)
            receiver.wait()
    finally:
        if face_path is not None:
            face_path.close()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    d = stats.to_dict()
    sent = stats.sent["stream"]
    lat = d["latency_ms"]["stream"]
    span = stats.last_capture - (stats.first_capture or stats.last_capture)
    return {
        "mode": mode,
        "status": "measured",
        "frames_in": stats.frames_in,
        "frames_sent": sent,
        "frames_received": frames_in_file(received),
        "frames_dropped": stats.frames_dropped,
        "dropped": d["dropped"],
        "drop_rate": round(stats.frames_dropped / stats.frames_in, 4) if stats.frames_in else 0.0,
        "input_fps": round(stats.input_fps, 2),
        "achieved_fps": round(sent / span, 2) if span > 0 else 0.0,
        "latency_p50_ms": lat["p50_ms"],
        "latency_p99_ms": lat["p99_ms"],
        "latency_max_ms": lat["max_ms"],
        "processing_p99_ms": d["processing_ms"]["p99_ms"],
        "faces_rendered": stats.faces_rendered,
        "faces_fallback": stats.faces_fallback,
        "fallback_rate": round(stats.fallback_rate, 4),
        "faces_waiting": stats.faces_waiting,
        "rendered_rate_when_ready": round(stats.rendered_rate_when_ready, 4),
        "faces_late": stats.faces_late,
        "seconds_to_first_render": d["seconds_to_first_render"],
        "faces_over_budget": stats.faces_over_budget + getattr(face_path, "over_budget", 0),
        "faces_repainted": getattr(face_path, "repainted", 0),
        "faces_backfilled": stats.faces_backfilled,
        "cpu_cores_used": round(cpu_s / stats.seconds, 2) if stats.seconds else 0.0,
        "loadavg_1min_before": round(load_before, 2),
        "loadavg_1min_after": round(os.getloadavg()[0], 2),
    }


def camera_size(clip: Path) -> tuple[tuple[int, int], float]:
    """720p in the clip's orientation (an upright phone clip stays upright), and its duration in seconds."""
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        upright = stream.codec_context.height > stream.codec_context.width
        duration = float(stream.duration * stream.time_base) if stream.duration else float(container.duration) / 1e6
    return ((720, 1280) if upright else (1280, 720)), duration


def print_row(r: dict) -> None:
    if r["status"] != "measured":
        print(f"{r['mode']:<9} {r['status']}")
        return
    print(f"{r['mode']:<9} {r['frames_in']:>6} {r['frames_sent']:>6} {r['frames_received']:>6} "
          f"{r['drop_rate'] * 100:>6.2f}% {r['input_fps']:>6.1f} {r['achieved_fps']:>6.1f} "
          f"{r['latency_p50_ms']:>7.1f} {r['latency_p99_ms']:>7.1f} {r['fallback_rate'] * 100:>8.2f}% "
          f"{r['cpu_cores_used']:>5.2f} {r['loadavg_1min_before']:>5.2f} "
          f"{r['rendered_rate_when_ready'] * 100:>7.1f}%")


def main() -> int:
    ap = argparse.ArgumentParser(description="deidstream live relay: latency, fps, drops, fallbacks per mode")
    ap.add_argument("--clip", type=Path, default=VIDEOS / "portrait_s18.mp4",
                    help="a clip (a shared clip's name or a path), streamed at 1280x720 (720x1280 if upright)")
    ap.add_argument("--seconds", type=float, default=28.0, help="how long each mode relays")
    ap.add_argument("--modes", nargs="*", default=[*LIVE_MODES, GENERATOR_MODE])
    ap.add_argument("--record", action="store_true", help="also record to a file (same encoder, second muxer)")
    ap.add_argument("--cpus", type=float, default=None,
                    help="run under a CPU quota of this many cores (camera and receiver included; needs root)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "bench_live.json")
    ap.add_argument("extra", nargs="*", help="extra deidstream options, after --")
    args = ap.parse_args()
    args.clip = shared_clip(args.clip)
    if not args.clip.exists():
        print(f"missing clip (is ../shared/data present?): {args.clip}", file=sys.stderr)
        return 2
    if args.cpus is not None:
        limit_cpus(args.cpus)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        size, duration = camera_size(args.clip)
        cam = camera_clip(args.clip, Path(tmp) / "camera.mp4", gop=30, fps=30, size=size,
                          loops=int(args.seconds // duration) + 1)
        print(f"{'mode':<9} {'in':>6} {'sent':>6} {'recv':>6} {'drop':>7} {'in fps':>6} {'out fps':>6} "
              f"{'p50 ms':>7} {'p99 ms':>7} {'fallback':>9} {'cores':>5} {'load':>5} {'rendered after lock':>8}")
        for mode in args.modes:
            if mode not in (*LIVE_MODES, GENERATOR_MODE):
                rows.append({"mode": mode, "status": "not measurable: no such mode"})
            else:
                rows.append(bench_mode(mode, cam, args.seconds, args.extra, args.record, Path(tmp)))
                time.sleep(1.0)
            print_row(rows[-1])
    meta = {**machine(), "argv": public_argv(), "clip": args.clip.name, "size": list(size), "fps": 30,
            "seconds_per_mode": args.seconds, "cpu_quota_cores": args.cpus, "rows": rows}
    write_json(args.out, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
