"""E_aux: the auxiliary code of a face in a frame, from its 468 landmarks.

Weighted Procrustes of the person's identity shape onto this frame's landmarks gives z_d
(head rotation), scale and translation; what the rigid fit leaves is this frame's
expression, so a surrogate's shape plus it moves like the subject.

An identity shape is measured on views that may all show one expression (a subject who cries with
eyes shut through the whole clip, a donor photographed smiling). Its eyelids' and lips' openings are
expression, not identity: left in, a closed-eye subject's expression would be "as the identity", and
a surrogate with a donor's open eyes would stare where the subject's are shut. So every identity
shape has the vertical profile of its lid and lip lines set to the canonical face's (open eyes, closed
mouth), scaled to the face; the lines' widths, positions and tilt stay the face's own. A frame's
openings then all go into its expression, and the surrogate opens and closes with the subject.
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
    """The identity shape of ``points``: pose removed, in the canonical frame and units of ``reference``,
    openings as the reference's (:func:`neutral_openings`)."""
    pose = fit_pose(points, reference, weights)
    return neutral_openings((np.asarray(reference, np.float64) + pose.residual).astype(np.float32), reference)


# MediaPipe's lid lines of each eye and the lips' outer and inner lines (face_mesh_connections' loops)
EYE_LINES = ((249, 263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390),
             (7, 33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163))
LIP_LINES = (0, 37, 39, 40, 185, 61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267,
             13, 82, 81, 80, 191, 78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312)


def neutral_openings(shape: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``shape`` (468, 3) canonical with each eye's lid line and the lips' lines given ``reference``'s
    vertical profile about their own centre, scaled by the distance between the eyes (kept, so applying
    this twice changes nothing)."""
    out = np.array(shape, np.float32, copy=True)
    ref = np.asarray(reference, np.float32)
    eyes = [list(line) for line in EYE_LINES]
    span = float(np.linalg.norm(out[eyes[0]].mean(0) - out[eyes[1]].mean(0)))
    scale = span / max(float(np.linalg.norm(ref[eyes[0]].mean(0) - ref[eyes[1]].mean(0))), 1e-6)
    for line in (*eyes, list(LIP_LINES)):
        out[line, 1] = out[line, 1].mean() + scale * (ref[line, 1] - ref[line, 1].mean())
    return out
