"""Hands in front of faces: how well the occluder masks fit the hand, and what they cost per face.

    python benchmarks/bench_hands.py [--complexities 0 1] [--sheets DIR]

On examples/sample.mp4 (one woman, hands over mouth, nose and eyes) the engine's detector and
tracker give the faces, HandOccluders the masks, frame after frame (tracking mode needs the
frames in order). On the hand-labelled frames (tests/data/hand_polygons.json) each mask is
scored inside the labelled face box: recall, the share of the hand's pixels it covers, and
leak, the share of its own pixels that are not hand (real face a surrogate would leave bare).
Both for the landmark capsules alone and after GrabCut settles their rims, for each model
complexity; then for faces without a track id (static mode, every frame searched afresh).
Cost per face: the Hands model on the crop and the mask, apart. Hands are also counted on the
frames with none near the face (false hands keep face pixels) and on the stage clip (mic and
hands over a mouth, several faces, cuts). Prints tables and writes benchmarks/out/hands.json;
``--sheets`` writes contact sheets (crop | mask over it) there for a person to look at.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GLOG_minloglevel", "2")

from benchlib import machine, public_argv, shared_clip, write_json

from deidstream.tracking.cuts import CutDetector
from deidstream.tracking.detector import MediaPipeDetector
from deidstream.tracking.hands import HandOccluders, Occluder
from deidstream.tracking.landmarks import FaceLandmarker
from deidstream.tracking.tracker import FaceTracker
from deidstream.types import FaceDetections

SAMPLE = ROOT / "examples" / "sample.mp4"
LABELS = ROOT / "tests" / "data" / "hand_polygons.json"
HAND_FRAMES = (58, 230)  # frames of the sample with a hand near the face (looked at); none outside


def read_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def tracked_faces(frames: list[np.ndarray]) -> tuple[list[FaceDetections], list[FaceDetections]]:
    """The faces the pipeline would cover, with track ids (tracks end at hard cuts): boxes only, and with
    the face-mesh landmarks the surrogate is drawn from."""
    tracker, cuts, boxes = FaceTracker(), CutDetector(), []
    with MediaPipeDetector() as detector:
        for i, image in enumerate(frames):
            if cuts.is_cut(image):
                tracker.end_all()
            boxes.append(tracker.update(detector.detect(image), i, (image.shape[1], image.shape[0])))
    with FaceLandmarker() as landmarker:
        meshed = [found.with_landmarks(landmarker.landmarks(image, found)) for image, found in zip(frames, boxes)]
    return boxes, meshed


def truth(polygons: list, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    for poly in polygons:
        cv2.fillPoly(mask, [np.round(np.array(poly) * 16).astype(np.int32)], 255, cv2.LINE_8, 4)
    return mask > 0


def score(occluder: Occluder, hand: np.ndarray, box: list[float]) -> tuple[float, float]:
    """(recall, leak) inside the labelled face box."""
    h, w = hand.shape
    x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x1, y1 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    mask = occluder.full(h, w)[y0:y1, x0:x1] > 0
    hand = hand[y0:y1, x0:x1]
    return float((mask & hand).sum() / max(hand.sum(), 1)), float((mask & ~hand).sum() / max(mask.sum(), 1))


def nearest_face(faces: FaceDetections, box: list[float]) -> int:
    centres = (faces.xyxy[:, :2] + faces.xyxy[:, 2:]) / 2
    return int(np.argmin(np.linalg.norm(centres - [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], axis=1)))


def sheet_pair(image: np.ndarray, occ: Occluder, title: str) -> np.ndarray:
    x0, y0, x1, y1 = occ.region
    crop = image[y0:y1, x0:x1]
    over = crop.copy()
    on = occ.mask > 0
    over[on] = (0.45 * over[on] + [0, 140, 0]).astype(np.uint8)
    pair = np.hstack([cv2.resize(crop, (256, 256)), cv2.resize(over, (256, 256))])
    cv2.putText(pair, title, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1)
    return cv2.cvtColor(pair, cv2.COLOR_RGB2BGR)


def write_sheet(pairs: list[np.ndarray], path: Path, columns: int = 3) -> None:
    if not pairs:
        return
    pairs = pairs + [np.zeros_like(pairs[0])] * (-len(pairs) % columns)
    rows = [np.hstack(pairs[i:i + columns]) for i in range(0, len(pairs), columns)]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.vstack(rows))


CAPSULE_RADII = (0.07, 0.1, 0.12, 0.14)  # landmark capsules alone, for comparison with GrabCut's rims


def run_sample(frames: list[np.ndarray], faces: list[FaceDetections], labels: dict, complexity: int,
               pairs: list[np.ndarray]) -> dict:
    """Every frame in order through one HandOccluders; scores on the labelled frames, costs per face."""
    hand_ms, mask_ms, seen = {True: [], False: []}, [], {}
    false_hands, inside, inside_found = 0, 0, 0
    with HandOccluders(complexity=complexity) as occ:
        for i, (image, found) in enumerate(zip(frames, faces)):
            t0 = time.perf_counter()
            hands = occ.hands(image, found)
            dt = (time.perf_counter() - t0) * 1000 / max(len(found), 1)
            for h in hands:
                hand_ms[bool(h)].append(dt)
            if not HAND_FRAMES[0] <= i <= HAND_FRAMES[1]:
                false_hands += sum(bool(h) for h in hands)
            elif HAND_FRAMES[0] + 2 <= i <= HAND_FRAMES[1] - 2:  # the hand well in view
                inside += len(hands)
                inside_found += sum(bool(h) for h in hands)
            t0 = time.perf_counter()
            for box, h in zip(found.xyxy, hands):
                occ.occluder(image, box, h)
            if any(hands):
                mask_ms.append((time.perf_counter() - t0) * 1000 / len(found))
            if str(i) in labels and len(found):
                j = nearest_face(found, labels[str(i)]["face_box"])
                seen[i] = (found.xyxy[j], hands[j])
        per_frame, capsules = score_labelled(occ, frames, seen, labels, pairs)
    return {
        "complexity": complexity, "frames": per_frame,
        "mean": {k: round(float(np.mean([f[k] for f in per_frame])), 3) for k in ("recall", "leak")},
        "capsules_only": capsules,
        "ms_per_face_hands_tracked": round(float(np.mean(hand_ms[True])), 2),
        "ms_per_face_no_hand": round(float(np.mean(hand_ms[False])), 2),
        "ms_per_face_mask": round(float(np.mean(mask_ms)), 2),
        "hand_found_share": round(inside_found / max(inside, 1), 3),
        "faces_in_hand_frames": inside,
        "false_hands_outside_hand_frames": false_hands,
    }


def score_labelled(occ: HandOccluders, frames: list[np.ndarray], seen: dict, labels: dict,
                   pairs: list[np.ndarray]) -> tuple[list[dict], dict]:
    """Per labelled frame the refined mask's scores; the capsules alone at each of CAPSULE_RADII (means)."""
    rows, capsules = [], {r: [] for r in CAPSULE_RADII}
    radii, refine = occ.radii, occ.refine
    for i, (box, hands) in sorted(seen.items()):
        label = labels[str(i)]
        hand = truth(label["hands"], frames[i].shape[:2])
        found = occ.occluder(frames[i], box, hands)
        rec, leak = score(found, hand, label["face_box"])
        rows.append({"frame": i, "hands": len(hands), "recall": round(rec, 3), "leak": round(leak, 3)})
        pairs.append(sheet_pair(frames[i], found, f"c{occ.complexity} f{i} rec {rec:.2f} leak {leak:.2f}"))
        occ.refine = False
        for r in CAPSULE_RADII:
            occ.radii = (r, r, r)
            capsules[r].append(score(occ.occluder(frames[i], box, hands), hand, label["face_box"]))
        occ.radii, occ.refine = radii, refine
    means = {str(r): [round(float(v), 3) for v in np.mean(s, axis=0)] for r, s in capsules.items()}
    return rows, means


def run_static(frames: list[np.ndarray], labels: dict, complexity: int) -> dict:
    """Faces without a track id: each labelled frame alone, the palm detector every time."""
    rows, ms = [], []
    with HandOccluders(static_complexity=complexity) as occ:
        for key, label in labels.items():
            image = frames[int(key)]
            face = FaceDetections(np.array([label["face_box"]]), np.ones(1))
            t0 = time.perf_counter()
            found = occ.occluders(image, face)[0]
            ms.append((time.perf_counter() - t0) * 1000)
            rec, leak = score(found, truth(label["hands"], image.shape[:2]), label["face_box"])
            rows.append({"frame": int(key), "hands": found.hands_found, "recall": round(rec, 3),
                         "leak": round(leak, 3)})
    return {"complexity": complexity, "frames": rows, "ms_per_face": round(float(np.mean(ms)), 2),
            "mean": {k: round(float(np.mean([r[k] for r in rows])), 3) for k in ("recall", "leak")}}


def run_stage(path: Path, complexity: int, pairs: list[np.ndarray]) -> dict:
    """Faces found with a hand near them, per track, with and without face landmarks (the turn gate)."""
    frames = read_frames(path)
    faces, meshed = tracked_faces(frames)
    out: dict = {"clip": path.name, "frames": len(frames), "faces": sum(len(f) for f in faces)}
    for name, runs in (("boxes_only", faces), ("with_landmarks", meshed)):
        ms, per_track = [], {}
        with HandOccluders(complexity=complexity) as occ:
            for i, (image, found) in enumerate(zip(frames, runs)):
                t0 = time.perf_counter()
                occluders = occ.occluders(image, found)
                if len(found):
                    ms.append((time.perf_counter() - t0) * 1000 / len(found))
                for tid, occluder in zip(found.track_id, occluders):
                    if occluder.hands_found:
                        per_track[int(tid)] = per_track.get(int(tid), 0) + 1
                        if name == "with_landmarks" and i % 3 == 0:
                            pairs.append(sheet_pair(image, occluder, f"f{i} t{int(tid)} hands {occluder.hands_found}"))
        out[name] = {"faces_with_hands": sum(per_track.values()), "per_track": per_track,
                     "ms_per_face": round(float(np.mean(ms)), 2)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--complexities", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--stage", default="stage_multi_person_cuts.mp4")
    parser.add_argument("--sheets", type=Path, help="write contact sheets (PNG) to this folder")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "hands.json")
    args = parser.parse_args()
    labels = json.loads(LABELS.read_text())["frames"]
    frames = read_frames(SAMPLE)
    faces = tracked_faces(frames)[1]  # with landmarks, as the pipeline has them
    result: dict = {"argv": public_argv(), **machine(), "labelled_frames": len(labels), "tracked": [], "static": []}
    for complexity in args.complexities:
        pairs: list[np.ndarray] = []
        row = run_sample(frames, faces, labels, complexity, pairs)
        result["tracked"].append(row)
        result["static"].append(run_static(frames, labels, complexity))
        if args.sheets:
            write_sheet(pairs, args.sheets / f"hands_sample_c{complexity}.png")
    print_tables(result)
    stage = shared_clip(args.stage)
    if stage.exists():
        pairs = []
        result["stage"] = run_stage(stage, max(args.complexities), pairs)
        s = result["stage"]
        print(f"\n{s['clip']}: {s['faces']} faces in {s['frames']} frames (complexity {max(args.complexities)})")
        for name in ("boxes_only", "with_landmarks"):
            print(f"  {name:15} {s[name]['faces_with_hands']:4d} faces with a hand near them, "
                  f"{s[name]['ms_per_face']:.1f} ms per face; frames per track {s[name]['per_track']}")
        if args.sheets:
            write_sheet(pairs, args.sheets / "hands_stage.png")
    else:
        print(f"\n{args.stage}: not found (is ../shared/data present?), skipped")
    write_json(args.out, result)
    return 0


def print_tables(result: dict) -> None:
    tracked, static = result["tracked"], result["static"]
    print(f"{'frame':>6} " + " ".join(f"{'c' + str(t['complexity']) + ' recall/leak':>17}" for t in tracked)
          + " " + " ".join(f"{'static c' + str(s['complexity']):>14}" for s in static))
    for rows in zip(*(t["frames"] for t in tracked), *(s["frames"] for s in static)):
        print(f"{rows[0]['frame']:6d} " + " ".join(f"{r['recall']:11.2f}/{r['leak']:.2f}" for r in rows[:len(tracked)])
              + " " + " ".join(f"{r['recall']:9.2f}/{r['leak']:.2f}" for r in rows[len(tracked):]))
    print(f"{'mean':>6} " + " ".join(f"{t['mean']['recall']:10.3f}/{t['mean']['leak']:.3f}" for t in tracked)
          + " " + " ".join(f"{s['mean']['recall']:8.3f}/{s['mean']['leak']:.3f}" for s in static))
    for t in tracked:
        print(f"c{t['complexity']} landmark capsules alone (radius: recall/leak): "
              + ", ".join(f"{r}: {v[0]:.3f}/{v[1]:.3f}" for r, v in t["capsules_only"].items()))
    print(f"\n{'complexity':>10} {'hand ms':>8} {'no-hand ms':>10} {'mask ms':>8} {'found':>6} {'false':>6} "
          f"{'static ms':>9}   (per face)")
    for t, s in zip(tracked, static):
        print(f"{t['complexity']:10d} {t['ms_per_face_hands_tracked']:8.1f} {t['ms_per_face_no_hand']:10.1f} "
              f"{t['ms_per_face_mask']:8.1f} {t['hand_found_share']:6.2f} {t['false_hands_outside_hand_frames']:6d} "
              f"{s['ms_per_face']:9.1f}")


if __name__ == "__main__":
    raise SystemExit(main())
