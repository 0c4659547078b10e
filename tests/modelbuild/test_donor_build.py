"""The donor build's texture completion: a cheek the donor photo saw edge-on comes from the other side."""

from __future__ import annotations

import numpy as np

from deidstream.modelbuild.donors import _mirror_filled

SIZE = 128
SKIN = (0.8, 0.6, 0.5)


def _donor() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A face whose left outer cheek holds a dark streak seen edge-on (low weight), with a mole on the right
    cheek seen as well as its mirror image, and an eye region seen edge-on in the middle."""
    texture = np.full((SIZE, SIZE, 3), SKIN, np.float32)
    weight = np.full((SIZE, SIZE), 0.9, np.float32)
    texture[40:90, 5:20] = 0.1  # hair stretched over the foreshortened cheek
    weight[30:100, 0:24] = 0.2
    texture[5:9, 110:114] = 0.3  # the mole
    texture[50:56, 50:58] = 0.05
    weight[45:60, 45:62] = 0.1
    return texture, weight, np.ones((SIZE, SIZE), bool)


def test_a_streak_on_a_cheek_seen_edge_on_is_replaced_by_the_other_cheek():
    texture, weight, mask = _donor()
    out = _mirror_filled(texture, weight, mask)
    assert np.abs(out[40:90, 5:20] - SKIN).max() < 0.02


def test_what_both_sides_saw_alike_and_the_middle_of_the_face_are_the_donors_own():
    texture, weight, mask = _donor()
    out = _mirror_filled(texture, weight, mask)
    assert np.array_equal(out[0:14, 100:128], texture[0:14, 100:128])  # the mole stays
    assert np.array_equal(out[0:14, 0:28], texture[0:14, 0:28])  # ... and is not copied across
    assert np.array_equal(out[45:60, 40:88], texture[45:60, 40:88])  # eyes, nose, mouth: never mirrored


def test_outside_the_face_nothing_is_taken():
    texture, weight, mask = _donor()
    mask[:, 100:] = False  # the other side is off the face's layout there
    out = _mirror_filled(texture, weight, mask)
    assert np.array_equal(out[40:90, 5:20], texture[40:90, 5:20])

