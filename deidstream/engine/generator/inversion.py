"""Inversion: the identity latent w_id of a tracked person, fitted from their frames.

Shape: each frame's landmarks with pose removed, averaged over frames, projected on the shape
components. Appearance: each frame unwrapped into UV space, its lighting divided out, the
textures averaged by how well each frame saw each texel, and projected (ridge least squares
under that visibility) on the appearance components. ``render(w_id, z_aux)`` then reconstructs
the person, which shows the encoders and the generator agree.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import cv2
import numpy as np

from deidstream.engine.generator.aux import canonical_shape
from deidstream.engine.generator.facemodel import FaceModel, Identity, normalise_lighting
from deidstream.engine.generator.uvmap import UVAtlas
from deidstream.types import FaceView

log = logging.getLogger(__name__)


class Inverter:
    def __init__(self, model: FaceModel, *, noise: float = 0.03, lighting_sigma: float = 16.0,
                 full_weight: float = 0.35) -> None:
        self.model = model
        self.atlas = UVAtlas(model.mesh.uvs, model.mesh.triangles, model.tex_size)
        self.noise = noise  # per-texel error the prior N(0, 1) on each coefficient is weighed against
        self.lighting_sigma = lighting_sigma * model.tex_size / 256.0
        self.full_weight = full_weight
        c = model.app_basis.shape[1]
        small_mask = cv2.resize(model.tex_mask.astype(np.uint8), (c, c), interpolation=cv2.INTER_NEAREST) > 0
        self._small_mask = small_mask
        self._basis = model.app_basis[:, small_mask].reshape(model.n_appearance, -1).T.astype(np.float64)

    def person_shape(self, observations: Sequence[FaceView]) -> np.ndarray:
        mesh = self.model.mesh
        return np.mean([canonical_shape(o.points, mesh.vertices, mesh.weights) for o in observations], axis=0)

    def invert(self, observations: Sequence[FaceView]) -> Identity:
        if not observations:
            raise ValueError("inversion needs at least one observation")
        shape_coef = self.model.project_shape(self.person_shape(observations))
        albedo, trust = self.albedo(observations)
        return Identity(shape_coef, self.project_albedo(albedo, trust))

    def albedo(self, observations: Sequence[FaceView]) -> tuple[np.ndarray, np.ndarray]:
        """Lighting-normalised (T, T, 3) texture and (T, T) trust in [0, 1] from all frames."""
        total = np.zeros((self.model.tex_size, self.model.tex_size, 3), np.float64)
        weight = np.zeros((self.model.tex_size, self.model.tex_size), np.float64)
        for o in observations:
            u = self.atlas.unwrap(o.image, o.points)
            tex = normalise_lighting(u.texture, u.weight, self.model.app_mean, self.lighting_sigma)
            total += tex * u.weight[..., None]
            weight += u.weight
        albedo = self.atlas.fill_openings((total / np.maximum(weight, 1e-6)[..., None]).astype(np.float32))
        trust = np.clip(weight / (self.full_weight * len(observations)), 0.0, 1.0).astype(np.float32)
        return albedo, trust

    def project_albedo(self, albedo: np.ndarray, trust: np.ndarray) -> np.ndarray:
        c = self.model.app_basis.shape[1]
        diff = cv2.resize(albedo - self.model.app_mean, (c, c), interpolation=cv2.INTER_AREA)
        w = cv2.resize(trust * self.model.tex_mask, (c, c), interpolation=cv2.INTER_AREA)[self._small_mask]
        w3 = np.repeat(w, 3).astype(np.float64)
        b = self._basis
        lhs = b.T @ (b * w3[:, None]) + self.noise ** 2 * np.eye(b.shape[1])
        rhs = b.T @ (w3 * diff[self._small_mask].reshape(-1))
        return np.linalg.solve(lhs, rhs).astype(np.float32)
