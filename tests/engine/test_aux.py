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


def test_openings_are_set_to_the_references_and_nothing_else_moves():
    closed = shut(MESH.vertices)
    neutral = neutral_openings(closed, MESH.vertices)
    assert np.allclose(neutral, MESH.vertices, atol=1e-4), "the reference's own openings, at its own scale"
    wider = closed * np.array([1.2, 1.0, 1.0], np.float32)
    moved = neutral_openings(wider, MESH.vertices)
    lines = sorted({v for line in EYE_LINES for v in line} | set(LIP_LINES))
    others = np.setdiff1d(np.arange(len(MESH.vertices)), lines)
    assert np.array_equal(moved[others], wider[others])
    assert np.array_equal(moved[:, [0, 2]], wider[:, [0, 2]]), "widths and depths stay the face's own"
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
