"""Parted lips: the surrogate's inner lip edges as they look when the subject's mouth opens.

Donors were photographed with their lips together, so the texels along the inner lip line hold the
shadowed crease between the lips. When the subject speaks, the render keeps their own mouth interior and
stretches the donor's lips around it: the crease becomes a dark ring drawn around the open mouth (the stage
performer's; an independent face mesh read his open mouth as shut). A second texture has that band filled
from the lip body beyond it; a render mixes it in as the mouth opens, so closed lips keep the donor's line
between them and open ones show lips up to their inner edge. With it, the output's mouth openness follows
the input's (r >= 0.8 within each person) on 17 of the 19 shared clips whose people speak, 16 without.
"""

from __future__ import annotations

import cv2
import numpy as np

from deidstream.engine.generator.masks import MOUTH_SHUT, InteriorContours, opening, texel_mask

PARTED = 0.1  # the inner lip loop's opening from which the crease is gone (from MOUTH_SHUT: none of it)
BAND = 1 / 64  # the crease band's half-height, a fraction of the texture (each lip is ~12 texels high at 256)
SPAN = 1 / 32  # the width the lip colours above and below the band are averaged over


class LipParting:
    """The crease band of one UV layout (``uvs`` (468, 2) in [0, 1], textures ``size`` texels)."""

    def __init__(self, uvs: np.ndarray, size: int) -> None:
        contours = InteriorContours.from_mediapipe()
        uv = uvs * size
        inner, outer = (texel_mask(uv[loop], size) for loop in (contours.inner_lips, contours.outer_lips))
        reach = max(int(round(BAND * size)), 1)
        grown = cv2.dilate(inner, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1)))
        self.band = (grown > 0) & (cv2.erode(outer, np.ones((3, 3), np.uint8)) > 0)
        ys, xs = np.nonzero(self.band)
        self.box = (slice(int(ys.min()), int(ys.max()) + 1), slice(int(xs.min()), int(xs.max()) + 1))
        # each band texel's column, the lip texels just above and below the band there, and how far down it is
        top = np.full(size, size, np.int64)
        bottom = np.full(size, -1, np.int64)
        np.minimum.at(top, xs, ys)
        np.maximum.at(bottom, xs, ys)
        self._texels = (ys, xs)
        self._above = np.maximum(top[xs] - 1, 0)
        self._below = np.minimum(bottom[xs] + 1, size - 1)
        self._down = ((ys - top[xs] + 1) / (bottom[xs] - top[xs] + 2)).astype(np.float32)[:, None]
        self._span = max(int(round(SPAN * size)) | 1, 3)

    def parted(self, texture: np.ndarray) -> np.ndarray:
        """``texture`` (T, T, C) float32 with its RGB in the crease band filled down each column from the upper
        lip just above the band to the lower lip just below it (the lips run across the layout; the other
        channels as they are)."""
        ys, xs = self._texels
        rows = max(self.box[0].start - 2, 0), self.box[0].stop + 2  # the rows read, averaged across (no streaks)
        across = cv2.blur(np.ascontiguousarray(texture[rows[0]:rows[1], :, :3]), (self._span, 1))
        above, below = across[self._above - rows[0], xs], across[self._below - rows[0], xs]
        out = texture.copy()
        out[ys, xs, :3] = above + self._down * (below - above)
        return out

    def mixed(self, shut: np.ndarray, parted: np.ndarray, weight: float) -> np.ndarray:
        """``shut`` with ``parted`` mixed in by ``weight`` in [0, 1] (only the band's box is worked on)."""
        if weight <= 0.0:
            return shut
        if weight >= 1.0:
            return parted
        out = shut.copy()
        out[self.box] += np.float32(weight) * (parted[self.box] - shut[self.box])
        return out


def parting(points: np.ndarray) -> float:
    """How far the mouth of landmarks ``points`` (>= 468, 2|3) is from shut (0) to parted (1)."""
    loop = InteriorContours.from_mediapipe().inner_lips
    return float(np.clip((opening(np.asarray(points)[loop, :2]) - MOUTH_SHUT) / (PARTED - MOUTH_SHUT), 0.0, 1.0))

