"""dlib's independent face detector and ResNet face descriptor (the paper's "FR" metric).

The evaluation's judge: dlib's own C++ detector, 5-point alignment and network, independent of the
product's E_id (``deidstream.tracking.eid``: the same network in torch, aligned by MediaPipe).

The models come from the ``face-recognition-models`` package; they are loaded straight from its
folder (its own loader needs pkg_resources). Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from deidstream.errors import ConfigError
from deidstream.geometry.boxes import iou_matrix
from deidstream.native import lower_priority

log = logging.getLogger(__name__)

SAME_PERSON = 0.6  # dlib's documented threshold: descriptors closer than this are the same person
DETECTORS = ("hog", "cnn")
# a HOG face is confirmed by the CNN on a crop around it: the box padded by half its size on each side,
# scaled so the box is this wide (the CNN's window finds faces of about 80 px without upsampling), and
# the CNN's face overlapping it by at least this IoU
CONFIRM_WIDTH = 100.0
CONFIRM_PAD = 0.5
CONFIRM_IOU = 0.3


INSTALL_HINT = "install the evaluation extra: pip install 'deidstream[evaluate]'"


def _model_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the face-recognition-models package is not installed; {INSTALL_HINT}")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


@dataclass(frozen=True, slots=True)
class DlibFace:
    """A face dlib found: its box (x0, y0, x1, y1) and 5-point landmarks for alignment."""

    box: np.ndarray
    shape: object  # dlib.full_object_detection


class DlibRecognizer:
    """HOG (or CNN) detection, 5-point alignment and the 128-d descriptor, all from dlib."""

    name = "dlib"

    def __init__(self, detector: str = "hog", upsample: int = 1, *, workers: int = 0, background: bool = False) -> None:
        """``workers``: run the descriptor network in that many child processes (see
        :mod:`deidstream.evaluation.descriptor_worker`: dlib holds the GIL for the whole pass);
        ``background``: at a lower CPU priority (live, where frames come first)."""
        try:
            import dlib
        except ImportError as exc:
            raise ConfigError(f"dlib is not installed; {INSTALL_HINT}") from exc

        if not getattr(dlib, "DLIB_USE_BLAS", True):  # the dlib-bin wheel: the same numbers, slower
            log.info("judging with dlib without BLAS (about 5x slower per face than dlib built from source)")
        if detector not in DETECTORS:
            raise ConfigError(f"unknown detector {detector!r}; expected one of {', '.join(DETECTORS)}")
        models = _model_dir()
        self.detector_name = f"dlib {detector.upper()} (upsample {upsample})" + (
            ", confirmed by dlib's CNN" if detector == "hog" else "")
        self._dlib = dlib
        self._cnn = detector == "cnn"
        self._detector: object | None = None  # built on first use: HOG's filters take 0.85 s to load
        self._confirmer: object | None = None
        self._upsample = upsample
        self._shape = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        network = models / "dlib_face_recognition_resnet_model_v1.dat"
        self._worker = None
        if workers:
            from deidstream.evaluation.descriptor_worker import DescriptorPool

            self._worker = DescriptorPool(network, workers)
            if background:
                for pid in self._worker.pids:
                    lower_priority(pid)
            self._encoder = None
        else:
            self._encoder = dlib.face_recognition_model_v1(str(network))

    def close(self) -> None:
        """Stop the descriptor worker, if any (the recogniser still works in-process afterwards)."""
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def detect(self, image: np.ndarray) -> list[DlibFace]:
        image = np.ascontiguousarray(image)  # dlib refuses strided views (decoded rows may be padded)
        if self._detector is None:
            self._detector = (self._dlib.cnn_face_detection_model_v1(str(_model_dir() / "mmod_human_face_detector.dat"))
                              if self._cnn else self._dlib.get_frontal_face_detector())
        found = self._detector(image, self._upsample)  # type: ignore[misc]
        rects = [d.rect for d in found] if self._cnn else list(found)
        return [DlibFace(np.array([r.left(), r.top(), r.right(), r.bottom()], np.float32), self._shape(image, r))
                for r in rects]

    def confirmed(self, image: np.ndarray, faces: list[DlibFace]) -> list[DlibFace]:
        """The faces of ``faces`` that dlib's CNN detector also finds, looking at a crop around each.

        HOG alone takes some textures for faces: the tops of heads seen from above, a defocused plant, and
        sometimes the lower half of a face it also found whole. Such a "face" is left as it was by any
        anonymiser (or is half of one), so counted, it reads as an unaltered or re-identified face. The CNN
        (dlib's MMOD model) agrees with HOG on real faces, turned and small ones too, and not on those: on
        the shared clips at every 5th frame it set aside 7 of 1,077 boxes, by eye a plant (3), heads seen
        from above (2) and a second box on the lower half of talking_d6's face, whose own box is kept (2).
        With the CNN as the detector, faces are kept as found."""
        if self._cnn or not faces:
            return list(faces)
        if self._confirmer is None:
            self._confirmer = self._dlib.cnn_face_detection_model_v1(str(_model_dir() / "mmod_human_face_detector.dat"))
        return [face for face in faces if self._cnn_agrees(image, face.box)]

    def _cnn_agrees(self, image: np.ndarray, box: np.ndarray) -> bool:
        x0, y0, x1, y1 = (float(v) for v in box)
        w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
        cx0, cy0 = int(max(0.0, x0 - CONFIRM_PAD * w)), int(max(0.0, y0 - CONFIRM_PAD * h))
        cx1, cy1 = int(min(image.shape[1], x1 + CONFIRM_PAD * w)), int(min(image.shape[0], y1 + CONFIRM_PAD * h))
        if cx1 - cx0 < 2 or cy1 - cy0 < 2:
            return False
        scale = CONFIRM_WIDTH / w
        crop = cv2.resize(np.ascontiguousarray(image[cy0:cy1, cx0:cx1]), None, fx=scale, fy=scale,
                          interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        for found in self._confirmer(crop, 0):  # type: ignore[operator]
            r = found.rect
            other = np.array([r.left(), r.top(), r.right(), r.bottom()], np.float32) / scale + (cx0, cy0, cx0, cy0)
            if iou_matrix(np.asarray(box, np.float32)[None], other[None])[0, 0] >= CONFIRM_IOU:
                return True
        return False

    def at_boxes(self, image: np.ndarray, boxes: np.ndarray) -> list[DlibFace]:
        """Faces at known (x0, y0, x1, y1) boxes (e.g. from a tracker), aligned by dlib's 5 points."""
        image = np.ascontiguousarray(image)
        rects = [self._dlib.rectangle(*(int(round(float(v))) for v in box)) for box in boxes]
        return [DlibFace(np.asarray(box, np.float32), self._shape(image, r)) for box, r in zip(boxes, rects)]

    def describe(self, image: np.ndarray, faces: list[DlibFace]) -> np.ndarray:
        """(n, 128) descriptors of ``faces`` in ``image``, aligned by each face's landmarks."""
        if not faces:
            return np.zeros((0, 128), np.float32)
        if self._worker is not None:
            return self.describe_chips(self.chips(image, faces))
        shapes = self._dlib.full_object_detections()
        for f in faces:
            shapes.append(f.shape)
        return np.array(self._network().compute_face_descriptor(np.ascontiguousarray(image), shapes), np.float32)

    def chips(
        self, image: np.ndarray, faces: list[DlibFace], size: int = 150, padding: float = 0.25
    ) -> list[np.ndarray]:
        """Aligned (size, size, 3) face chips, cut the way the descriptor network expects by default
        (so quality can be measured on exactly the pixels that ``describe_chips`` sees)."""
        if not faces:
            return []
        shapes = self._dlib.full_object_detections()
        for f in faces:
            shapes.append(f.shape)
        return list(self._dlib.get_face_chips(np.ascontiguousarray(image), shapes, size, padding))

    def chip(self, image: np.ndarray, points: np.ndarray) -> np.ndarray:
        """The chip of the face whose 468 MediaPipe landmarks are ``points``: dlib's 5-point
        predictor started inside the landmarks' box (what the product did before its own E_id;
        benchmarks compare the two)."""
        lo, hi = points[:, :2].min(0), points[:, :2].max(0)
        box = np.array([lo[0], lo[1] + 0.12 * (hi[1] - lo[1]), hi[0], hi[1]], np.float32)
        return self.chips(image, self.at_boxes(image, box[None]))[0]

    def describe_chips(self, chips: list[np.ndarray]) -> np.ndarray:
        """(n, 128) descriptors of 150x150 chips from ``chips`` (one batched network call)."""
        if not chips:
            return np.zeros((0, 128), np.float32)
        if self._worker is not None:
            return self._worker.describe(chips)
        return np.array(self._network().compute_face_descriptor([np.ascontiguousarray(c) for c in chips]), np.float32)

    def _network(self) -> object:
        if self._encoder is None:  # the worker was closed: load the network here
            self._encoder = self._dlib.face_recognition_model_v1(
                str(_model_dir() / "dlib_face_recognition_resnet_model_v1.dat"))
        return self._encoder

    @staticmethod
    def points(face: DlibFace) -> np.ndarray:
        """(5, 2) alignment points of ``face``: two corners of each eye, then the base of the nose."""
        return np.array([(p.x, p.y) for p in face.shape.parts()], np.float32)  # type: ignore[attr-defined]

    def cluster(self, descriptors: np.ndarray, threshold: float = 0.5) -> np.ndarray:
        """Identity labels by dlib's Chinese-whispers clustering."""
        if len(descriptors) == 0:
            return np.zeros(0, int)
        vectors = [self._dlib.vector(d.astype(float).tolist()) for d in descriptors]
        return np.array(self._dlib.chinese_whispers_clustering(vectors, threshold), int)
