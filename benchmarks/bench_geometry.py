"""Geometry per face: ms for landmarks on a track crop and for the Procrustes pose, by face size.

    python benchmarks/bench_geometry.py [--clip talking_head_1.mp4] [--frames 60]

Faces are resized so the detector's box is 128 or 256 px wide, landmarks run on the crop
around that box (``search``: a FaceMesh that searches each crop; ``tracked``: the face has a
track id and its own FaceMesh in tracking mode), the pose is fitted to the canonical mesh. Prints a table and writes
benchmarks/out/geometry.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))

from benchlib import write_json

from deidstream.geometry.mesh import CanonicalMesh
from deidstream.geometry.pose import fit_pose
from deidstream.tracking.detector import MediaPipeDetector
from deidstream.tracking.landmarks import FaceLandmarker
from deidstream.types import FaceDetections


def main() -> int:
    ap = argparse.ArgumentParser(description="landmark and pose cost per face")
    ap.add_argument("--clip", type=Path, default=DATA / "videos" / "talking_head_1.mp4")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "geometry.json")
    args = ap.parse_args()
    meta = DATA / "face_geometry" / "geometry_pipeline_metadata_landmarks.pbtxt"
    if not args.clip.exists() or not meta.exists():
        print(f"missing {args.clip} or {meta} (is ../shared/data present?)", file=sys.stderr)
        return 2
    mesh = CanonicalMesh.from_metadata(meta)
    with av.open(str(args.clip)) as c:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(args.frames), c.decode(video=0))]
    rows = []
    with MediaPipeDetector() as det, FaceLandmarker() as lm:
        for face_px, tracked in ((128, False), (256, False), (128, True), (256, True)):
            lm_ms, pose_ms, found = [], [], 0
            for frame in frames:
                faces = det.detect(frame)
                if not len(faces):
                    continue
                k = face_px / float(faces.width[0])
                img = cv2.resize(frame, None, fx=k, fy=k, interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
                faces = det.detect(img)[:1]
                if not len(faces):
                    continue
                if tracked:  # one track: its own FaceMesh in tracking mode
                    faces = FaceDetections(faces.xyxy, faces.score, track_id=np.array([1]))
                t0 = time.perf_counter()
                pts = lm.landmarks(img, faces)[0]
                t1 = time.perf_counter()
                lm_ms.append(1000 * (t1 - t0))
                if pts is not None:
                    found += 1
                    t2 = time.perf_counter()
                    fit_pose(pts, mesh.vertices, mesh.weights)
                    pose_ms.append(1000 * (time.perf_counter() - t2))
            row = {"face_px": face_px, "mode": "tracked" if tracked else "search", "faces": len(lm_ms),
                   "landmarked": found,
                   "landmarks_ms": round(float(np.median(lm_ms)), 2), "pose_ms": round(float(np.median(pose_ms)), 3)}
            rows.append(row)
            print(f"face {face_px:3d} px, {row['mode']:7s}: landmarks {row['landmarks_ms']:5.2f} ms/face "
                  f"(median of {row['faces']}), "
                  f"pose {row['pose_ms']:.3f} ms, {found}/{len(lm_ms)} faces landmarked")
    write_json(args.out, {"clip": args.clip.name, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
