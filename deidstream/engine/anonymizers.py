"""The fallback family: blur, pixelate, solid. Every later renderer falls back to these.

They work on the face's region only (box plus margin, ellipse or box shaped), never on a
full-frame copy. ``strength`` cells across the face survive blur and pixelation; a normal
Gaussian blur leaves faces recognisable (56% re-identified at kernel = width/3 in our
measurements), so blur here first destroys detail like pixelation, then smooths.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

import cv2
import numpy as np

from deidstream.config import AnonymizerConfig
from deidstream.errors import ConfigError
from deidstream.geometry.boxes import expand, pixel_bounds
from deidstream.types import FaceDetections


class FaceAnonymizer(Protocol):
    """Hides the faces in an RGB image, in place; returns the (n, 4) regions it changed."""

    def apply(self, image: np.ndarray, faces: FaceDetections) -> np.ndarray: ...

    def regions(self, faces: FaceDetections) -> np.ndarray:
        """The (n, 4) regions ``apply`` would change (before clipping to the image)."""
        ...


def _cells(width: int, height: int, strength: int) -> tuple[int, int]:
    if width >= height:
        return strength, max(2, round(strength * height / width))
    return max(2, round(strength * width / height)), strength


_SHIFT = 4  # sub-pixel bits for cv2.ellipse


def _ellipse_args(box: np.ndarray, ox: int, oy: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Centre and half-axes (fixed point) of the ellipse inscribed in ``box``, relative to (ox, oy)."""
    scale = 1 << _SHIFT
    centre = (round(((box[0] + box[2]) / 2 - ox) * scale), round(((box[1] + box[3]) / 2 - oy) * scale))
    axes = (round((box[2] - box[0]) / 2 * scale), round((box[3] - box[1]) / 2 * scale))
    return centre, axes


class _RegionAnonymizer(ABC):
    """Shared region handling: margin, clipping, ellipse mask; subclasses say what fills it."""

    def __init__(self, config: AnonymizerConfig) -> None:
        self.config = config

    def regions(self, faces: FaceDetections) -> np.ndarray:
        return expand(faces.xyxy, self.config.margin, self.config.forehead)

    def apply(self, image: np.ndarray, faces: FaceDetections) -> np.ndarray:
        regions = self.regions(faces)
        h, w = image.shape[:2]
        for box in regions:
            bounds = pixel_bounds(box, w, h)
            if bounds is None:
                continue
            x0, y0, x1, y1 = bounds
            roi = image[y0:y1, x0:x1]
            filled = self.fill(roi)
            if self.config.shape == "box":
                roi[...] = filled
                continue
            mask = np.zeros(roi.shape[:2], np.uint8)
            centre, axes = _ellipse_args(box, x0, y0)
            cv2.ellipse(mask, centre, axes, 0, 0, 360, 255, thickness=-1, lineType=cv2.LINE_8, shift=_SHIFT)
            cv2.copyTo(filled, mask, roi)  # writes into the view in place
        return regions

    @abstractmethod
    def fill(self, roi: np.ndarray) -> np.ndarray:
        """What replaces the face region (same shape as ``roi``)."""


class BlurAnonymizer(_RegionAnonymizer):
    """Low-pass to ``strength`` cells across the face, then a smooth upscale: a blur that does not leak."""

    def fill(self, roi: np.ndarray) -> np.ndarray:
        h, w = roi.shape[:2]
        cw, ch = _cells(w, h, self.config.strength)
        small = cv2.resize(roi, (cw, ch), interpolation=cv2.INTER_AREA)
        # Smooth on a grid 4x finer than the cells (cheap), then stretch to the face size.
        mid = cv2.resize(small, (4 * cw, 4 * ch), interpolation=cv2.INTER_LINEAR)
        mid = cv2.GaussianBlur(mid, (5, 5), 0)
        return cv2.resize(mid, (w, h), interpolation=cv2.INTER_LINEAR)


class PixelateAnonymizer(_RegionAnonymizer):
    """``strength`` blocks across the face, each its mean colour."""

    def fill(self, roi: np.ndarray) -> np.ndarray:
        h, w = roi.shape[:2]
        cw, ch = _cells(w, h, self.config.strength)
        small = cv2.resize(roi, (cw, ch), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


class SolidAnonymizer(_RegionAnonymizer):
    """A flat colour: nothing of the face survives."""

    def fill(self, roi: np.ndarray) -> np.ndarray:
        out = np.empty_like(roi)
        out[...] = np.asarray(self.config.color, np.uint8)
        return out


ANONYMIZERS: dict[str, type[_RegionAnonymizer]] = {
    "blur": BlurAnonymizer,
    "pixelate": PixelateAnonymizer,
    "solid": SolidAnonymizer,
}


def make_anonymizer(config: AnonymizerConfig) -> FaceAnonymizer:
    """The anonymiser for ``config.mode``; an unknown mode raises instead of leaving faces bare."""
    try:
        cls = ANONYMIZERS[config.mode]
    except KeyError:
        raise ConfigError(f"unknown mode {config.mode!r}; expected one of {', '.join(ANONYMIZERS)}") from None
    return cls(config)
