"""The per-frame render of G_3d: numpy and OpenCV only (no torch at run time).

z_aux (:class:`AuxCode`), where a render sits in the frame (:class:`Crop`), and
:class:`FastPath`, the inference render that :mod:`deidstream.engine.generator.render`'s differentiable
``Generator`` defines: the same maths without autograd. Keeping it apart keeps torch (1.8 s to
import here) out of every run that only renders.

Coordinates: landmarks and crops are in continuous image coordinates (pixel ``j`` spans
``[j, j + 1)``, as MediaPipe's normalised landmarks times the image size).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from deidstream.engine.generator.facemodel import FaceModel
from deidstream.engine.generator.raster import rasterize_attributes, signed_areas

# the outer lip contour (MediaPipe's FACEMESH_LIPS): the window whose UVs are rasterised at full size
OUTER_LIPS = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
LIP_MARGIN_PX = 3


@dataclass(frozen=True, slots=True)
class AuxCode:
    """z_aux of one face in one frame: ``quaternion`` (4,) x, y, z, w (head rotation, z_d);
    ``scale`` canonical units → pixels; ``translation`` (3,) pixels; ``expression`` (468, 3)
    canonical units, the frame's deviation from the person's identity shape."""

    quaternion: np.ndarray
    scale: float
    translation: np.ndarray
    expression: np.ndarray

    def yaw_pitch_roll(self) -> tuple[float, float, float]:
        """Degrees, as :meth:`HeadPose.yaw_pitch_roll`."""
        from scipy.spatial.transform import Rotation

        pitch, yaw, roll = Rotation.from_quat(self.quaternion).as_euler("xyz", degrees=True)
        return float(yaw), float(pitch), float(roll)


@dataclass(frozen=True, slots=True)
class Crop:
    """Where a render sits in the frame: top-left pixel and size (may extend past the frame)."""

    x0: int
    y0: int
    width: int
    height: int

    @classmethod
    def around(cls, points: np.ndarray, margin: float = 0.15) -> Crop:
        lo = points[:, :2].min(0)
        hi = points[:, :2].max(0)
        pad = (hi - lo) * margin + 2
        x0, y0 = np.floor(lo - pad).astype(int)
        x1, y1 = np.ceil(hi + pad).astype(int)
        return cls(int(x0), int(y0), int(x1 - x0), int(y1 - y0))

    def read(self, frame: np.ndarray) -> np.ndarray:
        """The crop's pixels (h, w, 3) uint8, edge pixels repeated where it leaves the frame."""
        h, w = frame.shape[:2]
        x0, y0 = min(max(self.x0, 0), w - 1), min(max(self.y0, 0), h - 1)
        x1, y1 = max(min(self.x0 + self.width, w), x0 + 1), max(min(self.y0 + self.height, h), y0 + 1)
        inside = frame[y0:y1, x0:x1]
        if (x0, y0, x1 - x0, y1 - y0) == (self.x0, self.y0, self.width, self.height):
            return inside
        return cv2.copyMakeBorder(inside, y0 - self.y0, self.y0 + self.height - y1, x0 - self.x0,
                                  self.x0 + self.width - x1, cv2.BORDER_REPLICATE)


def rotation_matrix(quaternion: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_quat(quaternion).as_matrix()


@dataclass(frozen=True, slots=True)
class FastRender:
    """The inference render: ``rgb`` (h, w, 3) float32 in [0, 1], ``coverage`` (h, w) float32 (times the
    texture's own alpha, for a texture with a fourth channel); ``skin`` (h, w) the texture's fifth channel
    where it has one (where the subject's own skin relief is taken), else None."""

    rgb: np.ndarray
    coverage: np.ndarray
    crop: Crop
    points: np.ndarray
    skin: np.ndarray | None = None


class FastPath:
    """The same render without autograd, for every frame: numpy and OpenCV only.

    Rasterises at most ``raster_px`` across the face and upsamples the per-pixel UV map (UVs
    are linear inside a triangle and continuous across edges, so this loses little but the
    exact silhouette; where they are not, between shut lips, the lips are rasterised again at full
    size), then samples the texture with one ``cv2.remap``.
    """

    def __init__(self, model: FaceModel, *, shading_sigma: float = 0.12, raster_px: int = 112) -> None:
        if raster_px < 32:
            raise ValueError(f"raster_px must be >= 32, got {raster_px}")
        if not 0.0 < shading_sigma < 1.0:
            raise ValueError(f"shading_sigma is a fraction of the face size in (0, 1), got {shading_sigma}")
        self.model = model
        self.shading_sigma = shading_sigma
        self.raster_px = raster_px
        self._uvs = model.mesh.uvs.astype(np.float32)
        self.triangles = model.mesh.triangles.astype(np.int64)
        # the mesh seen from the front winds like its UV layout; turned-away triangles wind the other way
        self.front_sign = float(np.sign(np.median(signed_areas(model.mesh.uvs, model.mesh.triangles))))

    def posed(self, shape: np.ndarray, aux: AuxCode) -> np.ndarray:
        r = rotation_matrix(aux.quaternion)
        return (aux.scale * (shape + aux.expression) @ r.T + aux.translation).astype(np.float32)

    def render(self, shape: np.ndarray, texture: np.ndarray, aux: AuxCode, *, margin_px: int = 12) -> FastRender:
        """``shape`` (468, 3) canonical; ``texture`` (T, T, 3) float32 albedo, or (T, T, 4) with an alpha, or
        (T, T, 5) with a skin weight besides."""
        points = self.posed(shape, aux)
        lo, hi = points[:, :2].min(0), points[:, :2].max(0)
        x0, y0 = (np.floor(lo).astype(int) - margin_px).tolist()
        x1, y1 = (np.ceil(hi).astype(int) + margin_px).tolist()
        crop = Crop(x0, y0, x1 - x0, y1 - y0)
        scale = min(1.0, self.raster_px / max(float(hi[0] - lo[0]), 1.0))
        hs, ws = max(int(np.ceil(crop.height * scale)), 1), max(int(np.ceil(crop.width * scale)), 1)
        local = (points - np.array([x0, y0, 0.0], np.float32)) * np.array([scale, scale, 1.0], np.float32)
        local[:, :2] -= 0.5  # continuous coordinates to pixel centres
        raster, uv = rasterize_attributes(local, self.triangles, hs, ws, self._uvs,
                                          front_sign=self.front_sign)
        size = texture.shape[0]
        maps = np.zeros((hs * ws, 3), np.float32)
        maps[raster.pixels, :2] = uv * size - 0.5
        maps[raster.pixels, 2] = 1.0
        maps = maps.reshape(hs, ws, 3)
        if scale < 1.0:
            # spread UVs one pixel past the silhouette so upsampling does not blend with empty pixels
            grown = cv2.dilate(maps[..., 2], np.ones((3, 3), np.uint8))
            count = np.maximum(cv2.blur(maps[..., 2], (3, 3)), 1e-6)[..., None]
            spread = cv2.blur(maps * maps[..., 2:3], (3, 3)) / count
            np.copyto(maps[..., :2], spread[..., :2], where=(maps[..., 2:3] == 0) & (grown[..., None] > 0))
            maps = cv2.resize(maps, (crop.width, crop.height), interpolation=cv2.INTER_LINEAR)
            coverage = (maps[..., 2] > 0.5).astype(np.float32)
            self._full_size_lips(maps, points, crop, size)
        else:
            coverage = maps[..., 2].copy()
        # outside ``coverage`` the colours are whatever the edge texels give: alpha is 0 there
        rgb = cv2.remap(texture, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        skin = None
        if rgb.shape[2] >= 4:
            coverage = coverage * rgb[..., 3]
            skin = np.ascontiguousarray(rgb[..., 4]) if rgb.shape[2] >= 5 else None
            rgb = np.ascontiguousarray(rgb[..., :3])
        return FastRender(rgb, coverage, crop, points, skin)

    def _full_size_lips(self, maps: np.ndarray, points: np.ndarray, crop: Crop, size: int) -> None:
        """The UVs around the lips rasterised again at full size, in place. Where the lips meet, the texture
        jumps from one lip's inner edge to the other's (the mouth's triangles between them have no area), and
        an upsampled UV map puts that jump on the coarse raster's grid: a staircase a few pixels high along
        the line between closed lips (talking_d13: a 460 px face, rasterised at 112 px)."""
        lips = points[list(OUTER_LIPS), :2] - np.array([crop.x0, crop.y0], np.float32)
        lo = np.maximum(np.floor(lips.min(0)).astype(int) - LIP_MARGIN_PX, 0)
        hi = np.minimum(np.ceil(lips.max(0)).astype(int) + LIP_MARGIN_PX, (crop.width, crop.height))
        if np.any(hi - lo < 2):
            return
        local = points - np.array([crop.x0 + lo[0], crop.y0 + lo[1], 0.0], np.float32)
        local[:, :2] -= 0.5
        raster, uv = rasterize_attributes(local, self.triangles, int(hi[1] - lo[1]), int(hi[0] - lo[0]), self._uvs,
                                          front_sign=self.front_sign)
        rows, cols = np.divmod(raster.pixels, int(hi[0] - lo[0]))
        maps[lo[1] + rows, lo[0] + cols, :2] = uv * size - 0.5

    def shade(self, rgb: np.ndarray, frame_crop: np.ndarray, skin: np.ndarray) -> np.ndarray:
        """The render under the frame's light: × low-pass(frame) / low-pass(render) over ``skin``
        (h, w) weights."""
        h, w = skin.shape
        sigma = max(self.shading_sigma * max(h, w), 1.0)
        ratio = light_ratio(frame_crop, rgb, skin, sigma, (0.2, 5.0), target_scale=1 / 255)
        return np.clip(rgb * ratio, 0.0, 1.0, out=ratio)


def light_ratio(target: np.ndarray, drawn: np.ndarray, weight: np.ndarray, sigma: float,
                bounds: tuple[float, float], target_scale: float = 1.0) -> np.ndarray:
    """low-pass(``target`` × ``target_scale``) / low-pass(``drawn``) over ``weight`` (h, w), a Gaussian of
    ``sigma`` px, clipped to ``bounds``, at full size: the gain that gives ``drawn`` the target's light at
    that scale. Taken on a grid of sigma / 2 px (the low-passes hold nothing finer; plain decimation, the
    Gaussian, wide on that grid, removes what it aliases), then interpolated."""
    h, w = weight.shape
    factor = max(sigma / 2.0, 1.0)
    small = (max(int(round(w / factor)), 1), max(int(round(h / factor)), 1))
    s = sigma / factor
    wt = cv2.resize(weight, small, interpolation=cv2.INTER_LINEAR)
    tg = cv2.resize(target, small, interpolation=cv2.INTER_LINEAR).astype(np.float32) * np.float32(target_scale)
    dr = cv2.resize(drawn, small, interpolation=cv2.INTER_LINEAR)
    if tg.ndim == 3:
        wt = wt[..., None]
    num_t = cv2.GaussianBlur(tg * wt, (0, 0), s)
    num_d = cv2.GaussianBlur(dr * wt, (0, 0), s)
    ratio = np.clip(num_t / np.maximum(num_d, 1e-4), *bounds)
    return cv2.resize(ratio, (w, h), interpolation=cv2.INTER_LINEAR)
