"""Blending a rendered face crop into the frame without a visible seam.

Multi-band blending (Burt and Adelson 1983): the difference between render and frame is split
into a Laplacian pyramid and each band is blended with the alpha mask blurred to that band's
scale, so low frequencies (shading, colour) cross over a wide band and detail (skin texture,
eyelashes) over a narrow one; there is no seam at the jaw line or the hairline. Before that, the
render's colour can be shifted towards the frame's (per-channel mean and spread, measured under
the alpha mask with the border ring weighted most: the seam is where a mismatch shows).

Two kinds of zero alpha are treated differently. Outside the face, the render is extended
smoothly (push-pull: averages of the covered pixels, coarse to fine) so the wide bands do not
see the crop's empty background as a dark edge. Inside the face (the eye openings and the mouth,
holes of the alpha support) the render is replaced by the frame, so the subject's own eyes and
teeth keep their colour and only take on the low-frequency shift of the skin around them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from deidstream.errors import ConfigError
from deidstream.geometry.boxes import iou_matrix

_MIN_TOP_PX = 4  # the coarsest pyramid level keeps at least this many pixels across the crop...
_MIN_TOP_FACE_PX = 8  # ...and the face: its widest band stays well inside it, so its middle is all render
_GAIN_RANGE = (0.5, 2.0)  # colour matching never scales a channel's spread by more than this
_RING_SHARE = 0.25  # weight of the middle of the face in the colour statistics, relative to the ring's 1
COVERED_ALPHA = 0.99  # a render this opaque shows none of the frame's detail beneath it
COVERED_INSET_PX = 4  # the default feather's kernel radius (Compositor(feather_px=1.5))


@dataclass(frozen=True, slots=True)
class RenderedFace:
    """A rendered face crop and where it goes in the frame.

    ``rgb`` (h, w, 3) uint8 or float in [0, 1]; ``alpha`` (h, w) float in [0, 1], 1 where the
    surrogate covers the frame, 0 where the frame stays (eye openings and mouth interior already
    cut out); ``x0, y0`` the frame pixel under the crop's top-left (the crop may hang over any edge).
    """

    rgb: np.ndarray
    alpha: np.ndarray
    x0: int
    y0: int

    def __post_init__(self) -> None:
        if self.rgb.ndim != 3 or self.rgb.shape[2] != 3:
            raise ValueError(f"expected rgb of shape (h, w, 3), got {self.rgb.shape}")
        if self.rgb.dtype != np.uint8 and not np.issubdtype(self.rgb.dtype, np.floating):
            raise ValueError(f"expected rgb as uint8 or float in [0, 1], got {self.rgb.dtype}")
        if self.alpha.shape != self.rgb.shape[:2]:
            raise ValueError(f"expected alpha of shape {self.rgb.shape[:2]}, got {self.alpha.shape}")
        object.__setattr__(self, "x0", int(self.x0))
        object.__setattr__(self, "y0", int(self.y0))

    def bounds(self, frame_shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
        """x0, y0, x1, y1 of the crop's part inside a frame of ``frame_shape`` (None if outside it):
        the only frame pixels blending this face may change."""
        h, w = self.alpha.shape
        x0, y0 = max(self.x0, 0), max(self.y0, 0)
        x1, y1 = min(self.x0 + w, frame_shape[1]), min(self.y0 + h, frame_shape[0])
        return (x0, y0, x1, y1) if x0 < x1 and y0 < y1 else None

    def covered(self, frame_shape: tuple[int, ...]) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
        """The frame pixels this face replaces outright: its ``bounds`` and a boolean mask over them,
        True where alpha reaches ``COVERED_ALPHA`` at least ``COVERED_INSET_PX`` inside the edge (the
        compositor's feather lets some of the frame's detail through at the edge; inside, only its
        low frequencies, colour and shading, cross the blend)."""
        inside = self.bounds(frame_shape)
        if inside is None:
            return None
        x0, y0, x1, y1 = inside
        opaque = (self.alpha[y0 - self.y0 : y1 - self.y0, x0 - self.x0 : x1 - self.x0] >= COVERED_ALPHA).view(np.uint8)
        kernel = np.ones((2 * COVERED_INSET_PX + 1,) * 2, np.uint8)
        return inside, cv2.erode(opaque, kernel, borderValue=0).view(bool)


Covered = tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]  # bounds, uint8 mask over them, their pixels


def covered_pixels(frame: np.ndarray, faces: Sequence[RenderedFace], over: np.ndarray) -> list[Covered]:
    """The pixels the blended ``faces`` that meet one of the (n, 4) regions ``over`` replaced outright
    (:meth:`RenderedFace.covered`), as they are in ``frame`` now: surrogate pixels, to put back with
    :func:`restore_covered` once those regions are hidden."""
    kept = []
    for face in faces:
        inside = face.bounds(frame.shape)
        if inside is None or not (iou_matrix(np.asarray(inside, np.float32), over) > 0).any():
            continue
        if (covered := face.covered(frame.shape)) is not None:
            (x0, y0, x1, y1), mask = covered
            kept.append(((x0, y0, x1, y1), mask.view(np.uint8), frame[y0:y1, x0:x1].copy()))
    return kept


def restore_covered(frame: np.ndarray, kept: list[Covered]) -> None:
    """Put surrogate pixels back where another face's fallback went over them: they show nobody
    real, so blurring them hides nothing, and a false or coasting box beside a rendered face
    would otherwise lay a blurred disc over half of it (seen on portrait_s18)."""
    for (x0, y0, x1, y1), mask, pixels in kept:
        cv2.copyTo(pixels, mask, frame[y0:y1, x0:x1])  # writes into the view in place


class _Scratch:
    """Float32 work arrays reused from call to call (views of the largest size seen so far).

    Page-faulting in fresh arrays of a face crop's size costs more than the arithmetic on them.
    """

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def __call__(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        arr = self._arrays.get(name)
        if arr is None or any(have < want for have, want in zip(arr.shape, shape)):
            grown = shape if arr is None else tuple(max(have, want) for have, want in zip(arr.shape, shape))
            arr = self._arrays[name] = np.empty(grown, np.float32)
        return arr[: shape[0], : shape[1]]


def _half(shape: tuple[int, ...]) -> tuple[int, ...]:
    return ((shape[0] + 1) // 2, (shape[1] + 1) // 2, *shape[2:])


class Compositor:
    """Multi-band blending of a rendered face into the frame, with optional colour matching.

    ``levels`` pyramid levels (the widest band spans about ``2 ** levels`` pixels); ``feather_px``
    the Gaussian sigma that softens alpha's edge for the finest band. The blend changes pixels up to
    ``reach_px`` from the alpha support and never outside the crop, so a crop should keep that much
    margin around the face (where it lies inside the frame) or the blend is cut off at the crop's
    edge. Keeps scratch arrays between calls: use one per thread.

    >>> Compositor().reach_px
    66
    """

    def __init__(self, *, levels: int = 4, feather_px: float = 1.5, colour_match: bool = True) -> None:
        if not 1 <= levels <= 8:
            raise ConfigError(f"expected levels in 1..8, got {levels}")
        if not 0.0 <= feather_px <= 32.0:
            raise ConfigError(f"expected feather_px in [0, 32], got {feather_px}")
        self.levels = levels
        self.feather_px = feather_px
        self.colour_match = colour_match
        self._scratch = _Scratch()

    @property
    def reach_px(self) -> int:
        """How far from the alpha support a pixel can change: the feather kernel's radius, then each
        level's 5-tap pyramid kernel going down and coming back up."""
        feather = _feather_radius(self.feather_px) if self.feather_px > 0 else 0
        return feather + 2 ** (self.levels + 2) - 2

    def apply(self, frame: np.ndarray, face: RenderedFace) -> np.ndarray:
        """Blend ``face`` into ``frame`` (H, W, 3) uint8 in place; returns ``frame``. Pixels outside the crop,
        and those beyond the pyramid's reach from the alpha support, keep their exact values."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 frame, got {frame.shape} {frame.dtype}")
        inside = face.bounds(frame.shape)
        if inside is None:
            return frame
        fx0, fy0, fx1, fy1 = inside
        crop = np.s_[fy0 - face.y0 : fy1 - face.y0, fx0 - face.x0 : fx1 - face.x0]
        shape = (fy1 - fy0, fx1 - fx0)
        buf = self._scratch
        alpha = buf("alpha", shape)
        np.copyto(alpha, face.alpha[crop], casting="unsafe")
        cv2.min(cv2.max(alpha, 0.0, dst=alpha), 1.0, dst=alpha)
        if not cv2.countNonZero(alpha):
            return frame
        roi = frame[fy0:fy1, fx0:fx1]
        rgb = face.rgb[crop]
        _, _, support_w, support_h = cv2.boundingRect((alpha > 0).view(np.uint8))
        face_levels = _fitting_levels(min(support_w, support_h), _MIN_TOP_FACE_PX)
        levels = min(self.levels, _fitting_levels(min(shape), _MIN_TOP_PX), face_levels)

        soft = buf("soft", shape)
        if self.feather_px > 0:
            radius = _feather_radius(self.feather_px)
            cv2.GaussianBlur(alpha, (2 * radius + 1, 2 * radius + 1), self.feather_px, dst=soft)
        else:
            np.copyto(soft, alpha)
        masks = self._pyramid("mask", soft, levels)
        gain = np.full(3, 1.0 if rgb.dtype == np.uint8 else 255.0)
        shift = np.zeros(3)
        if self.colour_match:
            gain, shift = _colour_transfer(rgb, gain, roi, alpha, masks)
        diff = cv2.multiply(rgb, (*gain.tolist(), 0.0), dst=buf("diff", (*shape, 3)), dtype=cv2.CV_32F)
        if shift.any():
            cv2.add(diff, (*shift.tolist(), 0.0), dst=diff)
        cv2.subtract(diff, roi, dst=diff, dtype=cv2.CV_32F)
        # Inside the eyes and the mouth the difference to blend is known to be zero (the frame stays),
        # not missing like outside the face: weight 1 there, and alpha (0) premultiplies the difference.
        weight = np.maximum(alpha, _holes(alpha), out=buf("weight", shape))
        cv2.multiply(diff, self._three("alpha", alpha), dst=diff)
        out = self._blend(diff, weight, masks)
        cv2.add(roi, out, dst=roi, dtype=cv2.CV_8U)  # rounds and saturates
        return frame

    def _blend(self, diff: np.ndarray, weight: np.ndarray, masks: list[np.ndarray]) -> np.ndarray:
        """Multi-band blend of ``diff`` (render - frame, premultiplied by ``weight``: how far it is known)
        under the mask pyramid.

        Push-pull (coarse averages of the known pixels, filled in from coarse to fine) continues the
        difference smoothly past the face's edge, and its pull steps give the Laplacian bands
        directly: band_l = F_l - up(F_l+1) telescopes back to the difference where the masks are 1.
        """
        top = len(masks) - 1
        push = self._pyramid("push", diff, top)
        weights = self._pyramid("weight", weight, top)
        mean = np.array(cv2.sumElems(push[top])[:3]) / max(cv2.sumElems(weights[top])[0], 1e-6)
        filled = self._scratch(f"fill{top}", push[top].shape)
        filled[...] = mean.astype(np.float32)
        gap = self._three(f"w{top}", weights[top])
        cv2.subtract((1.0, 1.0, 1.0, 0.0), gap, dst=gap)
        cv2.add(push[top], cv2.multiply(gap, filled, dst=filled), dst=filled)
        out = cv2.multiply(filled, self._three(f"m{top}", masks[top]), dst=self._scratch(f"out{top}", filled.shape))
        for level in range(top - 1, -1, -1):
            shape = push[level].shape
            coarse = self._up(f"fill{level}", filled, shape)
            band = self._scratch(f"band{level}", shape)
            cv2.multiply(coarse, self._three(f"w{level}", weights[level]), dst=band)
            cv2.subtract(push[level], band, dst=band)
            if level:
                filled = cv2.add(coarse, band, dst=coarse)
            out = self._up(f"out{level}", out, shape)
            cv2.add(out, cv2.multiply(band, self._three(f"m{level}", masks[level]), dst=band), dst=out)
        return out

    def _pyramid(self, name: str, image: np.ndarray, levels: int) -> list[np.ndarray]:
        pyramid = [image]
        for level in range(1, levels + 1):
            dst = self._scratch(f"{name}{level}", _half(pyramid[-1].shape))
            pyramid.append(cv2.pyrDown(pyramid[-1], dst=dst))
        return pyramid

    def _up(self, name: str, image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        return cv2.pyrUp(image, dst=self._scratch(name, shape), dstsize=(shape[1], shape[0]))

    def _three(self, name: str, mask: np.ndarray) -> np.ndarray:
        return cv2.merge([mask, mask, mask], dst=self._scratch(f"three_{name}", (*mask.shape, 3)))


def _colour_transfer(
    rgb: np.ndarray, scale: np.ndarray, frame: np.ndarray, alpha: np.ndarray, masks: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel gain and shift that give ``rgb * scale`` the frame's mean and spread under alpha, border
    ring first (the ring is where a coarse blur of alpha falls below 1).

    Statistics are taken on every fourth pixel each way: enough for a mean and a spread, at a
    sixteenth of the cost.
    """
    step = 4
    a = alpha[::step, ::step]
    inner = cv2.resize(masks[min(3, len(masks) - 1)], (a.shape[1], a.shape[0]), interpolation=cv2.INTER_LINEAR)
    weight = (a * (_RING_SHARE + 1.0 - inner)).reshape(-1)
    total = float(weight.sum())
    if total <= 1e-6:
        return scale, np.zeros(3)
    weight /= total
    r = rgb[::step, ::step].reshape(-1, 3) * scale
    b = frame[::step, ::step].reshape(-1, 3).astype(np.float64)
    mr, mb = weight @ r, weight @ b
    sr = np.sqrt(np.maximum(weight @ (r * r) - mr * mr, 0.0))
    sb = np.sqrt(np.maximum(weight @ (b * b) - mb * mb, 0.0))
    gain = np.where(sr > 1e-3, np.clip(sb / np.maximum(sr, 1e-3), *_GAIN_RANGE), 1.0)
    return gain * scale, mb - mr * gain


def _feather_radius(sigma: float) -> int:
    return int(np.ceil(2.5 * sigma))


def _fitting_levels(size: int, cells: int) -> int:
    """The most pyramid levels that leave at least ``cells`` pixels of ``size`` at the coarsest one."""
    return max(0, int(np.log2(max(size, 1) / cells)))


def _holes(alpha: np.ndarray) -> np.ndarray:
    """uint8 0/1: pixels of zero alpha that are enclosed by the support (not connected to the crop's edge)."""
    outside = np.pad((alpha <= 0).astype(np.uint8), 1, constant_values=1)
    cv2.floodFill(outside, None, (0, 0), 2)
    return (outside[1:-1, 1:-1] == 1).astype(np.uint8)
