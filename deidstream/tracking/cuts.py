"""Hard cuts between shots, so a track (and the identity it carries) never spans two shots.

The tracker alone cannot tell a cut from motion: a face in the next shot near where a face of
the previous one was is matched to its track, and would inherit that person's surrogate.
Comparing colour histograms of consecutive (downscaled) frames finds hard cuts cheaply.
"""

from __future__ import annotations

import cv2
import numpy as np

from deidstream.config import CutConfig


class CutDetector:
    def __init__(self, config: CutConfig | None = None) -> None:
        self.config = config or CutConfig()
        self._previous: tuple[np.ndarray, np.ndarray] | None = None
        self.cuts = 0

    def is_cut(self, image: np.ndarray) -> bool:
        """True when ``image`` (RGB) starts a new shot; the first frame is not a cut."""
        cfg = self.config
        # Every k-th pixel first: area-averaging a 1080p frame costs 8 ms, its quarter-size sample
        # 2 ms, and the cut decisions on every shared clip are the same.
        step = max(1, min(image.shape[:2]) // (4 * cfg.size))
        small = cv2.resize(image[::step, ::step], (cfg.size, cfg.size), interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
        hist = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256])
        cv2.normalize(hist, hist)
        grey = hsv[..., 2].astype(np.float32)
        previous, self._previous = self._previous, (hist, grey)
        if previous is None:
            return False
        corr = cv2.compareHist(previous[0], hist, cv2.HISTCMP_CORREL)
        change = float(np.abs(grey - previous[1]).mean())
        cut = corr < cfg.threshold or (corr < cfg.soft_threshold and change > cfg.min_change)
        self.cuts += int(cut)
        return bool(cut)
