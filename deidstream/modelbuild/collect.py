"""Faces for the model build: 468 landmarks on stills and on frames of the shared videos.

Runs MediaPipe's FaceMesh in static mode on each image (the largest face only), so every
sample is found the same way whatever folder it came from.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from deidstream.native import native_stderr_silenced

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".pgm", ".bmp")
MIN_SIDE = 96  # FaceMesh misses small faces; tiny stills are upscaled to this


@dataclass(frozen=True, slots=True)
class Sample:
    """One face: ``person`` groups samples of the same identity; ``points`` (468, 3) pixels."""

    person: str
    source: str
    image: np.ndarray  # RGB uint8
    points: np.ndarray


class StillLandmarker:
    def __init__(self) -> None:
        import mediapipe as mp

        with native_stderr_silenced():
            # refined: its lid and lip lines follow the eyes and lips (the plain mesh's stay half open)
            self._mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=4,
                                                         refine_landmarks=True, min_detection_confidence=0.5)

    def close(self) -> None:
        self._mesh.close()

    def largest(self, image: np.ndarray) -> np.ndarray | None:
        """(468, 3) pixel landmarks of the largest face, or None."""
        h, w = image.shape[:2]
        result = self._mesh.process(image)
        if not result.multi_face_landmarks:
            return None
        faces = [np.array([[p.x * w, p.y * h, p.z * w] for p in f.landmark[:468]], np.float32)
                 for f in result.multi_face_landmarks]
        return max(faces, key=lambda p: float(np.ptp(p[:, 0]) * np.ptp(p[:, 1])))


def read_rgb(path: Path) -> np.ndarray | None:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    side = min(rgb.shape[:2])
    if side < MIN_SIDE:
        f = MIN_SIDE / side
        rgb = cv2.resize(rgb, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
    return rgb


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def still_samples(marker: StillLandmarker, folder: Path, *, person_from: str, limit: int = 0) -> Iterator[Sample]:
    """Faces in the images under ``folder``; ``person_from`` = "folder" (one folder per person)
    or "file" (one person per image)."""
    files = image_files(folder)
    if limit:
        files = files[:limit]
    for path in files:
        image = read_rgb(path)
        if image is None:
            log.warning("%s: not a readable image; skipped", path.name)
            continue
        points = marker.largest(image)
        if points is None:
            continue
        person = path.parent.name if person_from == "folder" else path.stem
        yield Sample(f"{folder.name}/{person}", path.name, image, points)


def video_samples(marker: StillLandmarker, path: Path, *, frames: int, every: int = 15) -> Iterator[Sample]:
    """The largest face on up to ``frames`` frames, one every ``every``, of a video (taken as one
    person per video: the clips are single-person or dominated by one face)."""
    import av

    taken = 0
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index % every or taken >= frames:
                continue
            image = frame.to_ndarray(format="rgb24")
            points = marker.largest(image)
            if points is not None:
                taken += 1
                yield Sample(f"videos/{path.stem}", f"{path.name}#{index}", image, points)
