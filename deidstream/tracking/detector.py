"""Face detection with MediaPipe's two bundled BlazeFace models, fused.

The short-range model finds close faces, the full-range model smaller and distant ones; on
large frames the full-range model also runs on overlapping tiles so that faces a few dozen
pixels wide are seen at a scale it resolves. Detections from every pass are merged by
overlap (see ``_fuse``).
"""

from __future__ import annotations

import logging
import os
from typing import Protocol

import cv2
import numpy as np

from deidstream.config import DetectorConfig
from deidstream.geometry.boxes import rotate_boxes_to_stored, rotate_points_to_stored, union_clusters
from deidstream.native import native_stderr_silenced
from deidstream.types import FaceDetections, Frame

log = logging.getLogger(__name__)

WHOLE_FRAME_MAX_SIDE = 640  # whole-frame passes see at most this; the models resize to 128/192 anyway
N_KEYPOINTS = 6


class FaceDetector(Protocol):
    """Anything that finds faces on an upright RGB image."""

    def detect(self, image: np.ndarray) -> FaceDetections: ...

    def close(self) -> None: ...


def tile_grid(width: int, height: int, tile: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """Overlapping square tiles (x0, y0, x1, y1) covering the image; empty when it fits one tile.

    >>> tile_grid(640, 360, 720, 0.25)
    []
    >>> len(tile_grid(1920, 1080, 720, 0.25))
    8
    """
    if tile <= 0 or max(width, height) <= tile:
        return []
    stride = tile * (1.0 - overlap)

    def starts(size: int) -> list[int]:
        if size <= tile:
            return [0]
        n = int(np.ceil((size - tile) / stride)) + 1
        return [int(round(i * (size - tile) / (n - 1))) for i in range(n)]

    tw, th = min(tile, width), min(tile, height)
    return [(x, y, x + tw, y + th) for y in starts(height) for x in starts(width)]


class MediaPipeDetector:
    """MediaPipe face detection (short + full range, tiled on large frames) behind ``FaceDetector``."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ logging: errors only
        import mediapipe as mp  # heavy import kept local so the package imports fast

        self.config = config or DetectorConfig()
        solution = mp.solutions.face_detection
        threshold = self.config.threshold
        with native_stderr_silenced():
            self._short = solution.FaceDetection(model_selection=0, min_detection_confidence=threshold) \
                if self.config.short_range else None
            self._full = solution.FaceDetection(model_selection=1, min_detection_confidence=threshold) \
                if self.config.full_range else None
            for model in (self._short, self._full):
                if model is not None:  # the graphs print their start-up chatter on the first frame
                    model.process(np.zeros((64, 64, 3), np.uint8))
        self._calls = 0

    def close(self) -> None:
        for model in (self._short, self._full):
            if model is not None:
                model.close()
        self._short = self._full = None

    def __enter__(self) -> MediaPipeDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def detect(self, image: np.ndarray) -> FaceDetections:
        h, w = image.shape[:2]
        scale = min(1.0, WHOLE_FRAME_MAX_SIDE / max(h, w))
        small = image if scale == 1.0 else cv2.resize(
            image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        parts = []  # (boxes, scores, keypoints, from_full_range)
        if self._short is not None:
            parts.append((*self._run(self._short, small, 0, 0, w, h), False))
        full_turn = self._calls % self.config.full_range_every == 0 or self._short is None
        self._calls += 1
        if self._full is not None and full_turn:
            parts.append((*self._run(self._full, small, 0, 0, w, h), True))
            for x0, y0, x1, y1 in tile_grid(w, h, self.config.tile_size, self.config.tile_overlap):
                crop = np.ascontiguousarray(image[y0:y1, x0:x1])
                parts.append((*self._run(self._full, crop, x0, y0, x1 - x0, y1 - y0), True))
        boxes = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        keypoints = np.concatenate([p[2] for p in parts])
        full = np.concatenate([np.full(len(p[1]), p[3]) for p in parts])
        return self._fuse(boxes, scores, keypoints, full)

    @staticmethod
    def _run(model: object, image: np.ndarray, ox: int, oy: int, w: int, h: int) -> tuple[np.ndarray, ...]:
        """One MediaPipe pass; boxes and keypoints in the full image's pixels."""
        result = model.process(image)  # type: ignore[attr-defined]
        dets = result.detections or []
        boxes = np.zeros((len(dets), 4), np.float32)
        scores = np.zeros((len(dets),), np.float32)
        kps = np.zeros((len(dets), N_KEYPOINTS, 2), np.float32)
        for i, det in enumerate(dets):
            rb = det.location_data.relative_bounding_box
            boxes[i] = (ox + rb.xmin * w, oy + rb.ymin * h, ox + (rb.xmin + rb.width) * w,
                        oy + (rb.ymin + rb.height) * h)
            scores[i] = det.score[0]
            for k, kp in enumerate(det.location_data.relative_keypoints[:N_KEYPOINTS]):
                kps[i, k] = (ox + kp.x * w, oy + kp.y * h)
        return boxes, scores, kps

    def _fuse(self, boxes: np.ndarray, scores: np.ndarray, kps: np.ndarray, full: np.ndarray) -> FaceDetections:
        """One box per face. Full-range boxes of one face (whole frame and tiles, where a tile may
        cut the face) are merged into their union; the short-range model's box, shaped
        differently, is used only for faces the full-range passes did not find."""
        if len(boxes) == 0:
            return FaceDetections.empty()
        out_boxes, out_scores, out_kps = [], [], []
        for cluster in union_clusters(boxes, scores, self.config.nms_iou):
            members = cluster[full[cluster]] if full[cluster].any() else cluster[:1]
            out_boxes.append(np.concatenate([boxes[members, :2].min(axis=0), boxes[members, 2:].max(axis=0)]))
            out_scores.append(scores[cluster[0]])
            out_kps.append(kps[members[0]])
        return FaceDetections(np.stack(out_boxes), np.array(out_scores), np.stack(out_kps))


def detect_upright(detector: FaceDetector, frame: Frame) -> FaceDetections:
    """Detect on the frame as a viewer sees it (rotation applied), in stored pixel coordinates."""
    k = (frame.rotation // 90) % 4
    if k == 0:
        return detector.detect(frame.image)
    dets = detector.detect(np.ascontiguousarray(np.rot90(frame.image, k)))
    if len(dets) == 0:
        return dets
    kps = None if dets.keypoints is None else rotate_points_to_stored(
        dets.keypoints, frame.rotation, frame.width, frame.height)
    return FaceDetections(rotate_boxes_to_stored(dets.xyxy, frame.rotation, frame.width, frame.height), dets.score, kps)
