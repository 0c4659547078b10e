"""The surrogate mode live: a person is resolved online and locked in the background; until then
their face is declined (the scheduler blurs it), afterwards it is rendered, and it stays one
surrogate."""

from __future__ import annotations

import time

import numpy as np
from conftest import shared_file
from media import read_rgb

from deidstream.config import DetectorConfig, GeneratorConfig
from deidstream.engine.online import SurrogatePath
from deidstream.tracking.detector import MediaPipeDetector
from deidstream.tracking.tracker import FaceTracker
from deidstream.twopass import make_renderer


def test_a_face_is_declined_until_its_surrogate_is_locked_then_rendered():
    frames = read_rgb(shared_file("videos/talking_head_1.mp4"))
    config = GeneratorConfig(tau=0.7, key=b"live test")
    path = SurrogatePath(config, make_renderer(config))
    tracker = FaceTracker()
    outcomes: list[bool] = []
    changed: list[float] = []
    try:
        with MediaPipeDetector(DetectorConfig(short_range=False, tile_size=0, full_range_every=1)) as detector:
            deadline = time.monotonic() + 90.0
            index = 0
            while time.monotonic() < deadline:
                image = frames[index % len(frames)].copy()
                faces = tracker.update(detector.detect(image), index, (image.shape[1], image.shape[0]))
                assert len(faces) == 1, f"frame {index}: one face expected"
                before = image.copy()
                prepared = path.prepare(image, faces)
                ready = path.ready(faces, 0)
                ok = path.render_face(image, faces, 0, time.monotonic() + 1.0, prepared)
                assert ok == ready, "a locked person's frontal face is rendered, nobody else's"
                outcomes.append(ok)
                if ok:
                    x0, y0, x1, y1 = faces.xyxy[0].astype(int)
                    changed.append(float(np.abs(image[y0:y1, x0:x1].astype(int) - before[y0:y1, x0:x1]).mean()))
                    if len(changed) >= 20:
                        break
                else:
                    assert np.array_equal(image, before), "a declined face must be left to the fallback untouched"
                    time.sleep(0.02)  # the worker needs the CPU more than we need frames
                index += 1
    finally:
        path.close()
    assert outcomes[0] is False, "no surrogate before the person is known"
    assert sum(outcomes) >= 20, f"the surrogate never took over ({sum(outcomes)} rendered of {len(outcomes)})"
    first = outcomes.index(True)
    assert all(outcomes[first:]), "once locked, the person's face keeps being rendered"
    assert min(changed) > 8.0, "a rendered face region must differ from the original"
