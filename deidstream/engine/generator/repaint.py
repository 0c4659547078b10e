"""Live: a face's last render, moved to where the face is now, for frames without time for a new one.

With several locked faces in view, rendering each of them in every frame does not fit a 30 fps
frame on two cores (a new render and blend: 12.9-18.6 ms for a 256-px face here, a repaint 2.1-3.1 ms;
`benchmarks/bench_generator.py`). :class:`Repainter` lets the live path render each face in turn
and give the others, in between, the pixels its last render blended in: warped by the similarity
that takes that frame's anchor landmarks (:func:`anchors_of`; FaceMesh's, or followed by optical
flow, :mod:`deidstream.engine.generator.follow`) to this frame's and blended with that render's own alpha (eye
openings and mouth included). A paint older than ``max_age`` frames, or a face that moved in a way
a similarity does not explain (a turn, a fast change of expression), is not repainted: the caller
renders it anew or falls back.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from deidstream.engine.generator.compositor import RenderedFace

# stable points for the similarity: the face oval, brows, nose ridge and eye corners of the 468
ANCHORS = np.array([10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
                    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
                    6, 197, 195, 5, 4, 33, 133, 362, 263, 70, 300])


def anchors_of(points: np.ndarray) -> np.ndarray:
    """The (47, 2) anchors of (468, 2|3) FaceMesh landmarks."""
    return np.ascontiguousarray(points[ANCHORS, :2], np.float32)


def rigid_motion(before: np.ndarray, after: np.ndarray, *, max_scale: float, max_error: float) -> np.ndarray | None:
    """The 2x3 similarity taking anchors ``before`` to ``after``, or None where it does not explain
    the motion: a change of size over ``max_scale``, or a mean anchor error over ``max_error`` times
    the face's width (a turn, a change of expression)."""
    m, _ = cv2.estimateAffinePartial2D(before, after, method=cv2.LMEDS)
    if m is None:
        return None
    scale = float(np.hypot(m[0, 0], m[1, 0]))
    width = float(np.ptp(after[:, 0]))
    moved = before @ m[:, :2].T + m[:, 2]
    if abs(scale - 1.0) > max_scale or np.linalg.norm(moved - after, axis=1).mean() > max_error * width:
        return None
    return m


@dataclass(frozen=True, slots=True)
class Paint:
    """One face as it was blended: the frame's pixels after blending and the alpha, over a crop."""

    frame: int
    points: np.ndarray  # (k, 2) the anchors, frame pixels
    pixels: np.ndarray  # (h, w, 3) uint8
    alpha: np.ndarray  # (h, w) float32 in [0, 1]
    x0: int
    y0: int


class Repainter:
    """Remembers each track's last blended face and repaints it into a later frame.

    ``max_age``: frames a paint may be reused for; ``max_error``: the largest mean anchor error
    after the similarity, as a fraction of the face's width; ``max_scale``: the largest change of
    size between the two frames."""

    def __init__(self, *, max_age: int = 2, max_error: float = 0.03, max_scale: float = 0.1) -> None:
        self.max_age = max_age
        self.max_error = max_error
        self.max_scale = max_scale
        self._paints: dict[int, Paint] = {}
        self.repainted = 0

    def remember(self, track_id: int, frame_index: int, image: np.ndarray, anchors: np.ndarray,
                 face: RenderedFace) -> None:
        """Keep what ``face`` left in ``image`` (already blended) for the track, with the face's
        ``anchors`` (:func:`anchors_of`) there."""
        inside = face.bounds(image.shape)
        if inside is None:
            return
        x0, y0, x1, y1 = inside
        alpha = np.ascontiguousarray(face.alpha[y0 - face.y0:y1 - face.y0, x0 - face.x0:x1 - face.x0], np.float32)
        self._paints[track_id] = Paint(frame_index, np.asarray(anchors, np.float32),
                                       image[y0:y1, x0:x1].copy(), alpha, x0, y0)

    def forget_except(self, track_ids: set[int]) -> None:
        for gone in set(self._paints) - track_ids:
            del self._paints[gone]

    def repaint(self, track_id: int, frame_index: int, image: np.ndarray, anchors: np.ndarray) -> RenderedFace | None:
        """Blend the track's last paint into ``image`` (in place) at the face's ``anchors`` now; returns
        what was blended, moved (its ``bounds``: the box that changed), or None (nothing recent, or
        the face moved too much)."""
        paint = self._paints.get(track_id)
        if paint is None or not 0 < frame_index - paint.frame <= self.max_age:
            return None
        m = rigid_motion(paint.points, np.asarray(anchors, np.float32), max_scale=self.max_scale,
                         max_error=self.max_error)
        if m is None:
            return None
        h, w = image.shape[:2]
        ph, pw = paint.alpha.shape
        corners = np.array([[paint.x0, paint.y0], [paint.x0 + pw, paint.y0], [paint.x0, paint.y0 + ph],
                            [paint.x0 + pw, paint.y0 + ph]], np.float32) @ m[:, :2].T + m[:, 2]
        x0, y0 = np.floor(corners.min(0)).astype(int)
        x1, y1 = np.ceil(corners.max(0)).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x0 >= x1 or y0 >= y1:
            return None
        # crop pixels → frame pixels, then into the destination box
        local = m.copy()
        local[:, 2] += m[:, :2] @ np.array([paint.x0, paint.y0], np.float64) - np.array([x0, y0], np.float64)
        size = (x1 - x0, y1 - y0)
        pixels = cv2.warpAffine(paint.pixels, local, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.warpAffine(paint.alpha, local, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        roi = image[y0:y1, x0:x1]
        roi[...] = cv2.blendLinear(pixels, np.ascontiguousarray(roi), alpha, 1.0 - alpha)
        self.repainted += 1
        return RenderedFace(pixels, alpha, x0, y0)
