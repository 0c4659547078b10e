"""Are faces ever left bare? Two counts per shared clip, in the default configuration.

    python benchmarks/check_coverage.py [--clips a.mp4 ...] [-- extra deidstream options]

1. ``prev_bare``: frames where a face the pipeline's detector found in the previous frame is
   not inside a hidden region (at least ``--contain`` of its box) — the coasting guarantee.
2. ``found_bare``: an independent pass of the same detector with every model on every frame
   (no skipping) over the *input*; frames where a face it finds is not inside a hidden
   region. This also measures what running the full-range model every 2nd frame costs.
3. ``hog_bare``: the same with a detector that shares nothing with MediaPipe (dlib's HOG
   frontal-face detector, upsampled once, every ``--hog-every``-th frame): faces that no
   MediaPipe model finds are invisible to the first two counts.
Prints a table and writes benchmarks/out/coverage.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import av
import dlib
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "videos"
sys.path.insert(0, str(ROOT))

from benchlib import public_argv, write_json

from deidstream.api import anonymize
from deidstream.cli import build_parser, config_from_args
from deidstream.config import DetectorConfig
from deidstream.geometry.boxes import containment_matrix, rotate_boxes_to_stored
from deidstream.tracking.detector import MediaPipeDetector, detect_upright
from deidstream.types import Frame


def bare(faces: np.ndarray, regions: list[list[int]], contain: float, size: tuple[int, int]) -> int:
    """Faces (the part inside the picture: hidden regions stop at its edges) not ``contain`` hidden."""
    faces = np.asarray(faces, np.float32).reshape(-1, 4).clip(0, np.array([*size, *size], np.float32))
    faces = faces[(faces[:, 2] > faces[:, 0]) & (faces[:, 3] > faces[:, 1])]
    if len(faces) == 0:
        return 0
    if not regions:
        return len(faces)
    return int((containment_matrix(faces, np.array(regions, np.float32)).max(axis=1) < contain).sum())


def hog_faces(detector, image: np.ndarray) -> np.ndarray:
    rects = detector(image, 1)
    return np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], np.float32).reshape(-1, 4)


def check(clip: Path, config, contain: float, hog_every: int, tmp: Path) -> dict:
    report = anonymize(clip, tmp / "out.mp4", config=config, overwrite=True)
    dets, hidden = report.detection_boxes, report.region_boxes
    with av.open(str(clip)) as c:
        size = (c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height)
    prev_bare = [t for t in range(1, len(dets)) if bare(dets[t - 1], hidden[t], contain, size)]
    found_bare, found, hog_bare, hog_found = [], 0, [], 0
    hog = dlib.get_frontal_face_detector()
    with MediaPipeDetector(DetectorConfig(**{**_fields(config.detector), "full_range_every": 1})) as det, \
            av.open(str(clip)) as c:
        for i, f in enumerate(c.decode(video=0)):
            rotation = int(round((f.rotation or 0) / 90)) * 90 % 360
            frame = Frame(i, f.to_ndarray(format="rgb24"), pts=i, time_base=f.time_base, rotation=rotation)
            faces = detect_upright(det, frame).xyxy
            found += len(faces)
            if bare(faces, hidden[i], contain, size):
                found_bare.append(i)
            if hog_every and i % hog_every == 0:
                upright = np.ascontiguousarray(np.rot90(frame.image, (rotation // 90) % 4))
                boxes = rotate_boxes_to_stored(hog_faces(hog, upright), rotation, frame.width, frame.height)
                hog_found += len(boxes)
                if bare(boxes, hidden[i], contain, size):
                    hog_bare.append(i)
    return {"clip": clip.name, "frames": report.frames, "faces_found_independently": found,
            "prev_bare_frames": len(prev_bare), "found_bare_frames": len(found_bare),
            "prev_bare_at": prev_bare[:20], "found_bare_at": found_bare[:20],
            "hog_frames": len(range(0, report.frames, hog_every)) if hog_every else 0,
            "hog_faces": hog_found, "hog_bare_frames": len(hog_bare), "hog_bare_at": hog_bare[:20]}


def _fields(cfg) -> dict:
    return {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}


def _line(r: dict) -> str:
    return (f"{r['clip']:34s} {r['frames']:6d} {r['faces_found_independently']:6d} {r['prev_bare_frames']:9d} "
            f"{r['found_bare_frames']:10d} {r['hog_faces']:9d} {r['hog_bare_frames']:8d}")


def main() -> int:
    ap = argparse.ArgumentParser(description="count frames where a face is left bare")
    ap.add_argument("--clips", nargs="*")
    ap.add_argument("--contain", type=float, default=0.8, help="fraction of a face box that must be hidden")
    ap.add_argument("--hog-every", type=int, default=1, help="run dlib's HOG detector on every N-th frame (0: never)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "coverage.json")
    ap.add_argument("extra", nargs="*", help="deidstream options, after --")
    args = ap.parse_args()
    clips = [Path(c) for c in args.clips] if args.clips else sorted(VIDEOS.glob("*.mp4")) + sorted(VIDEOS.glob("*.mov"))
    if not clips:
        print(f"no clips found in {VIDEOS} (is ../shared/data present?)", file=sys.stderr)
        return 2
    config = config_from_args(build_parser().parse_args(["in", "out", *args.extra]))
    rows = []
    print(f"{'clip':34s} {'frames':>6s} {'faces':>6s} {'prev_bare':>9s} {'found_bare':>10s} "
          f"{'hog_faces':>9s} {'hog_bare':>8s}")
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            r = check(clip, config, args.contain, args.hog_every, Path(tmp))
            rows.append(r)
            print(_line(r), flush=True)
    total = {k: sum(r[k] for r in rows) for k in ("frames", "faces_found_independently", "prev_bare_frames",
                                                  "found_bare_frames", "hog_faces", "hog_bare_frames")}
    print(_line({"clip": "total", **total}))
    write_json(args.out, {"argv": public_argv(), "contain": args.contain, "hog_every": args.hog_every,
                          "total": total, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
