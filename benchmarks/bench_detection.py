"""Detection recall and precision on the hand-labelled VOC faces (IoU >= 0.5).

    python benchmarks/bench_detection.py [--threshold T] [--tile-size N] [--variants]

Reads ../shared/data/images/voc_faces_annotated/{training,testing}.xml (dlib's format),
runs the detector as the pipeline configures it (every model on every image), matches
detections to labelled boxes one-to-one (Hungarian on IoU), prints a table and writes
benchmarks/out/detection.json. ``dogs.jpg`` counts as a negative image (false positives).
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

ROOT = Path(__file__).resolve().parents[1]
VOC = ROOT.parent / "shared" / "data" / "images" / "voc_faces_annotated"
sys.path.insert(0, str(ROOT))

from benchlib import public_argv, write_json

from deidstream.config import DetectorConfig
from deidstream.geometry.boxes import iou_matrix
from deidstream.tracking.detector import MediaPipeDetector


def load_labels(folder: Path) -> dict[str, np.ndarray]:
    labels: dict[str, np.ndarray] = {}
    for name in ("training.xml", "testing.xml"):
        for image in ET.parse(folder / name).getroot().iter("image"):
            boxes = [[int(b.get("left")), int(b.get("top")), int(b.get("left")) + int(b.get("width")),
                      int(b.get("top")) + int(b.get("height"))] for b in image.iter("box")
                     if b.get("ignore") != "1"]
            labels[image.get("file")] = np.array(boxes, np.float32).reshape(-1, 4)
    if (folder / "dogs.jpg").exists():
        labels.setdefault("dogs.jpg", np.zeros((0, 4), np.float32))
    return labels


def evaluate(config: DetectorConfig, labels: dict[str, np.ndarray], folder: Path) -> dict:
    tp = fp = fn = 0
    per_image = []
    with MediaPipeDetector(config) as det:
        for name, truth in sorted(labels.items()):
            image = cv2.cvtColor(cv2.imread(str(folder / name)), cv2.COLOR_BGR2RGB)
            found = det.detect(image).xyxy
            matched = 0
            if len(truth) and len(found):
                iou = iou_matrix(truth, found)
                rows, cols = linear_sum_assignment(-iou)
                matched = int((iou[rows, cols] >= 0.5).sum())
            tp += matched
            fn += len(truth) - matched
            fp += len(found) - matched
            per_image.append({"image": name, "faces": len(truth), "found": len(found), "matched": matched})
    return {"recall": tp / max(tp + fn, 1), "precision": tp / max(tp + fp, 1), "tp": tp, "fp": fp, "fn": fn,
            "images": per_image}


def main() -> int:
    ap = argparse.ArgumentParser(description="face detection recall/precision on voc_faces_annotated")
    ap.add_argument("--threshold", type=float, default=DetectorConfig().threshold)
    ap.add_argument("--tile-size", type=int, default=DetectorConfig().tile_size)
    ap.add_argument("--variants", action="store_true", help="also each model alone, for comparison")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "detection.json")
    args = ap.parse_args()
    if not VOC.exists():
        print(f"missing {VOC} (is ../shared/data present?)", file=sys.stderr)
        return 2
    labels = load_labels(VOC)
    base = dict(threshold=args.threshold, tile_size=args.tile_size, full_range_every=1)
    variants = {"fused (default)": DetectorConfig(**base)}
    if args.variants:
        variants["short-range only"] = DetectorConfig(**{**base, "full_range": False})
        variants["full-range only"] = DetectorConfig(**{**base, "short_range": False})
    results = {}
    print(f"{'detector':20s} {'recall':>7s} {'precision':>9s} {'tp':>4s} {'fp':>4s} {'fn':>4s}")
    for name, cfg in variants.items():
        r = evaluate(cfg, labels, VOC)
        results[name] = r
        print(f"{name:20s} {r['recall']:7.3f} {r['precision']:9.3f} {r['tp']:4d} {r['fp']:4d} {r['fn']:4d}")
    write_json(args.out, {"argv": public_argv(), "iou": 0.5, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
