"""The product's E_id: dlib's face descriptor network, on chips aligned from MediaPipe landmarks.

The pipeline already has each face's 468 landmarks, and no dlib runs here: dlib's 5-point
alignment model, read from dlib's file and run in numpy
(:mod:`deidstream.networks.shape_predictor`, the same points as dlib's to the pixel), starts from
the landmarks' box; chips are cut with dlib's geometry (:mod:`deidstream.geometry.chips`) and
described in batches by :class:`~deidstream.networks.eid.FaceDescriptorNet`, run by onnxruntime on
its exported ONNX file (faster on CPU; :mod:`deidstream.export`) or by torch. Both release the GIL
inside the network, so a pass runs on the caller's thread beside the detector and the encoder
(dlib's needed child processes); onnxruntime gets as many threads as torch would (OMP_NUM_THREADS, or
the process's cores), read without importing torch, which the default mode never loads.
The evaluation keeps dlib's own C++ network and detector (``DlibRecognizer``): an independent judge.
Descriptors are biometric data: nothing here logs them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deidstream.config import EidConfig
from deidstream.geometry.boxes import landmark_box
from deidstream.geometry.chips import CHIP_SIZE, chips_tensor, face_chips

log = logging.getLogger(__name__)
DESCRIPTOR_SIZE = 128
BATCH = 32  # chips per network call: 5.2 ms a face at 32 against 9.5 alone, on one core (networks/eid.py)


@dataclass(frozen=True, slots=True)
class MeshFace:
    """A face found in a still: its detector box (x0, y0, x1, y1) and its 468 landmarks (468, 3)."""

    box: np.ndarray
    landmarks: np.ndarray


def _nchw(chips: np.ndarray) -> np.ndarray:
    """(n, 3, h, w) float32 of (n, h, w, 3) uint8 chips: E_id's ONNX input."""
    return np.ascontiguousarray(chips.transpose(0, 3, 1, 2), dtype=np.float32)


class EidRecognizer:
    """Chips from MediaPipe landmarks and their 128-d descriptors, dlib's network in onnxruntime or torch
    (``config``; the same numbers to 1e-6).

    ``model_path``, ``predictor_path``: dlib's network and 5-point model files (default: those of
    the ``face-recognition-models`` package; another network file runs in torch)."""

    def __init__(self, config: EidConfig | None = None, *, model_path: str | Path | None = None,
                 predictor_path: str | Path | None = None, batch: int = BATCH) -> None:
        from deidstream.networks.shape_predictor import load_shape_predictor

        if batch < 1:
            raise ValueError(f"expected a batch of at least 1, got {batch}")
        self.config = config or EidConfig()
        self.batch = batch
        # another network file than the installed one runs in torch (the cached ONNX file is the installed one's)
        self.backend = "torch" if model_path is not None else self.config.backend
        self.name = f"eid-{self.backend}"
        self._net = None
        self._session = None
        if self.backend == "torch":
            from deidstream.networks.eid import load_face_descriptor_net

            self._net = load_face_descriptor_net(model_path)
        else:  # onnxruntime: torch is not imported unless the ONNX file must be built
            from deidstream.export.cache import eid_onnx
            from deidstream.export.runtime import process_threads, session

            self._session = session(eid_onnx(), self.config.providers, threads=process_threads())
        self._predictor = load_shape_predictor(predictor_path)
        self._finder: tuple[object, object] | None = None  # detector and landmarker for stills, built on first use

    def close(self) -> None:
        """Free the still-photo face finder, if one was built (the recogniser still works afterwards)."""
        if self._finder is not None:
            for part in self._finder:
                part.close()  # type: ignore[attr-defined]
            self._finder = None

    def points(self, image: np.ndarray, landmarks: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """(n, 5, 2) alignment points, dlib's order, of the faces with these landmarks (each (468, 2+))
        in RGB ``image``: dlib's 5-point model started from each landmarks' box."""
        if len(landmarks) == 0:
            return np.zeros((0, 5, 2))
        return self._predictor(image, np.stack([landmark_box(np.asarray(p)) for p in landmarks]))

    def chips(self, image: np.ndarray, landmarks: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """(n, 150, 150, 3) uint8 chips of the faces with these landmarks (each (468, 2+)) in RGB ``image``."""
        if len(landmarks) == 0:
            return np.zeros((0, CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
        return face_chips(image, self.points(image, landmarks))

    def chip(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The (150, 150, 3) chip of the one face with ``landmarks`` (468, 3)."""
        return self.chips(image, [landmarks])[0]

    def describe_chips(self, chips: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """(n, 128) float32 descriptors of 150 x 150 RGB chips, ``batch`` at a time."""
        if len(chips) == 0:
            return np.zeros((0, DESCRIPTOR_SIZE), np.float32)
        stacked = np.stack([np.asarray(c) for c in chips])
        if stacked.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3) or stacked.dtype != np.uint8:
            raise ValueError(f"expected ({CHIP_SIZE}, {CHIP_SIZE}, 3) uint8 chips, got {stacked.shape[1:]} "
                             f"{stacked.dtype}")
        if self._session is not None:
            out = [self._session.run(None, {"chips": _nchw(stacked[i:i + self.batch])})[0]  # type: ignore[attr-defined]
                   for i in range(0, len(stacked), self.batch)]
        else:
            import torch

            with torch.inference_mode():
                out = [self._net(chips_tensor(stacked[i:i + self.batch])).numpy()  # type: ignore[misc]
                       for i in range(0, len(stacked), self.batch)]
        return np.concatenate(out).astype(np.float32, copy=False)

    def describe_landmarks(self, image: np.ndarray, landmarks: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """(n, 128) descriptors of the faces with these landmarks in RGB ``image``."""
        return self.describe_chips(self.chips(image, landmarks))

    def detect(self, image: np.ndarray) -> list[MeshFace]:
        """Faces in a still (a keep photo, a donor): the product's detector and landmarker, so a
        photo is described the way a tracked face is. Faces without landmarks are left out."""
        from deidstream.tracking.detector import MediaPipeDetector
        from deidstream.tracking.landmarks import FaceLandmarker

        if self._finder is None:
            self._finder = (MediaPipeDetector(), FaceLandmarker())
        detector, landmarker = self._finder
        found = detector.detect(np.ascontiguousarray(image))  # type: ignore[attr-defined]
        marks = landmarker.landmarks(image, found) if len(found) else []  # type: ignore[attr-defined]
        return [MeshFace(box.astype(np.float32), p) for box, p in zip(found.xyxy, marks) if p is not None]

    def describe(self, image: np.ndarray, faces: Sequence[MeshFace]) -> np.ndarray:
        """(n, 128) descriptors of ``faces`` found by :meth:`detect` in ``image``."""
        return self.describe_landmarks(image, [f.landmarks for f in faces])
