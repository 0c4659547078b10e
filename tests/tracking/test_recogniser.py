"""The product's E_id: chips from MediaPipe landmarks (dlib's 5-point model in numpy) through dlib's
network in torch, against dlib's own pipeline on the shipped sample; identities; batching; stills."""

from __future__ import annotations

import functools
import tempfile

import numpy as np
import pytest
import torch
from conftest import SAMPLE, shared_file
from media import read_rgb

from deidstream.evaluation.judge import SAME_PERSON
from deidstream.tracking.eid import EidRecognizer
from deidstream.types import FaceDetections

FRAME_STEP = 25  # frames of the sample between looks: expressions and hands vary
# descriptors of the product's E_id against dlib's whole pipeline (its HOG box) on 19 frames of the sample:
# median 0.055, max 0.096 measured (hands and strong expressions; benchmarks/bench_eid.py for the shared faces)
MEDIAN_FROM_DLIB, MAX_FROM_DLIB = 0.08, 0.15


@functools.cache
def recognizer() -> EidRecognizer:
    return EidRecognizer()


def landmarked(path, step: int = FRAME_STEP, limit: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(frame, landmarks of its largest face) on every ``step``-th frame, found the way the pipeline finds them."""
    from deidstream.tracking.detector import MediaPipeDetector
    from deidstream.tracking.landmarks import FaceLandmarker

    out = []
    with MediaPipeDetector() as finder, FaceLandmarker() as landmarker:
        for image in read_rgb(path, limit=limit)[::step]:
            found = finder.detect(image)
            if not len(found):
                continue
            largest = int(np.argmax(np.prod(found.xyxy[:, 2:] - found.xyxy[:, :2], axis=1)))
            (points,) = landmarker.landmarks(image, FaceDetections(found.xyxy[largest:largest + 1],
                                                                   found.score[largest:largest + 1]))
            if points is not None:
                out.append((image, points))
    return out


@functools.cache
def sample() -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    faces = landmarked(SAMPLE)
    assert len(faces) >= 12, f"expected landmarks on most sampled frames of the sample, got {len(faces)}"
    rec = recognizer()
    return faces, np.concatenate([rec.describe_landmarks(image, [points]) for image, points in faces])


def test_descriptors_stay_near_dlibs_own_pipeline():
    from deidstream.evaluation.judge import DlibRecognizer

    pytest.importorskip("dlib")
    judge = DlibRecognizer("hog", upsample=0)
    faces, ours = sample()
    distances = []
    for (image, points), mine in zip(faces, ours):
        centre, width = points[:, :2].mean(axis=0), np.ptp(points[:, 0])
        found = [f for f in judge.detect(image) if np.all(np.abs((f.box[:2] + f.box[2:]) / 2 - centre) < 0.3 * width)]
        if found:
            distances.append(float(np.linalg.norm(judge.describe(image, found[:1])[0] - mine)))
    assert len(distances) >= 8, f"expected dlib to find the woman on most frames, got {len(distances)}"
    assert np.median(distances) <= MEDIAN_FROM_DLIB and max(distances) <= MAX_FROM_DLIB, distances


def test_the_same_woman_across_frames_and_not_another_person():
    _, ours = sample()
    mean = ours.mean(axis=0)
    assert np.linalg.norm(ours - mean, axis=1).max() < SAME_PERSON
    other = landmarked(shared_file("videos/talking_head_1.mp4"), step=20, limit=60)
    assert other, "expected the talking head's face"
    theirs = np.concatenate([recognizer().describe_landmarks(image, [points]) for image, points in other])
    assert np.linalg.norm(theirs - mean, axis=1).min() > SAME_PERSON


def test_a_batch_gives_what_faces_give_one_by_one():
    faces, ours = sample()
    rec = recognizer()
    chips = np.concatenate([rec.chips(image, [points]) for image, points in faces])
    assert chips.shape == (len(faces), 150, 150, 3) and chips.dtype == np.uint8
    np.testing.assert_allclose(rec.describe_chips(chips), ours, atol=1e-4, rtol=0)
    small = EidRecognizer(batch=3)
    np.testing.assert_allclose(small.describe_chips(chips), ours, atol=1e-4, rtol=0)
    assert rec.describe_chips([]).shape == (0, 128) and rec.chips(faces[0][0], []).shape == (0, 150, 150, 3)


def test_the_thread_count_is_left_to_the_caller():
    before = torch.get_num_threads()
    faces, _ = sample()
    EidRecognizer().describe_landmarks(*faces[0][:1], [faces[0][1]])
    assert torch.get_num_threads() == before


def test_onnxruntime_takes_the_threads_the_process_was_given(monkeypatch):
    """A Ray worker of one CPU (OMP_NUM_THREADS=1) must not run E_id on every core."""
    import os

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert EidRecognizer()._session.get_session_options().intra_op_num_threads == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    cores = len(os.sched_getaffinity(0))
    assert EidRecognizer()._session.get_session_options().intra_op_num_threads == cores


def test_the_default_backend_describes_faces_without_importing_torch():
    """torch's import is about a second of every default-mode start; once E_id's ONNX file is in the
    cache, onnxruntime runs it alone (the same descriptors as torch: tests/export)."""
    import subprocess
    import sys

    faces, _ = sample()
    chips = recognizer().chips(*faces[0][:1], [faces[0][1]])  # the ONNX file is now in the cache the child shares
    code = ("import sys, numpy as np\nfrom deidstream.tracking.eid import EidRecognizer\n"
            "np.save(sys.argv[2], EidRecognizer().describe_chips(np.load(sys.argv[1])))\n"
            "print('torch' in sys.modules)")
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/chips.npy", chips)
        out = subprocess.run([sys.executable, "-c", code, f"{tmp}/chips.npy", f"{tmp}/out.npy"],
                             capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "False", out.stderr[-2000:]
        np.testing.assert_allclose(np.load(f"{tmp}/out.npy"), recognizer().describe_chips(chips), atol=1e-6)


def test_a_still_is_found_and_described_like_a_frame():
    faces, ours = sample()
    rec = EidRecognizer()
    try:
        image = faces[0][0]
        (found,) = rec.detect(image)
        assert found.box.shape == (4,) and found.landmarks.shape == (468, 3)
        assert np.linalg.norm(rec.describe(image, [found])[0] - ours[0]) < 0.05
        assert rec.detect(np.zeros((240, 320, 3), np.uint8)) == []
    finally:
        rec.close()


def test_chips_that_are_not_chips_are_refused():
    with pytest.raises(ValueError, match=r"expected \(150, 150, 3\) uint8 chips"):
        recognizer().describe_chips(np.zeros((2, 112, 112, 3), np.uint8))
    with pytest.raises(ValueError, match="expected a batch of at least 1"):
        EidRecognizer(batch=0)
