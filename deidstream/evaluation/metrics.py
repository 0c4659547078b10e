"""Privacy and utility of an anonymised video, per face, with the paper's definitions.

Faces are those an independent detector (dlib, not MediaPipe) finds in the *original*; each
is compared with the same place in the output, aligned by the original's landmarks:
ID distance (dlib ResNet descriptor, the paper's "FR"; higher = more private), the fraction
re-identified (< 0.6), ID consistency (mean pairwise distance of one person's output
descriptors; lower = the surrogate stays one person), leak rate (frames where any output
face is recognised as any input identity), face detectability FD (the detector still finds
a face there, IoU >= 0.3), PD / PSNR / SSIM over the face box, temporal flicker, and
coverage (faces left essentially unaltered).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path

import cv2
import numpy as np

from deidstream.evaluation.align import Comparison, FramePair, StreamFacts, aligned_pairs
from deidstream.geometry.boxes import expand, iou_matrix, pixel_bounds
from deidstream.tracking.recognition import SAME_PERSON, DlibRecognizer

log = logging.getLogger(__name__)

FD_IOU = 0.3
UNALTERED_SSIM = 0.9  # a face box this similar to the original ...
UNALTERED_PD = 5.0  # ... and this close in mean absolute difference was not anonymised
PSNR_CAP = 99.0  # identical boxes have infinite PSNR; JSON holds this instead
MIN_BOX = 8  # pixels; smaller boxes are skipped for pixel metrics
CROP = 112  # contact-sheet tile size


@dataclass(slots=True)
class FaceRecord:
    frame: int
    time: float
    box: list[int]
    id_distance: float
    detected_in_output: bool
    pd: float
    psnr: float
    ssim: float
    unaltered: bool
    change_output: float | None = None
    change_original: float | None = None
    identity: int = -1


@dataclass(slots=True)
class Evaluation:
    """Everything ``deidstream evaluate`` measures; ``summary`` holds the headline numbers."""

    original: str
    output: str
    detector: str
    every: int
    comparison: Comparison
    faces: list[FaceRecord] = field(default_factory=list)
    frames_sampled: int = 0
    frames_with_faces: int = 0
    leaking_frames: list[int] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    identities: list[dict] = field(default_factory=list)
    worst: list[tuple[float, int, np.ndarray, np.ndarray]] = field(default_factory=list)  # for the contact sheet

    def to_dict(self) -> dict:
        return {
            "original": self.original, "output": self.output, "independent_detector": self.detector,
            "recogniser": "dlib ResNet face descriptor (128-d), same person below 0.6",
            "every_kth_frame": self.every, "comparison": self.comparison.to_dict(),
            "summary": self.summary, "identities": self.identities,
            "leaking_frames": self.leaking_frames, "faces": [asdict(f) for f in self.faces],
        }


def _box_metrics(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    pd = float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())
    mse = float(((a.astype(np.float32) - b.astype(np.float32)) ** 2).mean())
    psnr = PSNR_CAP if mse == 0 else min(PSNR_CAP, 10 * np.log10(255.0 ** 2 / mse))
    ga, gb = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
    ssim = float(cv2.quality.QualitySSIM_compute(ga, gb)[0][0])
    return pd, float(psnr), ssim


def _mean_change(now: np.ndarray, before: np.ndarray) -> float:
    return float(np.abs(now.astype(np.int16) - before.astype(np.int16)).mean())


class Evaluator:
    """Runs the comparison; ``every`` samples every k-th frame (flicker uses the frame before it)."""

    def __init__(self, recognizer: DlibRecognizer, every: int = 5, keep_worst: int = 12) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.rec = recognizer
        self.every = every
        self.keep_worst = keep_worst

    def run(self, original: str | Path, output: str | Path) -> Evaluation:
        started = time.perf_counter()
        original, output = Path(original), Path(output)
        comparison = Comparison(StreamFacts(), StreamFacts())
        ev = Evaluation(str(original), str(output), self.rec.detector_name, self.every, comparison)
        gallery, outputs, out_frame, previous = [], [], [], None
        for pair in aligned_pairs(original, output, comparison):
            if pair.index % self.every == 0:
                self._sample(pair, previous, ev, gallery, outputs, out_frame)
            previous = pair
        comparison.finish(original, output)
        self._finish(ev, np.array(gallery).reshape(-1, 128), np.array(outputs).reshape(-1, 128), out_frame)
        ev.summary["seconds"] = round(time.perf_counter() - started, 2)
        return ev

    def _sample(self, pair: FramePair, previous: FramePair | None, ev: Evaluation,
                gallery: list, outputs: list, out_frame: list) -> None:
        ev.frames_sampled += 1
        faces = self.rec.detect(pair.original)
        found_out = self.rec.detect(pair.output)
        out_boxes = np.array([f.box for f in found_out], np.float32).reshape(-1, 4)
        if faces:
            ev.frames_with_faces += 1
            d_orig = self.rec.describe(pair.original, faces)
            d_out = self.rec.describe(pair.output, faces)  # same place, same alignment
            boxes = np.array([f.box for f in faces], np.float32)
            seen = iou_matrix(boxes, out_boxes).max(axis=1) >= FD_IOU if len(out_boxes) else np.zeros(len(faces), bool)
            for face, do, da, detected in zip(faces, d_orig, d_out, seen):
                distance = float(np.linalg.norm(do - da))
                ev.faces.append(self._record(pair, previous, face.box, distance, bool(detected)))
                self._keep_if_worst(ev, pair, face.box, distance)
            gallery.extend(d_orig)
            outputs.extend(d_out)
            out_frame.extend([pair.index] * len(faces))
        # Output faces elsewhere (not at an original face's place) can leak too.
        if len(out_boxes):
            inputs = np.array([f.box for f in faces], np.float32).reshape(-1, 4)
            elsewhere = [f for f, b in zip(found_out, out_boxes)
                         if not len(inputs) or iou_matrix(b[None], inputs).max() < FD_IOU]
            extra = self.rec.describe(pair.output, elsewhere)
            outputs.extend(extra)
            out_frame.extend([pair.index] * len(extra))

    def _keep_if_worst(self, ev: Evaluation, pair: FramePair, box: np.ndarray, distance: float) -> None:
        """Keep small crops of the faces with the lowest ID distance (the least private)."""
        if len(ev.worst) >= self.keep_worst and distance >= ev.worst[-1][0]:
            return
        h, w = pair.original.shape[:2]
        bounds = pixel_bounds(expand(box, 0.2)[0], w, h)
        if bounds is None:
            return
        x0, y0, x1, y1 = bounds
        crops = [cv2.resize(img[y0:y1, x0:x1], (CROP, CROP), interpolation=cv2.INTER_AREA)
                 for img in (pair.original, pair.output)]
        ev.worst.append((distance, pair.index, *crops))
        ev.worst.sort(key=lambda item: item[0])
        del ev.worst[self.keep_worst:]

    def _record(self, pair: FramePair, previous: FramePair | None, box: np.ndarray, distance: float,
                detected: bool) -> FaceRecord:
        h, w = pair.original.shape[:2]
        bounds = pixel_bounds(box, w, h)
        pd = psnr = ssim = float("nan")
        change_out = change_in = None
        if bounds is not None and min(bounds[2] - bounds[0], bounds[3] - bounds[1]) >= MIN_BOX:
            x0, y0, x1, y1 = bounds
            a, b = pair.original[y0:y1, x0:x1], pair.output[y0:y1, x0:x1]
            pd, psnr, ssim = _box_metrics(a, b)
            if previous is not None and previous.index == pair.index - 1:
                change_out = _mean_change(b, previous.output[y0:y1, x0:x1])
                change_in = _mean_change(a, previous.original[y0:y1, x0:x1])
        unaltered = bool(ssim >= UNALTERED_SSIM and pd <= UNALTERED_PD)
        return FaceRecord(pair.index, round(pair.time, 4), [int(v) for v in box], round(distance, 4), detected,
                          round(pd, 3), round(psnr, 3), round(ssim, 4), unaltered,
                          None if change_out is None else round(change_out, 3),
                          None if change_in is None else round(change_in, 3))

    def _finish(self, ev: Evaluation, gallery: np.ndarray, outputs: np.ndarray, out_frame: list[int]) -> None:
        labels = self.rec.cluster(gallery) if len(gallery) else np.zeros(0, int)
        for face, label in zip(ev.faces, labels):
            face.identity = int(label)
        if len(outputs) and len(gallery):
            dist = np.linalg.norm(outputs[:, None, :] - gallery[None, :, :], axis=2).min(axis=1)
            ev.leaking_frames = sorted({f for f, d in zip(out_frame, dist) if d < SAME_PERSON})
        ev.identities = _identities(ev.faces, gallery, outputs[: len(gallery)])
        ev.summary = _summary(ev)


def _mean_pairwise(vectors: np.ndarray) -> float | None:
    if len(vectors) < 2:
        return None
    return float(np.mean([np.linalg.norm(a - b) for a, b in combinations(vectors, 2)]))


def _identities(faces: list[FaceRecord], gallery: np.ndarray, outputs: np.ndarray) -> list[dict]:
    """Per original identity: its faces, the spread of its output descriptors and of the input's own."""
    out = []
    labels = np.array([f.identity for f in faces])
    for label in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels == label)
        out.append({"identity": int(label), "faces": int(len(idx)),
                    "frames": [faces[i].frame for i in idx][:1] + [faces[i].frame for i in idx][-1:],
                    "output_spread": _round(_mean_pairwise(outputs[idx])),
                    "original_spread": _round(_mean_pairwise(gallery[idx]))})
    return out


def _round(v: float | None, n: int = 4) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), n)


def _nanmean(values: list[float]) -> float | None:
    arr = np.array([v for v in values if v is not None], np.float64)
    arr = arr[np.isfinite(arr)]
    return _round(arr.mean()) if len(arr) else None


def _summary(ev: Evaluation) -> dict:
    faces = ev.faces
    n = len(faces)
    spreads = [i["output_spread"] for i in ev.identities if i["output_spread"] is not None]
    changes_out = [f.change_output for f in faces if f.change_output is not None]
    changes_in = [f.change_original for f in faces if f.change_original is not None]
    unaltered_frames = sorted({f.frame for f in faces if f.unaltered})
    return {
        "frames_sampled": ev.frames_sampled,
        "frames_with_faces": ev.frames_with_faces,
        "faces": n,
        "mean_id_distance": _nanmean([f.id_distance for f in faces]),
        "reidentified_fraction": _round(sum(f.id_distance < SAME_PERSON for f in faces) / n) if n else None,
        "leak_rate": _round(len(ev.leaking_frames) / ev.frames_with_faces) if ev.frames_with_faces else None,
        "identities": len(ev.identities),
        "id_consistency": _round(float(np.mean(spreads))) if spreads else None,
        "face_detectability": _round(sum(f.detected_in_output for f in faces) / n) if n else None,
        "pd": _nanmean([f.pd for f in faces]),
        "psnr": _nanmean([f.psnr for f in faces]),
        "ssim": _nanmean([f.ssim for f in faces]),
        "flicker_ratio": _round(float(np.mean(changes_out)) / max(float(np.mean(changes_in)), 1e-6))
        if changes_out else None,
        "unaltered_faces": sum(f.unaltered for f in faces),
        "frames_with_unaltered_face": len(unaltered_frames),
        "unaltered_frame_indices": unaltered_frames[:50],
    }
