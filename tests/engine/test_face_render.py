"""One face in one frame: the surrogate takes the subject's skin tone in this frame's light."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SAMPLE
from media import read_rgb

from deidstream.config import GeneratorConfig
from deidstream.engine.generator.aux import canonical_shape
from deidstream.engine.generator.compose import CHEEKS, Recipe, default_composer
from deidstream.engine.generator.face_render import FaceRenderer, Surrogate
from deidstream.engine.generator.facemodel import default_model
from deidstream.engine.generator.masks import polygons_mask
from deidstream.geometry.mesh import default_mesh

MESH = default_mesh()


@pytest.fixture(scope="module")
def faces(detector):
    from deidstream.tracking.landmarks import FaceLandmarker

    out = []
    with FaceLandmarker() as landmarker:
        for image in read_rgb(SAMPLE, limit=300)[::100]:
            found = detector.detect(image)
            points = landmarker.landmarks(image, found[:1])[0] if len(found) else None
            if points is not None:
                out.append((image, points))
    return out


def cheek_colours(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(2, 3) median RGB of each cheek."""
    return np.array([np.median(image[polygons_mask([points[list(loop), :2]], image.shape[:2]) > 0], axis=0)
                     for loop in CHEEKS], np.float32)


def worst_cheek_error(faces, match_tone: bool) -> float:
    composer = default_composer()
    darkest = int(np.argmin(composer.bank.ita))  # the darkest donor, untoned, on a light-skinned woman
    surrogate = Surrogate(Recipe(darkest), MESH.vertices.astype(np.float32), composer.texture(Recipe(darkest)))
    config = GeneratorConfig()
    renderer = FaceRenderer(default_model(), shading_sigma=config.shading_sigma, raster_px=config.raster_px,
                            match_tone=match_tone)
    errors = []
    for image, points in faces:
        out = image.copy()
        renderer.paint(out, points, canonical_shape(points, MESH.vertices, MESH.weights), surrogate)
        errors.append(np.abs(cheek_colours(out, points) - cheek_colours(image, points)).max())
    return float(max(errors))


def test_the_surrogates_cheeks_take_the_subjects_skin_tone_in_this_frame(faces):
    assert len(faces) >= 2
    error = worst_cheek_error(faces, match_tone=True)
    assert error <= 4, f"a cheek {error:.0f} grey levels off the subject's own"
    assert error < 0.5 * worst_cheek_error(faces, match_tone=False)
