"""FaceMesh landmarks per tracked face: the mirrored second looks that find three-quarter views."""

from __future__ import annotations

import numpy as np
from conftest import SAMPLE, shared_file
from media import read_rgb

from deidstream.geometry.boxes import extent_iou
from deidstream.stream.source import FileSource
from deidstream.tracking.detector import MediaPipeDetector
from deidstream.tracking.landmarks import MIN_BOX_IOU, FaceLandmarker, _mirror_index
from deidstream.types import FaceDetections, Frame


def test_mirror_index_swaps_sides_and_keeps_the_midline():
    mirror = _mirror_index()
    assert (mirror[mirror] == np.arange(468)).all()
    assert mirror[33] == 263 and mirror[133] == 362 and mirror[61] == 291  # eye corners, mouth corners
    assert mirror[1] == 1 and mirror[152] == 152  # nose tip, chin


def test_a_mirrored_look_gives_the_same_landmarks_as_a_direct_one():
    """Un-mirroring (coordinates and the point order) puts every point back on the face it marks."""
    image = read_rgb(SAMPLE, limit=1)[0]
    with MediaPipeDetector() as det, FaceLandmarker(second_looks=True) as lm:
        box = det.detect(image).xyxy[0]
        direct = lm._look(image, box, lm._mesh, lm.crop_scale)
        mirrored = lm._look(image, box, lm._mesh, lm.crop_scale, mirrored=True)
    assert direct is not None and mirrored is not None
    width = float(direct[:, 0].max() - direct[:, 0].min())
    error = np.linalg.norm(direct[:, :2] - mirrored[:, :2], axis=1)
    assert np.median(error) < 0.03 * width and error.max() < 0.12 * width, error.max() / width


def test_second_looks_find_three_quarter_faces_on_their_own_boxes():
    """The stage clip's audience, turned 40-55°: FaceMesh's first look misses many of them; what a second look
    finds lies on the face's own box."""
    path = shared_file("videos/stage_multi_person_cuts.mp4")
    first, second, total = 0, 0, 0
    with FileSource(path) as src, MediaPipeDetector() as det, FaceLandmarker() as plain, \
            FaceLandmarker(second_looks=True) as again:
        for item in src.items():
            if not isinstance(item, Frame) or item.index < 210 or item.index % 4:
                continue
            found = det.detect(item.image)
            wide = found.xyxy[(found.xyxy[:, 2] - found.xyxy[:, 0]) >= 64]
            faces = FaceDetections(wide, np.ones(len(wide), np.float32))
            total += len(wide)
            first_missed = [p is None for p in plain.landmarks(item.image, faces)]
            first += first_missed.count(False)
            for box, pts, missed in zip(wide, again.landmarks(item.image, faces), first_missed):
                if pts is None:
                    continue
                second += 1
                assert not missed or extent_iou(pts, box) >= MIN_BOX_IOU
    assert total >= 20 and second >= first + max(3, total // 10), (first, second, total)
