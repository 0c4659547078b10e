"""The per-frame decision: a rendered surrogate stays whole when another face's fallback region
overlaps it (a false or coasting box beside a face laid a blurred disc over half of it)."""

from __future__ import annotations

import numpy as np
from conftest import shared_file
from media import read_rgb

from deidstream.config import AnonymizerConfig, GeneratorConfig
from deidstream.engine.anonymizers import make_anonymizer
from deidstream.engine.deid import Deidentifier, FrameFaces
from deidstream.engine.generator.aux import canonical_shape
from deidstream.engine.generator.face_render import Surrogate, make_renderer
from deidstream.tracking.detector import MediaPipeDetector
from deidstream.tracking.landmarks import FaceLandmarker
from deidstream.types import FaceDetections, Person


def test_a_fallback_region_over_a_rendered_face_leaves_the_surrogate_whole():
    image = read_rgb(shared_file("videos/portrait_s18.mp4"), limit=1)[0]
    with MediaPipeDetector() as detector:
        found = detector.detect(image)
    assert len(found) == 1
    face = found.xyxy[0]
    with FaceLandmarker() as landmarker:
        points = landmarker.landmarks(image, FaceDetections(found.xyxy, found.score, track_id=np.array([1])))[0]
    assert points is not None
    renderer = make_renderer(GeneratorConfig())
    mesh = renderer.model.mesh
    person = Person(0, surrogate=Surrogate.of(renderer.model, renderer.model.mean_identity()),
                    shapes=[canonical_shape(points, mesh.vertices, mesh.weights)])
    # a box of the face's size, half over its right side: as a false detection beside the face was
    width = face[2] - face[0]
    beside = face + np.array([0.6 * width, 0.2 * width, 0.6 * width, 0.2 * width], np.float32)
    deid = Deidentifier(renderer, make_anonymizer(AnonymizerConfig()), GeneratorConfig(), {1: person})

    def run(boxes: np.ndarray, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        out = image.copy()
        faces = FaceDetections(boxes, np.ones(len(boxes), np.float32), track_id=np.array(ids))
        regions = deid.apply(out, FrameFaces(0, faces.with_landmarks([points] + [None] * (len(ids) - 1))))
        return out, regions

    alone, _ = run(found.xyxy, [1])
    both, regions = run(np.stack([face, beside]), [1, 2])
    rendered = renderer.paint(image.copy(), points, person.shape, person.surrogate)
    (x0, y0, x1, y1), covered = rendered.covered(image.shape)
    assert covered.sum() > 0.4 * (x1 - x0) * (y1 - y0)  # most of the render's box is surrogate
    # the rendered face's surrogate pixels are as they are without the other box...
    np.testing.assert_array_equal(both[y0:y1, x0:x1][covered], alone[y0:y1, x0:x1][covered])
    # ...and the other box is hidden everywhere else, over the rest of the face too
    bx0, by0, bx1, by1 = np.round(regions[1]).astype(int)
    changed = np.any(both != alone, axis=2)
    surrogate = np.zeros(image.shape[:2], bool)
    surrogate[y0:y1, x0:x1] = covered
    region = np.zeros(image.shape[:2], bool)
    region[by0:by1, bx0:bx1] = True
    assert (region & surrogate).sum() > 0.1 * region.sum()  # the test box really lies over the surrogate
    inner = np.zeros_like(region)  # the middle of the other region: inside its ellipse whatever the rounding
    cx, cy, rx, ry = (bx0 + bx1) / 2, (by0 + by1) / 2, (bx1 - bx0) / 2, (by1 - by0) / 2
    yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
    inner[((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 0.8] = True
    assert changed[inner & ~surrogate].mean() > 0.9
