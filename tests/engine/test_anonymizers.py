"""The fallback anonymisers change every pixel of a face region and nothing outside it."""

from __future__ import annotations

import numpy as np
import pytest

from deidstream.config import AnonymizerConfig
from deidstream.engine.anonymizers import make_anonymizer
from deidstream.errors import ConfigError
from deidstream.geometry.boxes import pixel_bounds
from deidstream.types import FaceDetections


def textured(h: int = 120, w: int = 160, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


FACE = FaceDetections(np.array([[50, 30, 90, 80]], np.float32), np.ones(1, np.float32))


@pytest.mark.parametrize("mode", ["blur", "pixelate", "solid"])
@pytest.mark.parametrize("shape", ["ellipse", "box"])
def test_face_box_changes_and_outside_of_region_does_not(mode, shape):
    img = textured()
    before = img.copy()
    anon = make_anonymizer(AnonymizerConfig(mode=mode, shape=shape))
    regions = anon.apply(img, FACE)
    x0, y0, x1, y1 = 50, 30, 90, 80
    changed = np.any(img != before, axis=2)
    # The detector's box itself (inside the margin) is hidden almost everywhere.
    assert changed[y0:y1, x0:x1].mean() > 0.95
    # Detail is gone: what remains varies far less than the random texture did.
    assert img[y0:y1, x0:x1].std() < 0.5 * before[y0:y1, x0:x1].std()
    rx0, ry0, rx1, ry1 = pixel_bounds(regions[0], 160, 120)
    outside = np.ones_like(changed)
    outside[ry0:ry1, rx0:rx1] = False
    assert not changed[outside].any()


def test_region_touching_the_frame_edge_covers_last_row_and_column():
    img = textured()
    before = img.copy()
    edge = FaceDetections(np.array([[130, 90, 160, 120]], np.float32), np.ones(1, np.float32))
    make_anonymizer(AnonymizerConfig(mode="solid", shape="box", color=(255, 0, 255))).apply(img, edge)
    assert (img[119, 159] == (255, 0, 255)).all()
    assert (img[90:, 130:] == (255, 0, 255)).all()
    assert (img[:80, :100] == before[:80, :100]).all()


def test_faces_outside_the_frame_are_ignored():
    img = textured()
    before = img.copy()
    far = FaceDetections(np.array([[500, 500, 540, 540]], np.float32), np.ones(1, np.float32))
    make_anonymizer(AnonymizerConfig()).apply(img, far)
    assert (img == before).all()


def test_no_faces_changes_nothing():
    img = textured()
    before = img.copy()
    make_anonymizer(AnonymizerConfig()).apply(img, FaceDetections.empty())
    assert (img == before).all()


def test_unknown_mode_raises_instead_of_leaving_faces():
    with pytest.raises(ConfigError, match="unknown mode"):
        AnonymizerConfig(mode="none")
