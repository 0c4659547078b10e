"""G_3d: render an identity latent in a frame's pose, expression and light.

``render(w_id, z_aux)`` poses the identity's mesh (its shape plus this frame's expression,
turned and placed by z_d, scale and translation), rasterises it with a depth test, and samples
the identity's albedo texture with ``grid_sample`` at each covered pixel's UV, so the image is
differentiable w.r.t. the appearance coefficients and, through barycentrics recomputed in
torch, w.r.t. the shape coefficients. :class:`deidstream.engine.generator.fast.FastPath` is the same
render without autograd, the one that runs per frame; it also carries this frame's shading and
colour over as a smooth ratio (the frame's low-pass over the render's), which matches the
scene's light.

Coordinates: landmarks and crops are in continuous image coordinates (pixel ``j`` spans
``[j, j + 1)``, as MediaPipe's normalised landmarks times the image size).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from deidstream.engine.generator.facemodel import FaceModel, Identity
from deidstream.engine.generator.fast import AuxCode, Crop, rotation_matrix
from deidstream.engine.generator.masks import InteriorContours, polygons_mask
from deidstream.engine.generator.raster import rasterize, signed_areas

__all__ = ["AuxCode", "Crop", "Generator", "Render", "rotation_matrix"]


@dataclass(frozen=True, slots=True)
class Render:
    """``rgb`` (3, h, w) in [0, 1] and ``coverage`` (h, w) in {0, 1} over ``crop``; ``points``
    (468, 3) the posed vertices in frame coordinates (what a landmark detector should find)."""

    rgb: torch.Tensor
    coverage: torch.Tensor
    crop: Crop
    points: np.ndarray


class Generator:
    """The morphable-model G_3d over one :class:`FaceModel` (torch, CPU by default)."""

    def __init__(self, model: FaceModel, *, device: str = "cpu") -> None:
        self.model = model
        self.device = torch.device(device)
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
