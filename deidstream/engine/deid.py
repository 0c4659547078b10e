"""Per frame, per face: the surrogate if it is safe to render, else the fallback (fail closed).

A face is rendered by G_3d only when its person has a locked surrogate and this frame gives
plausible landmarks for it (found, on the tracked box, wide enough, not turned too far);
every other tracked face, coasting faces and faces back-filled into earlier frames get the
fallback anonymiser. Faces of people on the keep list are left as they are.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from deidstream.config import GeneratorConfig
from deidstream.engine.anonymizers import FaceAnonymizer
from deidstream.engine.generator.aux import encode_aux
from deidstream.engine.generator.compositor import RenderedFace, covered_pixels, restore_covered
from deidstream.engine.generator.face_render import FaceRenderer
from deidstream.geometry.boxes import iou_matrix
from deidstream.types import FaceDetections, Person

log = logging.getLogger(__name__)
WIDE_PX = 64
MIN_LANDMARK_IOU = 0.25  # landmarks' box against the tracked box: below this they describe another face


@dataclass(frozen=True, slots=True)
class FrameFaces:
    """What is known of one frame's faces: the boxes to hide (with track ids, coasting flags and, where
    found, landmarks), and boxes of faces first found in a later frame (back-fill)."""

    index: int
    faces: FaceDetections
    backfill: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    detections: FaceDetections | None = None  # the detector's own boxes, for the report
    # per face, what is in front of it (hands: mask and its top-left in the frame), where looked for
    in_front: tuple[tuple[np.ndarray, tuple[int, int]] | None, ...] = ()


@dataclass(slots=True)
class FaceCounts:
    """What faces got; ``*_wide``: of faces at least ``WIDE_PX`` wide (the ones a viewer can recognise)."""

    rendered: int = 0
    fallback: int = 0
    kept: int = 0
    rendered_wide: int = 0
    fallback_wide: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def fall_back(self, reason: str, width: float) -> None:
        self.fallback += 1
        self.fallback_wide += int(width >= WIDE_PX)
        self.reasons[reason] = self.reasons.get(reason, 0) + 1

    def render(self, width: float) -> None:
        self.rendered += 1
        self.rendered_wide += int(width >= WIDE_PX)


class Deidentifier:
    """Applies the decision above to frames, given who each track is. Without a ``fallback`` only
    :meth:`render_face` may be used (the caller hides the faces it declines: the live scheduler)."""

    def __init__(self, renderer: FaceRenderer, fallback: FaceAnonymizer | None, config: GeneratorConfig,
                 people_by_track: dict[int, Person]) -> None:
        self.renderer = renderer
        self.fallback = fallback
        self.config = config
        self.people_by_track = people_by_track
        self.counts = FaceCounts()
        mesh = renderer.model.mesh
        self._weights = mesh.weights

    def apply(self, image: np.ndarray, frame: FrameFaces) -> np.ndarray:
        """Hide every face of ``frame`` in ``image`` (RGB, in place); returns the (n, 4) regions
        that changed: each rendered face's render box, then the regions given the fallback."""
        boxes: list[np.ndarray] = []
        drawn: list[RenderedFace] = []  # rendered faces with pixels inside the frame
        faces = frame.faces
        ids = faces.track_id if faces.track_id is not None else [None] * len(faces)
        for i, (box, tid) in enumerate(zip(faces.xyxy, ids)):
            person = self.people_by_track.get(int(tid)) if tid is not None else None
            if person is not None and person.keep:
                self.counts.kept += 1
                continue
            face = self.render_face(image, box, faces.landmark(i), person,
                                    frame.in_front[i] if i < len(frame.in_front) else None)
            if face is None:
                boxes.append(box)
            elif face.bounds(image.shape) is not None:
                drawn.append(face)
        hide = np.concatenate([np.array(boxes, np.float32).reshape(-1, 4), frame.backfill]).astype(np.float32)
        regions = np.array([face.bounds(image.shape) for face in drawn], np.float32).reshape(-1, 4)
        if len(hide):
            if self.fallback is None:
                raise ValueError("this Deidentifier renders single faces only (no fallback); use render_face")
            hidden = FaceDetections(hide, np.ones(len(hide), np.float32))
            surrogates = covered_pixels(image, drawn, self.fallback.regions(hidden))
            regions = np.concatenate([regions, self.fallback.apply(image, hidden)])
            restore_covered(image, surrogates)
        return regions

    def render_face(self, image: np.ndarray, box: np.ndarray, points: np.ndarray | None,
                    person: Person | None,
                    in_front: tuple[np.ndarray, tuple[int, int]] | None = None) -> RenderedFace | None:
        """Render one face with its person's surrogate if that is safe and return what was blended
        (its ``bounds`` are where pixels may have changed); None (counted with the reason) leaves
        it to the caller's fallback."""
        reason = self.why_not(person, points, box)
        aux = None
        if reason is None:  # the pose is fitted once: for the yaw check here and for the render
            aux = encode_aux(points, person.shape, self._weights)  # type: ignore[arg-type,union-attr]
            if abs(aux.yaw_pitch_roll()[0]) > self.config.max_yaw_deg:
                reason = "turned too far"
        if reason is not None:
            self.counts.fall_back(reason, float(box[2] - box[0]))
            return None
        face = self.renderer.paint(image, points, person.shape, person.surrogate, aux, in_front)  # type: ignore[union-attr,arg-type]
        self.counts.render(float(box[2] - box[0]))
        return face

    def why_not(self, person: Person | None, points: np.ndarray | None, box: np.ndarray) -> str | None:
        """Why this face may not show ``person``'s surrogate in this frame (None: it may): no locked
        surrogate, or landmarks missing, too small, or off the tracked box (then they describe another face)."""
        if person is None:
            return "no identity"
        if person.surrogate is None:
            return "not locked"
        if points is None:
            return "no landmarks"
        lo, hi = points[:, :2].min(0), points[:, :2].max(0)
        if hi[0] - lo[0] < self.config.min_face_px:
            return "too small"
        if iou_matrix(np.array([[*lo, *hi]]), box[None])[0, 0] < MIN_LANDMARK_IOU:
            return "implausible landmarks"
        return None
