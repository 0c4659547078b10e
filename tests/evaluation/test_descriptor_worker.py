"""dlib's descriptor network in child processes: the same numbers as in-process (to rounding), batches split
across workers, clear errors when a worker is gone, and the recogniser still works after close."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SAMPLE
from media import read_rgb

from deidstream.evaluation.judge import DlibRecognizer

# A worker holds BLAS to one thread and the test process does not, so sums are ordered differently
# (3e-7 apart); different faces are about 0.1 apart in every element, and dlib's threshold is 0.6.
SAME = {"rtol": 0, "atol": 1e-5}


@pytest.fixture(scope="module")
def chips():
    rec = DlibRecognizer("hog", upsample=1)
    frames = read_rgb(SAMPLE, limit=60)
    out = []
    for image in frames[::20]:
        faces = rec.detect(image)
        assert faces, "the sample clip shows a face"
        out.extend(rec.chips(image, faces[:1]))
    rng = np.random.default_rng(0)
    out.append(rng.integers(0, 256, (150, 150, 3), dtype=np.uint8))  # not a face: still a defined descriptor
    return rec, out


def test_workers_give_exactly_the_in_process_descriptors(chips):
    local, batch = chips
    expected = local.describe_chips(batch)
    remote = DlibRecognizer("hog", upsample=1, workers=2)
    try:
        got = remote.describe_chips(batch)  # split 2 + 2 across the workers, reassembled in order
        single = remote.describe_chips(batch[1:2])
    finally:
        remote.close()
    assert got.shape == (len(batch), 128)
    np.testing.assert_allclose(got, expected, **SAME)
    np.testing.assert_allclose(single[0], expected[1], **SAME)


def test_describe_on_a_frame_matches_and_survives_close(chips):
    local, _ = chips
    image = read_rgb(SAMPLE, limit=1)[0]
    faces = local.detect(image)
    remote = DlibRecognizer("hog", upsample=1, workers=1)
    got = remote.describe(image, faces[:1])
    remote.close()  # afterwards the network is loaded in-process
    np.testing.assert_allclose(got, local.describe(image, faces[:1]), **SAME)
    np.testing.assert_allclose(remote.describe(image, faces[:1]), got, **SAME)


def test_bad_chips_and_a_dead_worker_are_clear_errors(chips):
    _, batch = chips
    remote = DlibRecognizer("hog", upsample=1, workers=1)
    try:
        with pytest.raises(ValueError, match="150, 150, 3"):
            remote.describe_chips([np.zeros((100, 100, 3), np.uint8)])
        remote.describe_chips(batch[:1])
        worker = remote._worker._workers[0]
        worker._proc.kill()
        worker._proc.wait()
        with pytest.raises(RuntimeError, match="descriptor worker stopped"):
            remote.describe_chips(batch[:1])
    finally:
        remote.close()
