"""E_aux and identity shapes: a surrogate opens and shuts its eyes and mouth with the subject, whatever
expression the subject's (or the donor's) identity shape was measured in."""

from __future__ import annotations

import numpy as np

from deidstream.engine.generator.aux import EYE_LINES, LIP_LINES, canonical_shape, encode_aux, neutral_openings
from deidstream.engine.generator.facemodel import default_model
from deidstream.engine.generator.fast import FastPath
from deidstream.engine.generator.masks import InteriorContours, opening
from deidstream.geometry.mesh import default_mesh

MESH = default_mesh()
EYES = InteriorContours.from_mediapipe()


def shut(shape: np.ndarray) -> np.ndarray:
    """``shape`` with both eyes closed: every lid-line vertex brought to its eye's middle height."""
    out = shape.copy()
    for line in EYE_LINES:
        out[list(line), 1] = out[list(line), 1].mean()
    return out


def in_frame(shape: np.ndarray) -> np.ndarray:
    """Landmarks of ``shape`` seen head-on, 20 px per canonical unit, around (320, 240)."""
    return (shape * 20.0 + np.array([320.0, 240.0, 0.0])).astype(np.float32)


def eye_opening(points: np.ndarray) -> float:
    return float(np.mean([opening(points[loop, :2]) for loop in (EYES.left_eye, EYES.right_eye)]))


def test_only_the_openings_move_and_the_lids_own_curves_stay():
    closed = shut(MESH.vertices)
    neutral = neutral_openings(closed, MESH.vertices)
    assert abs(eye_opening(neutral) - eye_opening(MESH.vertices)) < 0.1 * eye_opening(MESH.vertices)
    lines = sorted(set(np.concatenate([np.array(EYE_LINES).ravel(), LIP_LINES])))
    others = np.setdiff1d(np.arange(len(MESH.vertices)), lines)
    wider = MESH.vertices * np.array([1.2, 1.0, 1.0], np.float32)
    moved = neutral_openings(wider, MESH.vertices)
    assert np.array_equal(moved[others], wider[others]) and np.array_equal(moved[:, [0, 2]], wider[:, [0, 2]])
    # a lid's own curve is identity: a bump on one upper lid stays
    bumped = MESH.vertices.copy()
    bumped[159, 1] -= 0.3
    kept = neutral_openings(bumped, MESH.vertices)[159, 1] - neutral_openings(MESH.vertices, MESH.vertices)[159, 1]
    assert kept < -0.15
    assert np.allclose(neutral_openings(moved, MESH.vertices), moved, atol=1e-5), "applying it twice is once"


def test_a_subject_measured_with_shut_eyes_still_opens_and_shuts_them_on_the_surrogate():
    model = default_model()
    fast = FastPath(model)
    # her identity shape comes from views where she cried with her eyes shut
    identity = canonical_shape(in_frame(shut(MESH.vertices)), MESH.vertices, MESH.weights)
    donor = MESH.vertices  # a donor photographed with open eyes
    surrogate = neutral_openings(donor, MESH.vertices)
    for frame_shape, expect_open in ((shut(MESH.vertices), False), (MESH.vertices, True)):
        points = in_frame(frame_shape)
        posed = fast.posed(surrogate, encode_aux(points, identity, MESH.weights))
        if expect_open:
            assert eye_opening(posed) > 0.8 * eye_opening(points) > 0.1
        else:
            assert eye_opening(posed) < 0.05, "shut with her, not the donor's open stare"
