"""Privacy and utility of an anonymised video, per face, with the paper's definitions.

Faces are those an independent detector (dlib, not MediaPipe) finds in the *original*; each
is compared with the same place in the output, aligned by the original's landmarks:
ID distance (dlib ResNet descriptor, the paper's "FR"; higher = more private), the fraction
re-identified (< 0.6), ID consistency (mean pairwise distance of one person's output
descriptors; lower = the surrogate stays one person), leak rate (frames where any output
face is recognised as any input identity), face detectability FD (the detector still finds
a face there, IoU >= 0.3), PD / PSNR / SSIM over the face box, temporal flicker, and
coverage (faces left essentially unaltered). What a viewer sees of the same faces (apparent sex, skin tone
and skin colour, sharpness, eye and mouth movement) comes from :mod:`deidstream.evaluation.viewer`; a
rank-1 identification attack against a gallery of real people from :mod:`deidstream.evaluation.attack`.
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
from deidstream.evaluation.attack import Gallery, rank1_hits
from deidstream.evaluation.judge import SAME_PERSON, DlibRecognizer
from deidstream.evaluation.outcomes import FaceOutcomes, outcome_summary
from deidstream.evaluation.viewer import ViewerMeasures, patchy, viewer_summary
from deidstream.geometry.boxes import expand, iou_matrix, pixel_bounds
from deidstream.tracking.attributes import AttributeModel

log = logging.getLogger(__name__)

FD_IOU = 0.3
UNALTERED_SSIM = 0.9  # a face box this similar to the original ...
UNALTERED_PD = 5.0  # ... and this close in mean absolute difference was not anonymised
PSNR_CAP = 99.0  # identical boxes have infinite PSNR; JSON holds this instead
MIN_BOX = 8  # pixels; smaller boxes are skipped for pixel metrics
CROP = 112  # contact-sheet tile size
DISTANCE_BIN = 0.05  # ID distances this close rank alike on the contact sheet; sex and skin tone break the tie


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
    # what a viewer sees (deidstream.evaluation.viewer): original vs output at the same place
    female_original: float | None = None
    female_output: float | None = None
    sex_agrees: bool | None = None
    age_original: float | None = None
    age_output: float | None = None
    ita_original: float | None = None
    ita_output: float | None = None
    delta_ita: float | None = None
    ita_band: bool | None = None  # tone read on the box band: the original's mesh found no face
    skin_share_original: float | None = None
    skin_share_output: float | None = None
    sharpness_original: float | None = None
    sharpness_output: float | None = None
    sharpness_ratio: float | None = None
    eye_original: float | None = None
    eye_output: float | None = None
    mouth_original: float | None = None
    mouth_output: float | None = None
    skin_delta_e: float | None = None
    off_colour_original: float | None = None  # share of the face's lit skin off the original's colours
    off_colour_output: float | None = None
    reidentified_by_attack: bool | None = None
    outcome: str | None = None  # what the anonymiser's run report says this face got (None: no report)

    @property
    def reidentified(self) -> bool:
        """Recognised as its subject: closer than 0.6, or found by the rank-1 attack."""
        return bool(self.id_distance < SAME_PERSON or self.reidentified_by_attack)

    @property
    def patchy(self) -> bool:
        """The output shows colour patches the original's face does not (``viewer.patchy``)."""
        return (self.off_colour_original is not None and self.off_colour_output is not None
                and patchy(self.off_colour_original, self.off_colour_output))

    def worst_first(self) -> tuple:
        """Sort key, least private first: re-identified, then lowest ID distance (in bins of
        ``DISTANCE_BIN``), then apparent sex changed, then colour patches, then largest skin-tone change."""
        return (not self.reidentified, round(self.id_distance / DISTANCE_BIN), bool(self.sex_agrees),
                not self.patchy, -(self.delta_ita or 0.0), self.id_distance)


@dataclass(slots=True)
class WorstFace:
    """A candidate for the contact sheet: the face's index in ``Evaluation.faces`` and its crops."""

    face: int
    original: np.ndarray
    output: np.ndarray


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
    unconfirmed_faces: int = 0  # HOG's faces in the original the CNN did not confirm (not counted)
    leaking_frames: list[int] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    identities: list[dict] = field(default_factory=list)
    worst: list[WorstFace] = field(default_factory=list)  # for the contact sheet, worst first
    attack: dict = field(default_factory=dict)  # the rank-1 attack's gallery, or why it was skipped

    def to_dict(self) -> dict:
        return {
            "original": self.original, "output": self.output, "independent_detector": self.detector,
            "recogniser": "dlib ResNet face descriptor (128-d), same person below 0.6",
            "attribute_model": "deidstream/tracking/models/attributes.npz (fitted on SFHQ hand labels)",
            "every_kth_frame": self.every, "comparison": self.comparison.to_dict(),
            "summary": self.summary, "attack": self.attack, "identities": self.identities,
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
    """Runs the comparison; ``every`` samples every k-th frame (flicker uses the frame before it);
    ``gallery``: other real people for the rank-1 attack (None: no attack, ``attack_note`` says why);
    ``outcomes``: what the anonymiser says each face got (its run report), for the surrogate coverage."""

    def __init__(self, recognizer: DlibRecognizer, every: int = 5, keep_worst: int = 12, *,
                 attributes: AttributeModel | None = None, gallery: Gallery | None = None,
                 attack_note: str = "no gallery given", outcomes: FaceOutcomes | None = None) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.rec = recognizer
        self.every = every
        self.keep_worst = keep_worst
        self.attributes = attributes
        self.gallery = gallery
        self.attack_note = attack_note
        self.outcomes = outcomes

    def run(self, original: str | Path, output: str | Path) -> Evaluation:
        started = time.perf_counter()
        original, output = Path(original), Path(output)
        comparison = Comparison(StreamFacts(), StreamFacts())
        ev = Evaluation(str(original), str(output), self.rec.detector_name, self.every, comparison)
        seen = _Seen()
        viewer = ViewerMeasures(self.attributes)
        try:
            previous = None
            for pair in aligned_pairs(original, output, comparison):
                if pair.index % self.every == 0:
                    self._sample(pair, previous, ev, seen, viewer)
                previous = pair
        finally:
            viewer.close()
        comparison.finish(original, output)
        self._finish(ev, seen)
        ev.summary["seconds"] = round(time.perf_counter() - started, 2)
        return ev

    def _sample(self, pair: FramePair, previous: FramePair | None, ev: Evaluation, seen: _Seen,
                viewer: ViewerMeasures) -> None:
        ev.frames_sampled += 1
        found = self.rec.detect(pair.original)
        faces = self.rec.confirmed(pair.original, found)
        ev.unconfirmed_faces += len(found) - len(faces)
        found_out = self.rec.detect(pair.output)
        out_boxes = np.array([f.box for f in found_out], np.float32).reshape(-1, 4)
        if faces:
            ev.frames_with_faces += 1
            d_orig = self.rec.describe(pair.original, faces)
            d_out = self.rec.describe(pair.output, faces)  # same place, same alignment
            boxes = np.array([f.box for f in faces], np.float32)
            detected = iou_matrix(boxes, out_boxes).max(axis=1) >= FD_IOU if len(out_boxes) \
                else np.zeros(len(faces), bool)
            looks = viewer.faces(pair.original, pair.output, boxes, d_orig, d_out)
            for box, do, da, found, look in zip(boxes, d_orig, d_out, detected, looks):
                record = self._record(pair, previous, box, float(np.linalg.norm(do - da)), bool(found))
                for key, value in look.items():
                    setattr(record, key, value)
                if self.outcomes is not None:
                    record.outcome = self.outcomes.at(pair.index, box)
                ev.faces.append(record)
                self._keep_if_worst(ev, pair, box)
            seen.originals.extend(d_orig)
            seen.at_place.extend(d_out)
            seen.outputs.extend(d_out)
            seen.out_frame.extend([pair.index] * len(faces))
        # Output faces elsewhere (not at an original face's place) can leak too.
        if len(out_boxes):
            inputs = np.array([f.box for f in faces], np.float32).reshape(-1, 4)
            elsewhere = [f for f, b in zip(found_out, out_boxes)
                         if not len(inputs) or iou_matrix(b[None], inputs).max() < FD_IOU]
            extra = self.rec.describe(pair.output, elsewhere)
            seen.outputs.extend(extra)
            seen.out_frame.extend([pair.index] * len(extra))

    def _keep_if_worst(self, ev: Evaluation, pair: FramePair, box: np.ndarray) -> None:
        """Keep small crops of the least private faces so far (three times the sheet: the attack,
        run at the end, may move some up)."""
        index = len(ev.faces) - 1
        key = ev.faces[index].worst_first()
        pool = 3 * self.keep_worst
        if len(ev.worst) >= pool and key >= ev.faces[ev.worst[-1].face].worst_first():
            return
        h, w = pair.original.shape[:2]
        bounds = pixel_bounds(expand(box, 0.2)[0], w, h)
        if bounds is None:
            return
        x0, y0, x1, y1 = bounds
        crops = [cv2.resize(img[y0:y1, x0:x1], (CROP, CROP), interpolation=cv2.INTER_AREA)
                 for img in (pair.original, pair.output)]
        ev.worst.append(WorstFace(index, *crops))
        ev.worst.sort(key=lambda item: ev.faces[item.face].worst_first())
        del ev.worst[pool:]

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

    def _finish(self, ev: Evaluation, seen: _Seen) -> None:
        gallery, at_place = seen.arrays("originals"), seen.arrays("at_place")
        outputs = seen.arrays("outputs")
        labels = self.rec.cluster(gallery) if len(gallery) else np.zeros(0, int)
        for face, label in zip(ev.faces, labels):
            face.identity = int(label)
        if len(outputs) and len(gallery):
            dist = np.linalg.norm(outputs[:, None, :] - gallery[None, :, :], axis=2).min(axis=1)
            ev.leaking_frames = sorted({f for f, d in zip(seen.out_frame, dist) if d < SAME_PERSON})
        ev.identities = _identities(ev.faces, gallery, at_place)
        if self.gallery is not None:
            hits = rank1_hits(at_place, labels, gallery, self.gallery.descriptors)
            for face, hit in zip(ev.faces, hits):
                face.reidentified_by_attack = bool(hit)
            ev.attack = {**self.gallery.facts(), "input_people": len(set(labels.tolist()))}
        else:
            ev.attack = {"skipped": self.attack_note}
        ev.worst.sort(key=lambda item: ev.faces[item.face].worst_first())
        del ev.worst[self.keep_worst:]
        ev.summary = _summary(ev)


@dataclass(slots=True)
class _Seen:
    """Descriptors gathered while sampling: the original faces, the output at their places, and every
    output face (at those places and elsewhere) with its frame."""

    originals: list = field(default_factory=list)
    at_place: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    out_frame: list = field(default_factory=list)

    def arrays(self, name: str) -> np.ndarray:
        return np.array(getattr(self, name), np.float32).reshape(-1, 128)


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
        "unconfirmed_faces": ev.unconfirmed_faces,
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
        **viewer_summary(faces),
        **outcome_summary(faces),
        "rank1_rate": _round(sum(bool(f.reidentified_by_attack) for f in faces) / n)
        if n and ev.attack.get("distractor_faces") is not None else None,
    }
