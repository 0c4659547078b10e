"""dlib's 5-point model run in numpy against dlib itself: the same points to the pixel, from
dlib's own boxes and from the landmarks' boxes the product uses; all faces at once; clear errors
on files that are not the model."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLE
from damaged import damaged
from media import read_rgb

from deidstream.errors import ConfigError
from deidstream.geometry.boxes import landmark_box
from deidstream.networks.eid import default_model_path
from deidstream.networks.shape_predictor import MODEL_FILE, load_shape_predictor

FRAME_STEP = 25


def _model() -> Path:
    try:
        return default_model_path().parent / MODEL_FILE
    except ConfigError as exc:
        pytest.skip(str(exc))


@functools.cache
def _sample_boxes() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames of the sample and, per frame, dlib's HOG boxes and the landmarks' boxes of its faces."""
    from deidstream.tracking.detector import MediaPipeDetector
    from deidstream.tracking.landmarks import FaceLandmarker

    dlib = pytest.importorskip("dlib")
    detector = dlib.get_frontal_face_detector()
    frames, boxes = [], []
    with MediaPipeDetector() as finder, FaceLandmarker() as landmarker:
        for image in read_rgb(SAMPLE)[::FRAME_STEP]:
            hog = [(r.left(), r.top(), r.right(), r.bottom()) for r in detector(image, 0)]
            marks = [p for p in landmarker.landmarks(image, finder.detect(image)) if p is not None]
            frames.append(image)
            boxes.append(np.array(hog + [landmark_box(p) for p in marks], np.float64).reshape(-1, 4))
    assert sum(len(b) for b in boxes) >= 16, "expected faces on most sampled frames of the sample"
    return frames, boxes


def test_points_are_dlibs_to_the_pixel():
    dlib = pytest.importorskip("dlib")
    theirs = dlib.shape_predictor(str(_model()))
    ours = load_shape_predictor()
    frames, boxes = _sample_boxes()
    for image, frame_boxes in zip(frames, boxes):
        for box in frame_boxes:
            shape = theirs(image, dlib.rectangle(*(int(round(v)) for v in box)))
            expected = np.array([(p.x, p.y) for p in shape.parts()], np.float64)
            np.testing.assert_array_equal(ours(image, box[None])[0], expected)


def test_faces_at_once_give_what_they_give_one_by_one():
    predictor = load_shape_predictor()
    frames, boxes = _sample_boxes()
    image, frame_boxes = max(zip(frames, boxes), key=lambda fb: len(fb[1]))
    together = predictor(image, frame_boxes)
    assert together.shape == (len(frame_boxes), 5, 2)
    np.testing.assert_array_equal(together, np.concatenate([predictor(image, b[None]) for b in frame_boxes]))
    assert predictor(image, np.zeros((0, 4))).shape == (0, 5, 2)


def test_a_grey_image_is_read_as_its_own_intensity():
    predictor = load_shape_predictor()
    frames, boxes = _sample_boxes()
    image, box = frames[0], boxes[0][:1]
    grey = (image.astype(np.uint16).sum(axis=2) // 3).astype(np.uint8)
    np.testing.assert_array_equal(predictor(grey, box), predictor(image, box))


def _other_version(tmp: Path) -> Path:
    (tmp / "other.dat").write_bytes(b"\x01\x07" + b"\x01\x00" * 100)
    return tmp / "other.dat"


@pytest.mark.parametrize(("make", "says"), [
    ("garbage", "its bytes are not dlib's integers"),
    (_other_version, "its version is 7, expected 1"),
    ("truncated", "its bytes are not dlib's integers"),
    ("extended", "1 values left over"),
    ("missing", "cannot read"),
])
def test_a_file_that_is_not_the_model_is_refused_by_name(tmp_path, make, says):
    path = damaged(make, _model(), tmp_path) if isinstance(make, str) else make(tmp_path)
    with pytest.raises(ConfigError, match=says) as caught:
        load_shape_predictor(path)
    assert path.name in str(caught.value)


def test_the_parsed_model_is_kept_in_the_cache_and_a_broken_copy_is_parsed_again(tmp_path, monkeypatch):
    from deidstream.networks import shape_predictor as sp

    monkeypatch.setenv("DEIDSTREAM_CACHE", str(tmp_path))
    sp._cached.cache_clear()
    parsed = sp.load_shape_predictor()
    (saved,) = (tmp_path / "parsed").glob("*.npz")
    sp._cached.cache_clear()
    again = sp.load_shape_predictor()  # from the cache now
    for name in sp.ShapePredictor.__slots__:
        np.testing.assert_array_equal(getattr(again, name), getattr(parsed, name))
        assert getattr(again, name).dtype == getattr(parsed, name).dtype
    saved.write_bytes(b"not an npz")
    sp._cached.cache_clear()
    np.testing.assert_array_equal(sp.load_shape_predictor().leaves, parsed.leaves)
    sp._cached.cache_clear()
