"""UV space of the canonical mesh: unwrap a photographed face into a texture, and back.

Each texel of a ``size``×``size`` texture lies in one mesh triangle of the UV layout (a fixed
raster computed once); given where the 468 landmarks sit in a photo, the texel's place in the
photo is the same barycentric mix of that triangle's landmarks, so unwrapping is one
``cv2.remap``. A texel's weight says how well the photo saw it: the cosine between its
triangle's normal and the view direction, zero where the triangle faces away or is hidden
behind another part of the face.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from deidstream.engine.generator.masks import InteriorContours, polygons_mask
from deidstream.engine.generator.raster import Raster, rasterize, signed_areas


@dataclass(frozen=True, slots=True)
class Unwrapped:
    """``texture`` (size, size, 3) float32 in [0, 1]; ``weight`` (size, size) float32 in [0, 1]."""

    texture: np.ndarray
    weight: np.ndarray


class UVAtlas:
    """The texel → (triangle, barycentric) map of the mesh's UV layout at one texture size."""

    def __init__(self, uvs: np.ndarray, triangles: np.ndarray, size: int) -> None:
        if size < 16:
            raise ValueError(f"texture size must be >= 16, got {size}")
        self.size = size
        self.triangles = triangles
        self.raster: Raster = rasterize(uvs * size - 0.5, triangles, size, size)
        self.mask = self.raster.covered
        # The UV layout and the face seen from the front wind the same way; a posed face whose
        # triangles wind the other way is seen from behind.
        self.front_sign = float(np.sign(np.median(signed_areas(uvs, triangles))))
        loops = InteriorContours.from_mediapipe().openings
        self.openings = polygons_mask([uvs[loop] * size for loop in loops], (size, size), dilate_px=size / 96) > 0

    def fill_openings(self, texture: np.ndarray) -> np.ndarray:
        """The texture with the eye openings and the mouth interior inpainted from the skin and
        lips around them: those parts are always the subject's own in a render, and a donor's
        eyeball or teeth there would show through a blink or half-open lips."""
        u8 = np.clip(texture * 255.0 + 0.5, 0, 255).astype(np.uint8)
        filled = cv2.inpaint(u8, self.openings.astype(np.uint8), 3, cv2.INPAINT_TELEA).astype(np.float32) / 255.0
        return np.where(self.openings[..., None], filled, texture)

    def texels(self, where: np.ndarray) -> Raster:
        """The layout's texels inside ``where`` (size, size) bool, for :meth:`unwrap` to read only those."""
        keep = where.reshape(-1)[self.raster.pixels]
        return replace(self.raster, pixels=self.raster.pixels[keep], triangles=self.raster.triangles[keep],
                       bary=self.raster.bary[keep])

    def unwrap(self, image: np.ndarray, points: np.ndarray, texels: Raster | None = None,
               visibility_px: float | None = None) -> Unwrapped:
        """Texture of ``image`` (h, w, 3) uint8 under the posed mesh ``points`` (468, 3) in
        continuous image coordinates (pixel j spans [j, j + 1)), z larger = farther. ``texels`` (from
        :meth:`texels`): read only those, the rest black and unseen (a skin-tone read needs a sixth of the
        face: a whole one took 9 ms). ``visibility_px``: what hides what is worked out on a face at most
        that wide (at full size, a 240 px face's took 11 ms: enough for a median colour, not for a texture)."""
        h, w = image.shape[:2]
        raster = self.raster if texels is None else texels
        points = np.asarray(points, np.float64) - np.array([0.5, 0.5, 0.0])  # to pixel-centre coordinates
        xy = raster.interpolate(points[:, :2].astype(np.float32), self.triangles)
        if texels is None:
            map_xy = np.full((self.size * self.size, 2), -1.0, np.float32)
            map_xy[raster.pixels] = xy
            map_xy = map_xy.reshape(self.size, self.size, 2)
            texture = cv2.remap(image, map_xy[..., 0], map_xy[..., 1], cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE).astype(np.float32) / 255.0
        else:
            # rows of 1024 texels: OpenCV's maps stay narrower than its 32767 px limit
            rows = np.full((-(-len(xy) // 1024) * 1024, 2), -1.0, np.float32)
            rows[: len(xy)] = xy
            rows = rows.reshape(-1, 1024, 2)
            read = cv2.remap(image, rows[..., 0], rows[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            texture = np.zeros((self.size * self.size, 3), np.float32)
            texture[raster.pixels] = read.reshape(-1, 3)[: len(xy)].astype(np.float32) / 255.0
            texture = texture.reshape(self.size, self.size, 3)
        scale = 1.0
        if visibility_px is not None:
            scale = min(1.0, visibility_px / max(float(np.ptp(points[:, 0])), 1.0))
        weight = self._visibility(points, raster, xy, h, w, scale)
        return Unwrapped(texture, weight)

    def _visibility(self, points: np.ndarray, raster: Raster, xy: np.ndarray, h: int, w: int,
                    scale: float = 1.0) -> np.ndarray:
        p = points.astype(np.float64)
        a, b, c = (p[self.triangles[:, k]] for k in range(3))
        normal = np.cross(b - a, c - a)
        facing = -normal[:, 2] / np.maximum(np.linalg.norm(normal, axis=1), 1e-12)  # z points away
        facing *= -self.front_sign if self.front_sign else 1.0
        inside = (xy[:, 0] >= 0) & (xy[:, 0] <= w - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= h - 1)
        if scale < 1.0:  # pixel centres of the smaller grid: (c + 0.5) * scale - 0.5
            p = p * np.array([scale, scale, 1.0]) + np.array([0.5 * scale - 0.5, 0.5 * scale - 0.5, 0.0])
            xy = xy * np.float32(scale) + np.float32(0.5 * scale - 0.5)
            h, w = max(int(np.ceil(h * scale)), 1), max(int(np.ceil(w * scale)), 1)
        seen = rasterize(p, self.triangles, h, w, front_sign=0.0).triangle_map()
        per_texel = np.zeros(self.size * self.size, np.float32)
        tri = raster.triangles
        xi = np.clip(np.rint(xy[:, 0]).astype(np.int64), 0, w - 1)
        yi = np.clip(np.rint(xy[:, 1]).astype(np.int64), 0, h - 1)
        visible = inside & _near(seen, xi, yi, tri, self.triangles)
        per_texel[raster.pixels] = np.where(visible, np.clip(facing[tri], 0.0, 1.0), 0.0)
        return per_texel.reshape(self.size, self.size)


def _near(seen: np.ndarray, xi: np.ndarray, yi: np.ndarray, tri: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """True where the pixel shows the texel's triangle or one sharing a vertex with it (edges
    and rounding make a neighbour win a pixel on the triangle's border)."""
    shown = seen[yi, xi]
    same = shown == tri
    other = np.where(shown >= 0, shown, 0)
    shares = (triangles[other][:, :, None] == triangles[tri][:, None, :]).any(axis=(1, 2)) & (shown >= 0)
    return same | shares
