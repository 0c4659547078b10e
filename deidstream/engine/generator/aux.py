"""E_aux: the auxiliary code of a face in a frame, from its 468 landmarks.

Weighted Procrustes of the person's identity shape onto this frame's landmarks gives z_d
(head rotation), scale and translation; what the rigid fit leaves is this frame's
expression, so a surrogate's shape plus it moves like the subject.

A subject's identity shape is measured on views that may all show one expression (someone who cries
with eyes shut through the whole clip). Its eyelids' and lips' openings are expression: left in, shut
eyes would be "the identity", the frames' expression would hold no closing, and a surrogate with a
donor's open eyes would stare where the subject's are shut. So a subject's identity shape has its
openings set to the canonical face's (open eyes, closed mouth), scaled to the face; the lids' and
lips' own curves stay. A frame's openings then all go into its expression. A donor's shape keeps its
own openings: how wide a face's eyes are is part of who it is, and a surrogate keeps the donor's.
"""

from __future__ import annotations

import numpy as np

from deidstream.engine.generator.fast import AuxCode
from deidstream.geometry.pose import fit_pose


def encode_aux(points: np.ndarray, identity_shape: np.ndarray, weights: np.ndarray) -> AuxCode:
    """``points`` (468, 3) frame coordinates; ``identity_shape`` (468, 3) canonical units."""
    pose = fit_pose(points, identity_shape, weights)
    return AuxCode(pose.quaternion, pose.scale, pose.translation, pose.residual.astype(np.float32))


def canonical_shape(points: np.ndarray, reference: np.ndarray, weights: np.ndarray, *,
                    neutral: bool = True) -> np.ndarray:
    """The identity shape of ``points``: pose removed, in the canonical frame and units of ``reference``,
    with ``neutral`` openings as the reference's (:func:`neutral_openings`)."""
    pose = fit_pose(points, reference, weights)
    shape = (np.asarray(reference, np.float64) + pose.residual).astype(np.float32)
    return neutral_openings(shape, reference) if neutral else shape


# MediaPipe's lid lines (two corners, upper and lower lid) and lip lines (inner corners, upper and lower inner
# lip; the outer lip lines move with them): face_mesh_connections' eye and lip loops, split at the corners
EYES = (((33, 133), (246, 161, 160, 159, 158, 157, 173), (155, 154, 153, 145, 144, 163, 7)),
        ((263, 362), (466, 388, 387, 386, 385, 384, 398), (382, 381, 380, 374, 373, 390, 249)))
MOUTH = ((78, 308), (82, 81, 80, 191, 13, 415, 310, 311, 312), (95, 88, 178, 87, 14, 317, 402, 318, 324))
OUTER_LIPS = ((61, 291), (0, 37, 39, 40, 185, 409, 270, 269, 267), (146, 91, 181, 84, 17, 314, 405, 321, 375))
EYE_LINES = tuple((*c, *u, *lo) for c, u, lo in EYES)
LIP_LINES = tuple(v for c, u, lo in (MOUTH, OUTER_LIPS) for v in (*c, *u, *lo))


def neutral_openings(shape: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``shape`` (468, 3) canonical with each eye's and the mouth's opening (the mean height between upper
    and lower lid, or inner lips, across their middle) set to ``reference``'s, scaled by the distance
    between the eyes' corners. Only the opening moves: the lids' and lips' own curves, the corners and the
    lips' thickness stay the face's (they are identity). Applying it twice changes nothing."""
    out = np.array(shape, np.float32, copy=True)
    ref = np.asarray(reference, np.float32)
    scale = _eye_span(out) / max(_eye_span(ref), 1e-6)
    for corners, upper, lower in EYES:
        change = scale * _opening(ref, corners, upper, lower) - _opening(out, corners, upper, lower)
        _open_by(out, corners, upper, lower, change)
    change = scale * _opening(ref, *MOUTH) - _opening(out, *MOUTH)
    _open_by(out, *MOUTH, change)
    _open_by(out, *OUTER_LIPS, change)
    return out


def _eye_span(shape: np.ndarray) -> float:
    (a, b), (c, d) = (eye[0] for eye in EYES)
    return float(np.linalg.norm((shape[a] + shape[b] - shape[c] - shape[d]) / 2.0))


def _along(shape: np.ndarray, corners: tuple[int, int], vertices: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per vertex: weight (sin of its place between the corners: 0 there, 1 midway) and height below the
    corners' line."""
    a, b = shape[corners[0]], shape[corners[1]]
    p = shape[list(vertices)]
    t = np.clip((p[:, 0] - a[0]) / (b[0] - a[0] if abs(b[0] - a[0]) > 1e-6 else 1e-6), 0.0, 1.0)
    return np.sin(np.pi * t), p[:, 1] - (a[1] + t * (b[1] - a[1]))


def _opening(shape: np.ndarray, corners: tuple[int, int], upper: tuple[int, ...], lower: tuple[int, ...]) -> float:
    heights = []
    for side in (lower, upper):
        w, h = _along(shape, corners, side)
        middle = w > 0.3
        heights.append(float(np.mean(h[middle] / w[middle])) if middle.any() else 0.0)
    return heights[0] - heights[1]


def _open_by(shape: np.ndarray, corners: tuple[int, int], upper: tuple[int, ...], lower: tuple[int, ...],
             change: float) -> None:
    for side, sign in ((upper, -0.5), (lower, 0.5)):
        w, _ = _along(shape, corners, side)
        shape[list(side), 1] += (sign * change * w).astype(np.float32)
