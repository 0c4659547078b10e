"""468 face-mesh landmarks per tracked face, found on a crop around the track's box.

Cropping to the tracked box (instead of a fresh full-frame search) gives small faces the
model's full input resolution and keeps landmarks tied to the track. MediaPipe's FaceMesh
runs on each square crop (padded where the crop leaves the frame); points come back in frame
pixels, z in the same pixel units as x.
"""

from __future__ import annotations

import cv2
import numpy as np

from deidstream.native import native_stderr_silenced
from deidstream.types import FaceDetections

N_LANDMARKS = 468


class FaceLandmarker:
    """``crop_size`` pixels square crops covering ``crop_scale`` times the face box."""

    def __init__(self, *, crop_size: int = 192, crop_scale: float = 1.6, min_confidence: float = 0.5) -> None:
        import mediapipe as mp

        if crop_size < 64 or crop_scale < 1.0:
            raise ValueError(f"crop_size must be >= 64 and crop_scale >= 1, got {crop_size}, {crop_scale}")
        self.crop_size = crop_size
        self.crop_scale = crop_scale
        with native_stderr_silenced():
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=1, min_detection_confidence=min_confidence)
            self._mesh.process(np.zeros((crop_size, crop_size, 3), np.uint8))

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> FaceLandmarker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def landmarks(self, image: np.ndarray, faces: FaceDetections) -> list[np.ndarray | None]:
        """(468, 3) frame-pixel landmarks per face, or None where the crop holds no usable face."""
        return [self._one(image, box) for box in faces.xyxy]

    def _one(self, image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        size = self.crop_size
        side = max(box[2] - box[0], box[3] - box[1]) * self.crop_scale
        if side < 4:
            return None
        k = size / side
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        warp = np.array([[k, 0, size / 2 - cx * k], [0, k, size / 2 - cy * k]], np.float32)
        crop = cv2.warpAffine(image, warp, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        result = self._mesh.process(crop).multi_face_landmarks
        if not result:
            return None
        pts = np.array([(p.x, p.y, p.z) for p in result[0].landmark[:N_LANDMARKS]], np.float32) * size
        pts[:, 0] = (pts[:, 0] - warp[0, 2]) / k
        pts[:, 1] = (pts[:, 1] - warp[1, 2]) / k
        pts[:, 2] /= k
        return pts
