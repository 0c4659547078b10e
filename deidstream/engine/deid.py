"""Per frame, per face: the surrogate if it is safe to render, else the fallback (fail closed).

A face is rendered by G_3d only when its person has a locked surrogate and this frame gives
plausible landmarks for it (found, on the tracked box, wide enough, not turned too far);
every other tracked face, coasting faces and faces back-filled into earlier frames get the
fallback anonymiser. Faces of people on the keep list are left as they are.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import cv2
import numpy as np

from deidstream.config import GeneratorConfig
from deidstream.engine.anonymizers import FaceAnonymizer
from deidstream.engine.generator.aux import encode_aux
from deidstream.engine.generator.compositor import RenderedFace
from deidstream.engine.generator.face_render import FaceRenderer
from deidstream.engine.generator.fast import AuxCode
from deidstream.engine.generator.masks import interior_mask
from deidstream.geometry.boxes import extent_iou, iou_matrix, share_inside
from deidstream.report import FALLBACK, KEPT, RENDERED, WIDE_PX
from deidstream.types import FaceDetections, Person

log = logging.getLogger(__name__)
MIN_LANDMARK_IOU = 0.25  # landmarks' box against the tracked box: below this they describe another face
BEHIND_SHARE = 0.5  # of a face's box inside a wider face's fallback region: it is behind that face...
NEARER = 1.3  # ...when that face is this many times as wide (nearer the camera)
BEHIND = "behind a face given the fallback"


def behind(boxes: np.ndarray, front: np.ndarray, fallback: FaceAnonymizer) -> np.ndarray:
    """(n,) bool: which of the (n, 4) ``boxes`` (faces to be drawn) lie mostly behind a nearer face given the
    ``fallback``: one of the (m, 4) ``front`` boxes (faces detected in this frame, not coasting), ``NEARER``
    times as wide, whose hidden region covers at least ``BEHIND_SHARE`` of their box. Such a face is hidden with
    it: drawn over the nearer face's blur, a surrogate showed as a sharp face inside a blurred disc
    (crowd_1080p, a woman behind a boy). A coasting box, or one about as wide (a second box on the same face),
    does not hide a surrogate: it is drawn over them."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    front = np.asarray(front, np.float32).reshape(-1, 4)
    if not len(boxes) or not len(front):
        return np.zeros(len(boxes), bool)
    regions = fallback.regions(FaceDetections(front, np.ones(len(front), np.float32)))
    inside = share_inside(boxes, regions)  # (boxes, front)
    wider = (front[:, 2] - front[:, 0])[None, :] >= NEARER * (boxes[:, 2] - boxes[:, 0])[:, None]
    return (wider & (inside >= BEHIND_SHARE)).any(axis=1)


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
        # what each face of the last frame given to ``apply`` got, in its order: RENDERED, FALLBACK or KEPT
        self.outcomes: list[str] = []
        mesh = renderer.model.mesh
        self._weights = mesh.weights

    def apply(self, image: np.ndarray, frame: FrameFaces) -> np.ndarray:
        """Hide every face of ``frame`` in ``image`` (RGB, in place); returns the (n, 4) regions
        that changed: each rendered face's render box, then the regions given the fallback.

        Where a fallback region meets a face to be rendered (a false or coasting box beside it), the
        fallback goes on first and the surrogate is blended over it, lit and toned from the frame as it
        was: the surrogate stays whole, and its soft edges blend with hidden pixels, not real ones. A face
        mostly behind a nearer one given the fallback is hidden with it (:meth:`_not_behind`)."""
        boxes: list[np.ndarray] = []
        planned = []  # (index, box, points, person, in_front, aux) of the faces to render
        seen_hidden: list[np.ndarray] = []  # boxes given the fallback where a face was detected in this frame
        faces = frame.faces
        ids = faces.track_id if faces.track_id is not None else [None] * len(faces)
        self.outcomes = []
        for i, (box, tid) in enumerate(zip(faces.xyxy, ids)):
            person = self.people_by_track.get(int(tid)) if tid is not None else None
            if person is not None and person.keep:
                self.counts.kept += 1
                self.outcomes.append(KEPT)
                continue
            points = faces.landmark(i)
            aux = self._plan(box, points, person)
            self.outcomes.append(FALLBACK if aux is None else RENDERED)
            if aux is None:
                boxes.append(box)
                if faces.coasting is None or not faces.coasting[i]:
                    seen_hidden.append(box)
            else:
                planned.append((i, box, points, person, frame.in_front[i] if i < len(frame.in_front) else None, aux))
        planned = self._not_behind(planned, seen_hidden, boxes)
        hide = np.concatenate([np.array(boxes, np.float32).reshape(-1, 4), frame.backfill]).astype(np.float32)
        hidden_regions = np.zeros((0, 4), np.float32)
        source = image
        if len(hide):
            if self.fallback is None:
                raise ValueError("this Deidentifier renders single faces only (no fallback); use render_face")
            hidden = FaceDetections(hide, np.ones(len(hide), np.float32))
            if planned and (iou_matrix(self.fallback.regions(hidden), np.array([p[1] for p in planned])) > 0).any():
                source = image.copy()  # the frame as it was: the surrogates' light, tone and hands come from it
            hidden_regions = self.fallback.apply(image, hidden)
        drawn = []
        for _, box, points, person, in_front, aux in planned:
            if source is not image:  # the face's own eye openings and mouth interior show through its surrogate
                _restore_interior(image, source, points)
            face = self.renderer.paint(image, points, person.shape, person.surrogate, aux, in_front, source=source)
            self.counts.render(float(box[2] - box[0]))
            if (bounds := face.bounds(image.shape)) is not None:
                drawn.append(bounds)
        return np.concatenate([np.array(drawn, np.float32).reshape(-1, 4), hidden_regions])

    def _not_behind(self, planned: list, seen: list[np.ndarray], hidden: list[np.ndarray]) -> list:
        """``planned`` less the faces mostly behind a nearer one given the fallback (:func:`behind`); those are
        hidden too (their box joins ``hidden``)."""
        if not planned or not seen or self.fallback is None:
            return planned
        mask = behind(np.array([plan[1] for plan in planned]), np.array(seen, np.float32), self.fallback)
        kept = []
        for plan, hide in zip(planned, mask):
            if hide:
                self.outcomes[plan[0]] = FALLBACK
                self.counts.fall_back(BEHIND, float(plan[1][2] - plan[1][0]))
                hidden.append(plan[1])
            else:
                kept.append(plan)
        return kept

    def render_face(self, image: np.ndarray, box: np.ndarray, points: np.ndarray | None,
                    person: Person | None,
                    in_front: tuple[np.ndarray, tuple[int, int]] | None = None) -> RenderedFace | None:
        """Render one face with its person's surrogate if that is safe and return what was blended
        (its ``bounds`` are where pixels may have changed); None (counted with the reason) leaves
        it to the caller's fallback."""
        aux = self._plan(box, points, person)
        if aux is None:
            return None
        face = self.renderer.paint(image, points, person.shape, person.surrogate, aux, in_front)  # type: ignore[union-attr,arg-type]
        self.counts.render(float(box[2] - box[0]))
        return face

    def _plan(self, box: np.ndarray, points: np.ndarray | None, person: Person | None) -> AuxCode | None:
        """The face's pose and expression code if it may be rendered; None (counted with the reason) if not."""
        reason = self.why_not(person, points, box)
        aux = None
        if reason is None:  # the pose is fitted once: for the yaw check here and for the render
            aux = encode_aux(points, person.shape, self._weights)  # type: ignore[arg-type,union-attr]
            if abs(aux.yaw_pitch_roll()[0]) > self.config.max_yaw_deg:
                reason = "turned too far"
        if reason is not None:
            self.counts.fall_back(reason, float(box[2] - box[0]))
            return None
        return aux

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
        if extent_iou(points, box) < MIN_LANDMARK_IOU:
            return "implausible landmarks"
        return None


def _restore_interior(image: np.ndarray, source: np.ndarray, points: np.ndarray) -> None:
    """Put back ``source``'s pixels in the eye openings and mouth interior of the face with ``points``
    (what its surrogate keeps of the subject in every frame), where a fallback went over them."""
    h, w = image.shape[:2]
    lo = np.maximum(np.floor(points[:, :2].min(0)).astype(int) - 2, 0)
    hi = np.minimum(np.ceil(points[:, :2].max(0)).astype(int) + 2, (w, h))
    if np.any(hi <= lo):
        return
    (x0, y0), (x1, y1) = lo, hi
    keep = interior_mask(points[:, :2], (y1 - y0, x1 - x0), offset=(x0, y0))
    cv2.copyTo(source[y0:y1, x0:x1], keep, image[y0:y1, x0:x1])
