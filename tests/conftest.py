from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DEIDSTREAM_SHARED_DATA", REPO.parent / "shared" / "data"))
# Shipped with the project (Pexels licence): one real face, hands over it, strong expressions, audio. The
# always-present real-face fixture, on a clone without the shared data too.
SAMPLE = REPO / "examples" / "sample.mp4"

# Run by the system Python (python3-gi) as a subprocess, never imported by pytest.
collect_ignore = ["rtsp_camera.py"]


def interruptible() -> None:
    """``preexec_fn`` for a child a test will Ctrl-C: a shell that runs the tests in the background
    ignores SIGINT, children inherit that, and Python installs its handler only where it is not."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def shared_file(relative: str) -> Path:
    """A file from the shared test data, or a skip that says why."""
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"shared test data not found: {path} (set DEIDSTREAM_SHARED_DATA to its folder)")
    return path


@pytest.fixture(scope="session")
def detector():
    from deidstream.tracking.detector import MediaPipeDetector

    with MediaPipeDetector() as det:
        yield det


@pytest.fixture(scope="session")
def sample_subject(detector):
    """The sample's woman as the lock sees her: (E_id recognizer, mean embedding, her three best views) from
    every 50th of the first 300 frames (frames without hands over the face come first)."""
    from media import read_rgb

    from deidstream.engine.lock import face_chip
    from deidstream.tracking.eid import EidRecognizer
    from deidstream.tracking.landmarks import FaceLandmarker
    from deidstream.tracking.people import face_view

    recognizer = EidRecognizer()
    views, chips = [], []
    with FaceLandmarker() as landmarker:
        for image in read_rgb(SAMPLE, limit=300)[::50]:
            faces = detector.detect(image)
            points = landmarker.landmarks(image, faces[:1])[0] if len(faces) else None
            if points is not None:
                views.append(face_view(image, points))
                chips.append(face_chip(recognizer, image, points))
    return recognizer, recognizer.describe_chips(chips).mean(axis=0), views[:3]
