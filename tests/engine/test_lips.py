"""Parted lips: an open mouth shows the surrogate's lips up to their inner edge, not the donor's crease."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import SAMPLE
from media import read_rgb

from deidstream.config import GeneratorConfig
from deidstream.engine.generator.aux import canonical_shape
from deidstream.engine.generator.compose import Recipe, default_composer
from deidstream.engine.generator.face_render import FaceRenderer, Surrogate
from deidstream.engine.generator.facemodel import default_model
from deidstream.engine.generator.lips import parting
from deidstream.engine.generator.masks import InteriorContours, opening
from deidstream.geometry.mesh import default_mesh

MESH = default_mesh()
# MediaPipe's upper lip (inner and outer line) and the mouth's corners stay; the lower inner lip moves
UPPER = (191, 80, 81, 82, 13, 312, 311, 310, 415, 185, 40, 39, 37, 0, 267, 269, 270, 409, 78, 308, 61, 291)
LOWER_INNER = (95, 88, 178, 87, 14, 317, 402, 318, 324)


@pytest.fixture(scope="module")
def face(detector):
    from deidstream.tracking.landmarks import FaceLandmarker

    image = read_rgb(SAMPLE, limit=1)[0]
    with FaceLandmarker() as landmarker:
        points = landmarker.landmarks(image, detector.detect(image)[:1])[0]
    assert points is not None
    return image, points


def opened(points: np.ndarray, by: float = 0.35) -> np.ndarray:
    """``points`` with the jaw dropped: the lower lip and the chin move down by ``by`` mouth widths."""
    inner = points[list(InteriorContours.from_mediapipe().inner_lips), :2]
    centre, width = inner.mean(0), float(np.ptp(inner[:, 0]))
    lower = (points[:, 1] >= centre[1] - 1).astype(np.float32)
    lower[list(UPPER)], lower[list(LOWER_INNER)] = 0.0, 1.0
    near = np.exp(-(((points[:, 0] - centre[0]) / (0.6 * width)) ** 2))
    out = points.copy()
    out[:, 1] += by * width * near * lower
    return out


def darker_than_lips(texture: np.ndarray, band: np.ndarray, lips: np.ndarray) -> float:
    """Median L* of the crease band against the rest of the lips."""
    lightness = cv2.cvtColor(np.clip(texture[..., :3], 0.0, 1.0).astype(np.float32), cv2.COLOR_RGB2LAB)[..., 0]
    return float(np.median(lightness[band]) - np.median(lightness[lips]))


def test_parted_lips_lose_the_crease_and_nothing_else():
    composer = default_composer()
    parting_band = composer.parting.band
    creased = 0
    for donor in range(0, len(composer.bank), 5):
        texture = composer.texture(Recipe(donor))
        parted = composer.parting.parted(texture)
        assert np.array_equal(parted[~parting_band], texture[~parting_band]), "only the crease band changes"
        lips = composer.lips & ~parting_band
        crease = darker_than_lips(texture, parting_band, lips)
        if crease < -5:  # a donor whose lips meet in a shadow
            creased += 1
            after = darker_than_lips(parted, parting_band, lips)
            assert after > crease / 2, f"donor {donor}: the band stays {after:.1f} L* darker than the lips"
    assert creased >= 3, "the bank's donors have their lips' crease in the band"


def test_how_far_a_mouth_is_parted(face):
    _, points = face
    loop = list(InteriorContours.from_mediapipe().inner_lips)
    assert opening(points[loop, :2]) < 0.02 and parting(points) == 0.0  # the sample's first frame: lips together
    assert parting(opened(points)) == 1.0
    half = parting(opened(points, 0.14))
    assert 0.0 < half < 1.0


def test_the_render_draws_parted_lips_only_where_the_mouth_opens(face):
    """A surrogate whose parted texture is marked green in the band shows green around an open mouth and none
    on shut lips."""
    image, points = face
    composer = default_composer()
    texture = composer.texture(Recipe(7))
    marked = texture.copy()
    marked[composer.parting.band, :3] = (0.0, 1.0, 0.0)
    surrogate = Surrogate(Recipe(7), MESH.vertices.astype(np.float32), texture, parted=marked)
    config = GeneratorConfig()
    renderer = FaceRenderer(default_model(), shading_sigma=config.shading_sigma, raster_px=config.raster_px)
    shape = canonical_shape(points, MESH.vertices, MESH.weights)

    def green(at: np.ndarray) -> int:
        out = image.copy()
        renderer.paint(out, at, shape, surrogate)
        rgb = out.astype(np.int32)
        return int(((rgb[..., 1] - np.maximum(rgb[..., 0], rgb[..., 2])) > 60).sum())

    assert green(points) == 0
    assert green(opened(points)) > 50
