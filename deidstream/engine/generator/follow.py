"""Live: where a locked face's anchor landmarks are now, by optical flow instead of FaceMesh.

When locked faces take turns at a new render, the others get their last render moved
(:mod:`deidstream.engine.generator.repaint`), which needs only where the anchor landmarks are now.
FaceMesh costs 4.8-6.5 ms per face and frame, Lucas-Kanade flow of the 47 anchors from the
previous frame 1.2-2.2 ms (128- and 256-px faces, two runs of ``python benchmarks/bench_generator.py
--only speed``); with two faces taking turns, four of every six faces need only their anchors. The flow
starts from FaceMesh's own landmarks and runs at most ``max_gap`` frames from them (a repaint's
age limit). Where a point is lost, or the flowed anchors are not the last FaceMesh anchors moved
by a similarity (a turn, a change of expression), there are no flowed anchors and the caller
runs FaceMesh after all: only a rigid motion is ever followed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from deidstream.engine.generator.repaint import rigid_motion

_LK = {"winSize": (21, 21), "maxLevel": 3,
       "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)}


@dataclass(frozen=True, slots=True)
class _Base:
    frame: int
    anchors: np.ndarray  # (47, 2) frame pixels in ``frame``
    grey: np.ndarray  # that frame's grey pixels over ``region``
    region: tuple[int, int, int, int]  # x0, y0, x1, y1
    mesh_anchors: np.ndarray  # the anchors FaceMesh gave last
    since_mesh: int  # frames since then


class AnchorFollower:
    """Per track: the anchors of the last frame, and the grey pixels around them, to flow from.

    ``max_gap``: frames flow may run after FaceMesh's landmarks; ``margin``: grey pixels kept
    around the anchors, as a fraction of their box; ``min_tracked``: the share of anchors flow must
    find (the others, often off the frame's edge, move with them); ``max_error``, ``max_scale``: the rigid-motion
    test of :func:`~deidstream.engine.generator.repaint.rigid_motion` against FaceMesh's last anchors.
    One per thread (the scheduler's tracking thread)."""

    def __init__(self, *, max_gap: int = 2, margin: float = 0.3, min_tracked: float = 0.8,
                 max_error: float = 0.03, max_scale: float = 0.1) -> None:
        self.max_gap = max_gap
        self.min_tracked = min_tracked
        self.margin = margin
        self.max_error = max_error
        self.max_scale = max_scale
        self._bases: dict[int, _Base] = {}
        self.followed = 0
        self.refused = 0

    def can_follow(self, track_id: int, frame_index: int) -> bool:
        base = self._bases.get(track_id)
        return base is not None and base.frame == frame_index - 1 and base.since_mesh < self.max_gap

    def seen(self, track_id: int, frame_index: int, image: np.ndarray, anchors: np.ndarray) -> None:
        """FaceMesh's anchors of the face in this frame: the base to flow from next."""
        self._keep(track_id, frame_index, image, anchors, anchors, 0)

    def follow(self, track_id: int, frame_index: int, image: np.ndarray) -> np.ndarray | None:
        """The track's anchors in this frame (the next after its base), or None: no base, too many
        frames since FaceMesh, a point lost, or a motion that is not rigid."""
        if not self.can_follow(track_id, frame_index):
            return None
        base = self._bases[track_id]
        x0, y0, x1, y1 = base.region
        grey = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
        start = (base.anchors - np.array([x0, y0], np.float32)).reshape(-1, 1, 2)
        moved, status, _ = cv2.calcOpticalFlowPyrLK(base.grey, grey, start, None, **_LK)
        if moved is None or status.mean() < self.min_tracked:
            return self._refuse(track_id)
        anchors = moved.reshape(-1, 2) + np.array([x0, y0], np.float32)
        lost = status.ravel() == 0
        if lost.any():  # off the frame or without texture: where the others' motion takes them
            m, _ = cv2.estimateAffinePartial2D(base.anchors[~lost], anchors[~lost], method=cv2.LMEDS)
            if m is None:
                return self._refuse(track_id)
            anchors[lost] = base.anchors[lost] @ m[:, :2].T + m[:, 2]
        if rigid_motion(base.mesh_anchors, anchors, max_scale=self.max_scale, max_error=self.max_error) is None:
            return self._refuse(track_id)
        self._keep(track_id, frame_index, image, anchors, base.mesh_anchors, base.since_mesh + 1,
                   converted=(base.region, grey))
        self.followed += 1
        return anchors

    def forget_except(self, track_ids: set[int]) -> None:
        for gone in set(self._bases) - track_ids:
            del self._bases[gone]

    def _refuse(self, track_id: int) -> None:
        del self._bases[track_id]
        self.refused += 1
        return None

    def _keep(self, track_id: int, frame_index: int, image: np.ndarray, anchors: np.ndarray,
              mesh_anchors: np.ndarray, since_mesh: int,
              converted: tuple[tuple[int, int, int, int], np.ndarray] | None = None) -> None:
        """The base for the next frame: the grey pixels around ``anchors``. ``converted``: a region of
        this frame already in grey (the one just flowed in), kept while it still holds the anchors
        with half the margin, so a followed face is converted once per frame, not twice."""
        h, w = image.shape[:2]
        lo, hi = anchors.min(0), anchors.max(0)
        if converted is not None:
            (cx0, cy0, cx1, cy1), grey = converted
            half = (hi - lo) * self.margin / 2
            start, end = np.array([cx0, cy0]), np.array([cx1, cy1])
            # a side at the frame's edge cannot grow anyway
            inside = ((lo - half >= start) | (start == 0)) & ((hi + half <= end) | (end == (w, h)))
            if inside.all():
                self._bases[track_id] = _Base(frame_index, anchors, grey, (cx0, cy0, cx1, cy1), mesh_anchors,
                                              since_mesh)
                return
        pad = (hi - lo) * self.margin + 8
        x0, y0 = np.maximum(np.floor(lo - pad), 0).astype(int)
        x1, y1 = np.minimum(np.ceil(hi + pad), (w, h)).astype(int)
        if x1 - x0 < 8 or y1 - y0 < 8:
            self._bases.pop(track_id, None)
            return
        grey = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
        self._bases[track_id] = _Base(frame_index, anchors, grey, (int(x0), int(y0), int(x1), int(y1)),
                                      mesh_anchors, since_mesh)
