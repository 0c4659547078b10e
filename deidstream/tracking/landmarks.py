"""468 face-mesh landmarks per tracked face, found on a crop around the track's box.

Cropping to the tracked box (instead of a fresh full-frame search) gives small faces the
model's full input resolution and keeps landmarks tied to the track. MediaPipe's FaceMesh
runs on each square crop (padded where the crop leaves the frame); points come back in frame
pixels, z in the same pixel units as x. A face with a track id gets a FaceMesh of its own in
tracking mode (it reuses the last landmarks instead of searching the crop again: about half
the cost); faces without one, or beyond ``max_tracked`` at once, use a shared one that
searches every crop. A tracked face's FaceMesh graph takes ~30 ms to build (a new track's first
landmarks: 31 ms against 10 ms, benchmarks/bench_generator.py), a spike in a live frame's
latency each time someone new appears: ``spares`` are built up front, and the meshes of tracks that
end are kept for the next ones (every crop is centred on its face at the same scale, so the last
face's region is a fair first guess for the next, and FaceMesh searches again when it is not).
An optional :class:`~deidstream.tracking.smoothing.LandmarkSmoother` takes
the jitter out of each tracked face's landmarks over time.

With ``second_looks``, a crop where FaceMesh finds no face is looked at again by the static FaceMesh,
mirrored and one face-box side wide: FaceMesh's face finder misses many faces in three-quarter view, and
misses them differently in the mirror image. Of the faces of at least 64 px the first look missed in pass 1
of the default mode, the second found 32 of 100 on stage_multi_person_cuts and 11 of 60 on crowd_1080p
(landmarks kept only where their box overlaps the tracked box, ``MIN_BOX_IOU``). It costs a FaceMesh call
(about 10 ms) per miss, so the live pipeline goes without.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import cv2
import numpy as np

from deidstream.geometry.boxes import extent_iou
from deidstream.geometry.mesh import default_mesh
from deidstream.native import native_stderr_silenced
from deidstream.tracking.smoothing import LandmarkSmoother
from deidstream.types import FaceDetections

N_LANDMARKS = 468
# MediaPipe's C++ logs one warning per process ("landmark_projection_calculator ... IMAGE_DIMENSIONS") the
# first time FaceMesh projects a face; a blank warm-up image finds none, so the calls are silenced until one does.
_first_face = {"pending": True}
MIN_BOX_IOU = 0.3  # a second look's landmarks against the tracked box: below this they found another face
SECOND_LOOK_SCALE = 1.0  # the second look's crop, in face-box sides: tighter than the first


@cache
def _mirror_index() -> np.ndarray:
    """Landmark i of a face is landmark ``mirror[i]`` of its mirror image (the canonical mesh is symmetric)."""
    v = default_mesh().vertices
    flipped = v * np.array([-1.0, 1.0, 1.0], np.float32)
    return np.linalg.norm(flipped[:, None] - v[None], axis=2).argmin(1)


class FaceLandmarker:
    """``crop_size`` pixels square crops covering ``crop_scale`` times the face box; ``smoother`` filters the
    landmarks of faces with a track id over time."""

    def __init__(
        self,
        *,
        crop_size: int = 192,
        crop_scale: float = 1.6,
        min_confidence: float = 0.5,
        max_tracked: int = 8,
        smoother: LandmarkSmoother | None = None,
        spares: int = 0,
        second_looks: bool = False,
    ) -> None:
        if crop_size < 64 or crop_scale < 1.0 or max_tracked < 0:
            raise ValueError(f"crop_size must be >= 64, crop_scale >= 1 and max_tracked >= 0, got "
                             f"{crop_size}, {crop_scale}, {max_tracked}")
        self.crop_size = crop_size
        self.crop_scale = crop_scale
        self.min_confidence = min_confidence
        self.max_tracked = max_tracked
        self.smoother = smoother
        self.second_looks = second_looks
        self._mesh = self._new_mesh(static=True)
        self._per_track: dict[int, object] = {}
        self._spares = [self._new_mesh(static=False) for _ in range(min(spares, max_tracked))]

    def _new_mesh(self, *, static: bool) -> object:
        import mediapipe as mp

        with native_stderr_silenced():
            # refined: its lid and lip lines follow the eyes and lips (the plain mesh's stay half open on
            # shut eyes, and a surrogate's eyes would stare where the subject's are closed)
            mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=static, max_num_faces=1, refine_landmarks=True,
                min_detection_confidence=self.min_confidence, min_tracking_confidence=self.min_confidence)
            mesh.process(np.zeros((self.crop_size, self.crop_size, 3), np.uint8))
        return mesh

    def close(self) -> None:
        for mesh in [self._mesh, *self._per_track.values(), *self._spares]:
            mesh.close()  # type: ignore[attr-defined]
        self._per_track.clear()
        self._spares.clear()

    def __enter__(self) -> FaceLandmarker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def landmarks(self, image: np.ndarray, faces: FaceDetections, t: float | None = None,
                  skip: Sequence[bool] | None = None, hold: Sequence[bool] | None = None) -> list[np.ndarray | None]:
        """(468, 3) float32 frame-pixel landmarks per face, or None where the crop holds no usable face.

        Call once per frame with every tracked face: meshes (and smoother state) of tracks that are
        gone are released. ``t`` is the frame's time in seconds, needed when there is a smoother.
        Faces marked in ``skip`` or ``hold`` get None and keep their mesh for a later frame. A
        skipped face's smoothing starts afresh with its next landmarks (they may come frames
        later, and smoothing against its last ones would lag behind the face); a held face's goes
        on (the caller follows it another way for a frame or two).
        """
        if self.smoother is not None and t is None:
            raise ValueError("expected the frame time t in seconds when a smoother is set, got None")
        ids = faces.track_id if faces.track_id is not None else [None] * len(faces)
        live = {int(i) for i in ids if i is not None}
        for gone in set(self._per_track) - live:
            mesh = self._per_track.pop(gone)
            if len(self._spares) + len(self._per_track) < self.max_tracked:
                self._spares.append(mesh)  # for the next new track
            else:
                mesh.close()  # type: ignore[attr-defined]
        skipped = [False] * len(faces) if skip is None else list(skip)
        if self.smoother is not None:
            restart = {int(i) for i, no in zip(ids, skipped) if no and i is not None}
            for gone in (set(self.smoother.track_ids) - live) | restart:
                self.smoother.drop(gone)
        left_out = skipped if hold is None else [a or b for a, b in zip(skipped, hold)]
        found = [None if no else self._one(image, box, self._mesh_for(tid))
                 for box, tid, no in zip(faces.xyxy, ids, left_out)]
        if self.smoother is None:
            return found
        return [
            pts if pts is None or tid is None else self.smoother.smooth(int(tid), t, pts)  # type: ignore[arg-type]
            for pts, tid in zip(found, ids)
        ]

    def _mesh_for(self, track_id: int | None) -> object:
        if track_id is None:
            return self._mesh
        track_id = int(track_id)
        if track_id not in self._per_track:
            if len(self._per_track) >= self.max_tracked:
                return self._mesh
            self._per_track[track_id] = self._spares.pop() if self._spares else self._new_mesh(static=False)
        return self._per_track[track_id]

    def _one(self, image: np.ndarray, box: np.ndarray, mesh: object) -> np.ndarray | None:
        pts = self._look(image, box, mesh, self.crop_scale)
        if pts is not None or not self.second_looks:
            return pts
        pts = self._look(image, box, self._mesh, SECOND_LOOK_SCALE, mirrored=True)
        return pts if pts is not None and extent_iou(pts, box) >= MIN_BOX_IOU else None

    def _look(self, image: np.ndarray, box: np.ndarray, mesh: object, scale: float,
              mirrored: bool = False) -> np.ndarray | None:
        size = self.crop_size
        side = max(box[2] - box[0], box[3] - box[1]) * scale
        if side < 4:
            return None
        k = size / side
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        warp = np.array([[k, 0, size / 2 - cx * k], [0, k, size / 2 - cy * k]], np.float32)
        crop = cv2.warpAffine(image, warp, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        if mirrored:
            crop = cv2.flip(crop, 1)
        if _first_face["pending"]:
            with native_stderr_silenced():
                result = mesh.process(crop).multi_face_landmarks  # type: ignore[attr-defined]
            _first_face["pending"] = not result
        else:
            result = mesh.process(crop).multi_face_landmarks  # type: ignore[attr-defined]
        if not result:
            return None
        pts = np.array([(p.x, p.y, p.z) for p in result[0].landmark[:N_LANDMARKS]], np.float32) * size
        if mirrored:
            pts[:, 0] = size - pts[:, 0]
            pts = pts[_mirror_index()]
        pts[:, 0] = (pts[:, 0] - warp[0, 2]) / k
        pts[:, 1] = (pts[:, 1] - warp[1, 2]) / k
        pts[:, 2] /= k
        return pts
