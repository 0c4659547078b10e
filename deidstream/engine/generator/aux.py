"""E_aux: the auxiliary code of a face in a frame, from its 468 landmarks.

Weighted Procrustes of the person's identity shape onto this frame's landmarks gives z_d
(head rotation), scale and translation; what the rigid fit leaves is this frame's
expression, so a surrogate's shape plus it moves like the subject.
"""

from __future__ import annotations

import numpy as np

from deidstream.engine.generator.fast import AuxCode
from deidstream.geometry.pose import fit_pose


def encode_aux(points: np.ndarray, identity_shape: np.ndarray, weights: np.ndarray) -> AuxCode:
    """``points`` (468, 3) frame coordinates; ``identity_shape`` (468, 3) canonical units."""
    pose = fit_pose(points, identity_shape, weights)
    return AuxCode(pose.quaternion, pose.scale, pose.translation, pose.residual.astype(np.float32))


def canonical_shape(points: np.ndarray, reference: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The face of ``points`` with pose removed, in the canonical frame and units of ``reference``."""
    pose = fit_pose(points, reference, weights)
    return (np.asarray(reference, np.float64) + pose.residual).astype(np.float32)
