"""G_3d: render an identity latent in a frame's pose, expression and light.

``render(w_id, z_aux)`` poses the identity's mesh (its shape plus this frame's expression,
turned and placed by z_d, scale and translation), rasterises it with a depth test, and samples
the identity's albedo texture with ``grid_sample`` at each covered pixel's UV, so the image is
differentiable w.r.t. the appearance coefficients and, through barycentrics recomputed in
torch, w.r.t. the shape coefficients. :class:`FastPath` is the same render without autograd,
the one that runs per frame; it also carries this frame's shading and colour over as a smooth
ratio (the frame's low-pass over the render's), which matches the scene's light.

Coordinates: landmarks and crops are in continuous image coordinates (pixel ``j`` spans
``[j, j + 1)``, as MediaPipe's normalised landmarks times the image size).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from deidstream.engine.facemodel import FaceModel, Identity
from deidstream.engine.masks import InteriorContours, polygons_mask
from deidstream.engine.raster import rasterize, rasterize_attributes, signed_areas


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


@dataclass(frozen=True, slots=True)
class Render:
    """``rgb`` (3, h, w) in [0, 1] and ``coverage`` (h, w) in {0, 1} over ``crop``; ``points``
    (468, 3) the posed vertices in frame coordinates (what a landmark detector should find)."""

    rgb: torch.Tensor
    coverage: torch.Tensor
    crop: Crop
    points: np.ndarray


def rotation_matrix(quaternion: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_quat(quaternion).as_matrix()


class Generator:
    """The morphable-model G_3d over one :class:`FaceModel` (torch, CPU by default)."""

    def __init__(self, model: FaceModel, *, device: str = "cpu", shading_sigma: float = 0.12) -> None:
        if not 0.0 < shading_sigma < 1.0:
            raise ValueError(f"shading_sigma is a fraction of the face size in (0, 1), got {shading_sigma}")
        self.model = model
        self.device = torch.device(device)
        self.shading_sigma = shading_sigma
        t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=self.device)  # noqa: E731
        self._shape_mean = t(model.shape_mean)
        self._shape_basis = t(model.shape_basis)
        self._app_mean = t(model.app_mean).permute(2, 0, 1).contiguous()
        self._app_basis = t(model.app_basis).permute(0, 3, 1, 2).contiguous()  # (ka, 3, C, C)
        self._open_mean = t(model.open_mean).permute(2, 0, 1).contiguous()
        size = model.tex_size
        loops = InteriorContours.from_mediapipe().openings
        self._openings = torch.as_tensor(
            polygons_mask([model.mesh.uvs[loop] * size for loop in loops], (size, size), dilate_px=size / 96) > 0,
            device=self.device)
        self._uvs = t(model.mesh.uvs * 2.0 - 1.0)  # grid_sample's [-1, 1], texel centres at (i + .5) / T
        self.triangles = model.mesh.triangles.astype(np.int64)
        self._tri = torch.as_tensor(self.triangles, device=self.device)
        # The mesh seen from the front winds like its UV layout; turned-away triangles wind the other way.
        self.front_sign = float(np.sign(np.median(signed_areas(model.mesh.uvs, model.mesh.triangles))))

    # -- w_id ------------------------------------------------------------------------------------
    def identity_tensors(self, identity: Identity, *, grad: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        shape = torch.tensor(identity.shape, dtype=torch.float32, device=self.device, requires_grad=grad)
        app = torch.tensor(identity.appearance, dtype=torch.float32, device=self.device, requires_grad=grad)
        return shape, app

    def shape(self, shape_coef: torch.Tensor) -> torch.Tensor:
        """(468, 3) identity shape, canonical units."""
        return self._shape_mean + torch.einsum("k,kvc->vc", shape_coef, self._shape_basis)

    def texture(self, app_coef: torch.Tensor, *, open_eyes: bool = False) -> torch.Tensor:
        """(3, T, T) albedo: the mean plus the components (stored at C ≤ T) upsampled.
        Constant for a locked identity: compute it once, render it every frame. ``open_eyes``
        puts the donors' mean eyes and mouth into the openings, for renders with no subject
        behind them (in a frame the subject's own show through)."""
        detail = torch.einsum("k,kchw->chw", app_coef, self._app_basis)
        if detail.shape[-1] != self._app_mean.shape[-1]:
            detail = F.interpolate(detail[None], size=self._app_mean.shape[-2:], mode="bilinear",
                                   align_corners=False)[0]
        albedo = (self._app_mean + detail).clamp(0.0, 1.0)
        if open_eyes:
            albedo = torch.where(self._openings, self._open_mean, albedo)
        return albedo

    # -- rendering --------------------------------------------------------------------------------
    def posed(self, shape: torch.Tensor, aux: AuxCode) -> torch.Tensor:
        """(468, 3) frame coordinates of the identity's shape under ``aux``."""
        r = torch.as_tensor(rotation_matrix(aux.quaternion), dtype=torch.float32, device=self.device)
        verts = shape + torch.as_tensor(aux.expression, dtype=torch.float32, device=self.device)
        t = torch.as_tensor(aux.translation, dtype=torch.float32, device=self.device)
        return aux.scale * verts @ r.T + t

    def render(
        self, shape: torch.Tensor, texture: torch.Tensor, aux: AuxCode,
        crop: Crop | None = None,
    ) -> Render:
        posed = self.posed(shape, aux)
        points = posed.detach().cpu().numpy()
        crop = crop or Crop.around(points)
        local = posed - torch.tensor([crop.x0 + 0.5, crop.y0 + 0.5, 0.0], device=self.device)
        raster = rasterize(local.detach().cpu().numpy(), self.triangles, crop.height, crop.width,
                           front_sign=self.front_sign)
        pixels = torch.as_tensor(raster.pixels, device=self.device)
        corner_ids = self._tri[torch.as_tensor(raster.triangles, device=self.device, dtype=torch.long)]
        if posed.requires_grad:
            bary = _barycentric(local[:, :2], corner_ids, pixels, crop.width)
        else:
            bary = torch.as_tensor(raster.bary, device=self.device)
        uv = torch.einsum("kj,kjc->kc", bary, self._uvs[corner_ids])
        grid = uv.view(1, 1, -1, 2)
        colour = F.grid_sample(texture[None], grid, mode="bilinear", padding_mode="border", align_corners=False)
        flat = torch.zeros(3, crop.height * crop.width, device=self.device, dtype=colour.dtype)
        flat = flat.index_copy(1, pixels, colour[0, :, 0].clamp(0.0, 1.0))
        coverage = torch.zeros(crop.height * crop.width, device=self.device)
        coverage[pixels] = 1.0
        return Render(flat.view(3, crop.height, crop.width), coverage.view(crop.height, crop.width), crop, points)


@dataclass(frozen=True, slots=True)
class FastRender:
    """The inference render: ``rgb`` (h, w, 3) float32 in [0, 1], ``coverage`` (h, w) float32."""

    rgb: np.ndarray
    coverage: np.ndarray
    crop: Crop
    points: np.ndarray


class FastPath:
    """The same render without autograd, for every frame: numpy and OpenCV only.

    Rasterises at most ``raster_px`` across the face and upsamples the per-pixel UV map (UVs
    are linear inside a triangle and continuous across edges, so this loses little but the
    exact silhouette), then samples the texture with one ``cv2.remap``.
    """

    def __init__(self, generator: Generator, *, raster_px: int = 112) -> None:
        if raster_px < 32:
            raise ValueError(f"raster_px must be >= 32, got {raster_px}")
        self.generator = generator
        self.raster_px = raster_px
        self._uvs = generator.model.mesh.uvs.astype(np.float32)

    def posed(self, shape: np.ndarray, aux: AuxCode) -> np.ndarray:
        r = rotation_matrix(aux.quaternion)
        return (aux.scale * (shape + aux.expression) @ r.T + aux.translation).astype(np.float32)

    def render(self, shape: np.ndarray, texture: np.ndarray, aux: AuxCode, *, margin_px: int = 12) -> FastRender:
        """``shape`` (468, 3) canonical; ``texture`` (T, T, 3) float32 albedo."""
        points = self.posed(shape, aux)
        lo, hi = points[:, :2].min(0), points[:, :2].max(0)
        x0, y0 = (np.floor(lo).astype(int) - margin_px).tolist()
        x1, y1 = (np.ceil(hi).astype(int) + margin_px).tolist()
        crop = Crop(x0, y0, x1 - x0, y1 - y0)
        scale = min(1.0, self.raster_px / max(float(hi[0] - lo[0]), 1.0))
        hs, ws = max(int(np.ceil(crop.height * scale)), 1), max(int(np.ceil(crop.width * scale)), 1)
        local = (points - np.array([x0, y0, 0.0], np.float32)) * np.array([scale, scale, 1.0], np.float32)
        local[:, :2] -= 0.5  # continuous coordinates to pixel centres
        raster, uv = rasterize_attributes(local, self.generator.triangles, hs, ws, self._uvs,
                                          front_sign=self.generator.front_sign)
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
        else:
            coverage = maps[..., 2].copy()
        # outside ``coverage`` the colours are whatever the edge texels give: alpha is 0 there
        rgb = cv2.remap(texture, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return FastRender(rgb, coverage, crop, points)

    def shade(self, rgb: np.ndarray, frame_crop: np.ndarray, skin: np.ndarray) -> np.ndarray:
        """The render under the frame's light: × low-pass(frame) / low-pass(render) over ``skin``
        (h, w) weights, the low-passes taken at a few pixels per sigma (they hold nothing finer)."""
        h, w = skin.shape
        sigma = max(self.generator.shading_sigma * max(h, w), 1.0)
        factor = max(sigma / 2.0, 1.0)
        small = (max(int(round(w / factor)), 1), max(int(round(h / factor)), 1))
        s = sigma / factor
        # plain decimation: the Gaussian below, wide on this grid, removes what it aliases
        weight = cv2.resize(skin, small, interpolation=cv2.INTER_LINEAR)
        frame = cv2.resize(frame_crop, small, interpolation=cv2.INTER_LINEAR).astype(np.float32) * np.float32(1 / 255)
        render = cv2.resize(rgb, small, interpolation=cv2.INTER_LINEAR)
        num_f = cv2.GaussianBlur(frame * weight[..., None], (0, 0), s)
        num_r = cv2.GaussianBlur(render * weight[..., None], (0, 0), s)
        ratio = np.clip(num_f / np.maximum(num_r, 1e-4), 0.2, 5.0)
        ratio = cv2.resize(ratio, (w, h), interpolation=cv2.INTER_LINEAR)
        return np.clip(rgb * ratio, 0.0, 1.0, out=ratio)


def _barycentric(points: torch.Tensor, corner_ids: torch.Tensor, pixels: torch.Tensor, width: int) -> torch.Tensor:
    """Barycentrics of pixel centres in their triangles, differentiable w.r.t. ``points``."""
    py = torch.div(pixels, width, rounding_mode="floor").float()
    px = (pixels % width).float()
    a, b, c = (points[corner_ids[:, k]] for k in range(3))
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
    area = torch.where(area.abs() < 1e-9, torch.full_like(area, 1e-9), area)
    w0 = ((b[:, 0] - px) * (c[:, 1] - py) - (c[:, 0] - px) * (b[:, 1] - py)) / area
    w1 = ((c[:, 0] - px) * (a[:, 1] - py) - (a[:, 0] - px) * (c[:, 1] - py)) / area
    return torch.stack([w0, w1, 1.0 - w0 - w1], dim=1)
