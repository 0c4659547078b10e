"""RGB pictures into 4:2:0 encoder frames, converted by OpenCV instead of PyAV.

``av.VideoFrame.from_ndarray(image, format="rgb24")`` and the encoder's own conversion to
yuv420p (swscale) cost more than OpenCV's ``COLOR_RGB2YUV_I420`` into a yuv420p frame: encoding
a 720x1280 frame with the live settings takes 12.8 ms of CPU the first way and 9.1 ms the second
(``python benchmarks/bench_encode.py``, x264's own threads). Both use BT.601 limited-range
coefficients, the same that decoding with ``to_ndarray(format="rgb24")`` inverts, so a picture
keeps its colours through the round trip (tests/test_stream_formats.py checks it against PyAV's
conversion and the decoded frame).
"""

from __future__ import annotations

import av
import cv2
import numpy as np


def yuv420_frame(image: np.ndarray) -> av.VideoFrame:
    """A yuv420p frame of an (H, W, 3) uint8 RGB image with even H and W."""
    h, w = image.shape[:2]
    if h % 2 or w % 2:
        raise ValueError(f"4:2:0 needs an even frame size, got {w}x{h}")
    return av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
