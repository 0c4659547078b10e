"""E_id in torch against dlib itself: same descriptors on the same chips, the same chips from the
same 5 points, batching, gradients, and clear errors on files that are not the network."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SAMPLE
from damaged import damaged
from media import read_rgb

from deidstream.errors import ConfigError
from deidstream.geometry.chips import chips_tensor, face_chips, face_chips_from_mediapipe
from deidstream.networks.eid import default_model_path, load_face_descriptor_net

FRAME_STEP = 25  # frames of the sample between looks: expressions and hands vary


def _model() -> Path:
    try:
        path = default_model_path()
    except ConfigError as exc:
        pytest.skip(str(exc))
    return path


@functools.cache
def _sample_faces() -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """dlib on the shipped sample: per face its frame, 5 points, dlib's chip and dlib's descriptor."""
    dlib = pytest.importorskip("dlib")
    models = _model().parent
    detector = dlib.get_frontal_face_detector()
    shapes = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    encoder = dlib.face_recognition_model_v1(str(_model()))
    frames, points, chips = [], [], []
    for image in read_rgb(SAMPLE)[::FRAME_STEP]:
        image = np.ascontiguousarray(image)
        for rect in detector(image, 0):
            found = dlib.full_object_detections()
            found.append(shapes(image, rect))
            frames.append(image)
            points.append([(p.x, p.y) for p in found[0].parts()])
            chips.append(dlib.get_face_chips(image, found, 150, 0.25)[0])
    assert len(chips) >= 8, f"expected faces on at least 8 frames of the sample, got {len(chips)}"
    descriptors = np.array(encoder.compute_face_descriptor(chips), np.float32)
    return frames, np.array(points, np.float64), np.stack(chips), descriptors


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    _model()
    return load_face_descriptor_net()


def test_descriptors_match_dlib_on_the_same_chips(net):
    _, _, chips, expected = _sample_faces()
    with torch.inference_mode():
        got = net(chips_tensor(chips)).numpy()
    error = np.linalg.norm(got - expected, axis=1)
    assert np.median(error) <= 0.005 and error.max() <= 0.02, f"median {np.median(error):.2e}, max {error.max():.2e}"


def test_a_batch_gives_what_faces_give_one_by_one(net):
    chips = chips_tensor(_sample_faces()[2][:6])
    with torch.inference_mode():
        batched = net(chips)
        single = torch.cat([net(chips[i:i + 1]) for i in range(len(chips))])
    assert batched.shape == (6, 128)
    torch.testing.assert_close(batched, single, atol=1e-4, rtol=0)


def test_gradients_reach_the_chip(net):
    chips = chips_tensor(_sample_faces()[2][:2]).requires_grad_(True)
    descriptors = net(chips)
    (descriptors[0] - descriptors[1]).norm().backward()
    grad = chips.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters()), "the weights are frozen"


def test_each_load_is_its_own_module(net):
    other = load_face_descriptor_net()
    assert other is not net
    with torch.no_grad():
        other.fc.weight.zero_()
    assert net.fc.weight.abs().sum() > 0


@pytest.mark.parametrize("shape", [(2, 150, 150, 3), (2, 3, 112, 112), (3, 150, 150)])
def test_chips_of_the_wrong_shape_are_refused(net, shape):
    with pytest.raises(ValueError, match="expected chips of shape"):
        net(torch.zeros(shape))


def _other_version(tmp: Path) -> Path:
    (tmp / "other.dat").write_bytes(b"\x01\x07" + bytes(1000))
    return tmp / "other.dat"


def _shape_predictor(tmp: Path) -> Path:
    return _model().parent / "shape_predictor_5_face_landmarks.dat"


@pytest.mark.parametrize(("make", "says"), [
    ("garbage", "expected an integer, got control byte 0x00"),
    (_other_version, "expected loss layer version 1, got 7"),
    (_shape_predictor, "not the dlib network expected"),
    ("truncated", "the file ends early"),
    ("extended", "2 bytes left after the network"),
    ("missing", "cannot read"),
])
def test_a_file_that_is_not_the_network_is_refused_by_name(tmp_path, make, says):
    path = damaged(make, _model(), tmp_path) if isinstance(make, str) else make(tmp_path)
    with pytest.raises(ConfigError, match=says) as caught:
        load_face_descriptor_net(path)
    assert str(path) in str(caught.value)


def test_chips_from_dlib_points_match_dlib_get_face_chips():
    frames, points, expected, _ = _sample_faces()
    got = np.concatenate([face_chips(image, p[None]) for image, p in zip(frames, points)])
    diff = np.abs(got.astype(np.int16) - expected.astype(np.int16))
    assert got.shape == expected.shape and got.dtype == np.uint8
    assert diff.mean() < 0.25 and (diff > 2).mean() < 0.001, f"mean {diff.mean():.3f}, max {diff.max()}"


def test_mediapipe_landmarks_cut_through_their_dlib_points():
    frames, points, _, _ = _sample_faces()
    landmarks = np.zeros((1, 478, 3))
    landmarks[0, [263, 362, 33, 133, 2], :2] = points[0]
    np.testing.assert_array_equal(face_chips_from_mediapipe(frames[0], landmarks), face_chips(frames[0], points[:1]))
    with pytest.raises(ValueError, match="expected MediaPipe landmarks"):
        face_chips_from_mediapipe(frames[0], landmarks[:, :100])
