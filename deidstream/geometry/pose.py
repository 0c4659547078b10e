"""Head pose from 468 landmarks: weighted Procrustes against the canonical mesh.

Gives the paper's camera/head code z_d as a unit quaternion (scipy's ``Rotation``), plus the
scale and translation that place the canonical face on the observed one, and the residual
the rigid fit leaves (expression, plus the person's own shape).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation


@dataclass(frozen=True, slots=True)
class HeadPose:
    """``observed ≈ scale * rotation.apply(canonical) + translation`` (image axes, pixels)."""

    quaternion: np.ndarray  # (4,) x, y, z, w; unit norm, w >= 0
    scale: float
    translation: np.ndarray  # (3,)
    residual: np.ndarray  # (468, 3) observed minus the posed canonical mesh, in canonical units

    @property
    def rotation(self) -> Rotation:
        return Rotation.from_quat(self.quaternion)

    def yaw_pitch_roll(self) -> tuple[float, float, float]:
        """Degrees: turn about the vertical axis, nod, tilt."""
        pitch, yaw, roll = self.rotation.as_euler("xyz", degrees=True)
        return float(yaw), float(pitch), float(roll)


def fit_pose(observed: np.ndarray, canonical: np.ndarray, weights: np.ndarray) -> HeadPose:
    """Weighted similarity Procrustes (Umeyama) of ``canonical`` onto ``observed`` (both (n, 3))."""
    observed = np.asarray(observed, np.float64)
    canonical = np.asarray(canonical, np.float64)
    w = np.asarray(weights, np.float64)
    if observed.shape != canonical.shape or observed.shape[1] != 3 or w.shape != observed.shape[:1]:
        raise ValueError(f"expected matching (n, 3) points and (n,) weights, got {observed.shape}, "
                         f"{canonical.shape}, {w.shape}")
    if w.sum() <= 0:
        raise ValueError("weights must have a positive sum")
    w = w / w.sum()
    mu_o = w @ observed
    mu_c = w @ canonical
    o, c = observed - mu_o, canonical - mu_c
    cov = (o * w[:, None]).T @ c
    u, sing, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.diag([1.0, 1.0, d])
    r = u @ fix @ vt
    var_c = float(w @ (c ** 2).sum(axis=1))
    scale = float((sing * np.diag(fix)).sum() / var_c)
    translation = mu_o - scale * r @ mu_c
    posed = scale * canonical @ r.T + translation
    quaternion = Rotation.from_matrix(r).as_quat()
    if quaternion[3] < 0:  # q and -q are the same turn; keep one
        quaternion = -quaternion
    residual = ((observed - posed) @ r) / scale  # back in the canonical frame and units
    return HeadPose(quaternion, scale, translation, residual)
