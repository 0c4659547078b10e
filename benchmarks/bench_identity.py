"""E_id cost per face and track → identity counts on the shared clips.

    python benchmarks/bench_identity.py [--clips a.mp4 b.mp4] [--threshold 0.52]

Runs the engine's detector and tracker on every frame, landmarks on every tracked face, E_id
(FaceEmbedder with its defaults) and the IdentityBook, then resolves identities offline and
counts the online ones. Per clip: tracks, tracks with enough usable observations, identities
(with and without an embedding), observations rejected per gate, ms per descriptor, and the
E_id distances between track means near the threshold (which pairs merged, which were kept
apart because they share a frame). Prints a table and writes benchmarks/out/identity.json.
No descriptors are written.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "videos"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GLOG_minloglevel", "2")

from benchlib import machine, public_argv, write_json

from deidstream.config import IdentityConfig
from deidstream.stream.source import FileSource
from deidstream.tracking.detector import MediaPipeDetector, detect_upright
from deidstream.tracking.embedding import FaceEmbedder
from deidstream.tracking.identity import IdentityBook
from deidstream.tracking.landmarks import FaceLandmarker
from deidstream.tracking.tracker import FaceTracker
from deidstream.types import Frame

NEAR = 0.75  # report track pairs closer than this


def run_clip(path: Path, embedder: FaceEmbedder, config: IdentityConfig) -> dict:
    book = IdentityBook(config)
    per_face_ms: list[float] = []
    frames, start = 0, embedder.descriptors_computed
    with FileSource(path) as src, MediaPipeDetector() as det, FaceLandmarker() as lm:
        tracker = FaceTracker()
        for item in src.items():
            if not isinstance(item, Frame):
                continue
            frames += 1
            faces = tracker.update(detect_upright(det, item), item.index, (item.width, item.height))
            book.see(faces, item.index)
            points = lm.landmarks(item.image, faces)
            before = embedder.descriptors_computed
            t0 = time.perf_counter()
            observations = embedder.observe(item.image, faces, points, item.index)
            n = embedder.descriptors_computed - before
            if n:
                per_face_ms.append(1000 * (time.perf_counter() - t0) / n)
            for obs in observations:
                book.add(obs)
    online = {t: book.identity_of(t) for t in book._tracks}
    stats = book.stats()
    means = {t: tr.mean for t, tr in book._tracks.items() if tr.usable >= config.min_observations}
    resolved = book.resolve()
    pairs = []
    for a, b in itertools.combinations(sorted(means), 2):
        d = float(np.linalg.norm(means[a] - means[b]))
        if d < NEAR:
            pairs.append({"tracks": [a, b], "distance": round(d, 3),
                          "overlap": book._tracks[a].runs.overlaps(book._tracks[b].runs),
                          "merged": resolved[a] == resolved[b]})
    with_embedding = [i for i in book.identities() if book.has_embedding(i)]
    return {
        "frames": frames,
        "tracks": stats.tracks,
        "tracks_embedded": stats.tracks_embedded,
        "identities": len(book.identities()),
        "identities_with_embedding": len(with_embedding),
        "identities_online_with_embedding": len({i for i in online.values() if i is not None}),
        "observations": stats.observations,
        "usable": stats.usable,
        "rejected": stats.rejected,
        "descriptors": embedder.descriptors_computed - start,
        "eid_ms_per_face_median": round(float(np.median(per_face_ms)), 1) if per_face_ms else None,
        "identity_tracks": {str(i): book.tracks_of(i) for i in with_embedding},
        "near_pairs": sorted(pairs, key=lambda p: p["distance"]),
    }


def network_speed(recognizer: object, clip: Path, faces: int = 8, reps: int = 3) -> dict:
    """The product's E_id network alone on aligned chips of one clip's faces (its threads: torch's, not BLAS's)."""
    import dlib
    from threadpoolctl import threadpool_limits

    chips: list[np.ndarray] = []
    with FileSource(clip) as src:
        for item in src.items():
            if isinstance(item, Frame) and item.index % 10 == 0:
                chips.extend(recognizer.chips(item.image, [f.landmarks for f in recognizer.detect(item.image)[:1]]))
            if len(chips) >= faces:
                break
    recognizer.describe_chips(chips[:1])  # load the network

    def ms_per_chip() -> float:
        t0 = time.perf_counter()
        for _ in range(reps):
            recognizer.describe_chips(chips)
        return round(1000 * (time.perf_counter() - t0) / (reps * len(chips)), 1)

    default = ms_per_chip()
    with threadpool_limits(1, user_api="blas"):
        one = ms_per_chip()
    return {"dlib": dlib.__version__, "blas": bool(getattr(dlib, "DLIB_USE_BLAS", False)), "chips": len(chips),
            "ms_per_chip_one_thread": one, "ms_per_chip_default_threads": default}


def main() -> int:
    ap = argparse.ArgumentParser(description="E_id cost and identity counts per shared clip")
    ap.add_argument("--clips", nargs="*", type=Path, help="clip files (default: every shared clip)")
    ap.add_argument("--threshold", type=float, default=IdentityConfig().threshold)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "identity.json")
    args = ap.parse_args()
    clips = args.clips or sorted(VIDEOS.glob("*.m*"))
    if not clips or not all(c.exists() for c in clips):
        print(f"missing clips (is ../shared/data present?): {[str(c) for c in clips if not c.exists()]}",
              file=sys.stderr)
        return 2
    config = IdentityConfig(threshold=args.threshold)
    embedder = FaceEmbedder()  # one per stream: its scheduling state is keyed by the tracker's ids
    result: dict = {"argv": public_argv(), **machine(), "threshold": config.threshold,
                    "min_observations": config.min_observations, "embedder": repr(embedder.config), "clips": {}}
    print(f"{'clip':34} {'frames':>6} {'tracks':>6} {'embedded':>8} {'ids':>4} {'ids(emb)':>8} {'online':>6} "
          f"{'usable/obs':>11} {'ms/face':>7}")
    for clip in clips:
        embedder.reset()
        row = run_clip(clip, embedder, config)
        result["clips"][clip.name] = row
        print(f"{clip.name:34} {row['frames']:6d} {row['tracks']:6d} {row['tracks_embedded']:8d} "
              f"{row['identities']:4d} {row['identities_with_embedding']:8d} "
              f"{row['identities_online_with_embedding']:6d} {row['usable']:5d}/{row['observations']:<5d} "
              f"{row['eid_ms_per_face_median'] or 0:7.1f}", flush=True)
    all_ms = [r["eid_ms_per_face_median"] for r in result["clips"].values() if r["eid_ms_per_face_median"]]
    result["eid_ms_per_face_median_of_clips"] = round(float(np.median(all_ms)), 1) if all_ms else None
    result["network"] = network_speed(embedder.recognizer, clips[0])
    print(f"dlib {result['network']['dlib']} (BLAS: {result['network']['blas']}): the network alone, "
          f"{result['network']['ms_per_chip_one_thread']} ms per face on one BLAS thread (as in its worker), "
          f"{result['network']['ms_per_chip_default_threads']} with BLAS's default threads")
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
