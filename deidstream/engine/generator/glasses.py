"""Glasses frames: whether a person wears them, and which pixels of a frame are theirs.

A surrogate is drawn behind what is in front of the face; glasses are, but the face model has none, so a
render without this step takes a wearer's glasses off and leaves their arms cut short at the temples, and
the frames' dark lines, taken for the frame's light, shade the surrogate's eye sockets.

A frame is a thin line of steady contrast: on the face analysed at ``WORK_WIDTH`` pixels wide, a ridge
(Hessian: one strong curvature across, little along) that stands far above the ridges of bare skin.
Whether a person wears glasses is read where nothing else draws such a line: across the bridge of the
nose between the eyes (a horizontal line there, relative to the ridges of skin on the lower cheeks and
forehead), as the median over their best views, so that a frown line or a stray hair in one view
decides nothing. Only then are frame pixels kept, in each frame: each rim as the one smooth loop of
lines around its eye, the bridge and the arms as long lines between and beside the rims, never inside
the eye openings or on the brows (what shows through a lens and the brows are the surrogate's). Fail
closed: a person taken for a non-wearer gets a surrogate without glasses, never the subject's own face
lines.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from deidstream.engine.generator.compose import BROWS, FOREHEAD
from deidstream.engine.generator.masks import InteriorContours, polygons_mask
from deidstream.types import FaceView

WORK_WIDTH = 200.0  # pixels across the landmarks' span: frames are then 1-4 px wide
RIDGE_SIGMA = 1.2  # the smoothing before the Hessian, at the working width
WEARS = 5.0  # bridge line over skin ridges, median over views: 7.7-23 on the shared clips' wearers, <= 3.3 on others
KEEP = 0.3  # frame pixels: ridges at least this share of the bridge line's strength ...
SKIN_TIMES = 3.0  # ... and this many times the skin's ridges
MIN_PIECE = 0.08  # a piece of the bridge or an arm spans at least this share of the working width
RIM_REACH = 1.4  # a rim lies within this many eye widths of its eye's centre
ANGLES = 90  # directions a rim is traced in
RIM_SEEN = 0.4  # a rim is kept where it stands out along at least this share of its loop
RIM_EVEN = 0.5  # ... that is, where its lines are at least this share of their median along the loop
EYE_MARGIN = 0.2  # eye openings grown by this share of the eye's width: lashes, lids and their creases
# skin no frame covers: each cheek beside the nose above the mouth's corners, the middle of the forehead
BARE_SKIN = ((205, 206, 216, 212, 192, 187), (425, 426, 436, 432, 416, 411), FOREHEAD)
EYE_CORNERS = ((33, 133), (263, 362))  # outer, inner corner of each eye


def ridges(grey: np.ndarray, sigma: float = RIDGE_SIGMA) -> np.ndarray:
    """Thin lines in grey levels, positive where a line is darker than its sides and negative where it is
    brighter: the larger Hessian eigenvalue less twice the smaller's size (a blob or a corner curves both
    ways and scores low), scale-normalised. A dark line's bright shoulders score as bright lines, so a
    frame's pixels are those of its own sign only."""
    g = cv2.GaussianBlur(grey, (0, 0), sigma)
    xx = cv2.Sobel(g, cv2.CV_32F, 2, 0, ksize=3)
    yy = cv2.Sobel(g, cv2.CV_32F, 0, 2, ksize=3)
    xy = cv2.Sobel(g, cv2.CV_32F, 1, 1, ksize=3)
    root = np.sqrt((xx - yy) ** 2 + 4.0 * xy * xy)
    a, b = (xx + yy + root) / 2.0, (xx + yy - root) / 2.0
    big = np.where(np.abs(a) >= np.abs(b), a, b)
    size = np.maximum(np.abs(big) - 2.0 * np.minimum(np.abs(a), np.abs(b)), 0.0) * np.float32(sigma * sigma / 4.0)
    return np.where(big >= 0, size, -size).astype(np.float32)


class _Look:
    """The upper face at the working width: its ridges, landmarks there, and the way back to the image."""

    def __init__(self, image: np.ndarray, points: np.ndarray) -> None:
        pts = np.asarray(points, np.float64)[:, :2]
        lo, hi = pts.min(0), pts.max(0)
        span = max(float(hi[0] - lo[0]), 1.0)
        self.scale = WORK_WIDTH / span
        x0, y0 = int(max(lo[0] - 0.05 * span, 0)), int(max(lo[1], 0))
        x1 = int(min(hi[0] + 0.05 * span, image.shape[1]))
        y1 = int(min(lo[1] + 0.6 * (hi[1] - lo[1]), image.shape[0]))
        self.origin = (x0, y0)
        self.size = (max(x1 - x0, 0), max(y1 - y0, 0))
        self.p = (pts - (x0, y0)) * self.scale
        self.ridge = self.signed = self.grey = np.zeros((0, 0), np.float32)
        if min(self.size) < 4:
            return
        crop = image[y0:y1, x0:x1]
        interp = cv2.INTER_AREA if self.scale < 1.0 else cv2.INTER_LINEAR
        crop = cv2.resize(np.ascontiguousarray(crop), None, fx=self.scale, fy=self.scale, interpolation=interp)
        self.grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
        self.signed = ridges(self.grey)
        self.ridge = np.abs(self.signed)

    @property
    def eye_width(self) -> float:
        return float(np.mean([np.linalg.norm(self.p[o] - self.p[i]) for o, i in EYE_CORNERS]))

    def mask(self, loops: Sequence[Sequence[int]]) -> np.ndarray:
        return polygons_mask([self.p[list(loop)] for loop in loops], self.ridge.shape) > 0

    def skin_level(self) -> float:
        """The ridges of bare skin (90th percentile): wrinkles, pores, noise."""
        bare = self.mask(BARE_SKIN)
        return max(float(np.percentile(self.ridge[bare], 90)), 0.05) if bare.any() else 1.0

    def bridge(self) -> float:
        """The strongest horizontal line across the middle of the nose bridge, between brow and eye line,
        whichever its sign."""
        zone = self._bridge_zone()
        return 0.0 if zone is None else float(self.ridge[zone].mean(axis=1).max())

    def _bridge_zone(self) -> tuple[slice, slice] | None:
        inner_l, inner_r = self.p[133], self.p[362]
        mid, gap, ew = (inner_l + inner_r) / 2.0, abs(float(inner_r[0] - inner_l[0])), self.eye_width
        ya, yb = int(max(mid[1] - 0.8 * ew, 0)), int(min(mid[1] + 0.2 * ew, self.ridge.shape[0]))
        xa, xb = int(max(mid[0] - 0.25 * gap, 0)), int(min(mid[0] + 0.25 * gap, self.ridge.shape[1]))
        return None if yb <= ya or xb <= xa else (slice(ya, yb), slice(xa, xb))

    def frame_sign(self) -> tuple[float, float]:
        """The sign of the frame's lines (1 dark, -1 bright) and the strength of its bridge line in it."""
        zone = self._bridge_zone()
        if zone is None:
            return 1.0, 0.0
        # dark or bright: the strongest line of each sign, and which of them the grey profile down the bridge
        # confirms (a dark line is a valley, a bright one a crest); most frames are dark, and a dark line's
        # bright shoulder can pass for a crest, so a confirmed dark line goes first
        grey = self.grey[zone].mean(axis=1)
        step = max(int(round(0.08 * self.eye_width)), 2)
        found = []
        for sign in (1.0, -1.0):
            rows = np.maximum(sign * self.signed[zone], 0.0).mean(axis=1)
            r = int(np.argmax(rows))
            sides = grey[[max(r - step, 0), min(r + step, len(grey) - 1)]]
            confirmed = bool(sides.min() > grey[r]) if sign > 0 else bool(grey[r] > sides.max())
            found.append((confirmed, float(rows[r]), sign))
        dark, _ = found
        _, strength, sign = dark if dark[0] else max(found)
        return sign, strength


def bridge_score(image: np.ndarray, points: np.ndarray) -> float:
    """How strongly a line crosses the nose bridge, over the skin's own ridges (0 where it cannot be read)."""
    look = _Look(image, points)
    if look.ridge.size == 0:
        return 0.0
    return look.bridge() / look.skin_level()


def wears_glasses(views: Sequence[FaceView]) -> bool:
    """Whether the person of these views wears glasses: the median bridge score over them."""
    scores = [bridge_score(v.image, v.points) for v in views]
    return bool(scores) and float(np.median(scores)) >= WEARS


def frame_mask(image: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, tuple[int, int]] | None:
    """(mask (h, w) uint8 0-255, its top-left (x, y) in the image): the pixels of the glasses frame around the
    face's eyes, for a face known to wear glasses; None where no frame is found.

    Each rim is traced as one smooth loop around its eye (the strongest path of lines through the eye's
    surroundings in polar coordinates, its radius changing little from one direction to the next), so
    the lid creases, brow edges and wrinkles near it, which form no such loop, are left out; the bridge
    and the arms are the strong lines of the frame's sign between the rims and beside them."""
    look = _Look(image, points)
    if look.ridge.size == 0:
        return None
    sign, strength = look.frame_sign()
    level = look.skin_level()
    contours = InteriorContours.from_mediapipe()
    ew = look.eye_width
    face = polygons_mask([look.p[contours.face_oval]], look.ridge.shape) > 0  # beyond it nothing is drawn over
    hidden = (polygons_mask([look.p[contours.left_eye], look.p[contours.right_eye]], look.ridge.shape,
                            dilate_px=EYE_MARGIN * ew) > 0) | look.mask(BROWS) | ~face
    out = np.zeros(look.ridge.shape, np.uint8)
    signs = {s: np.where(hidden, 0.0, np.maximum(s * look.signed, 0.0) / level).astype(np.float32) for s in (1.0, -1.0)}
    centres = [(look.p[outer] + look.p[inner]) / 2.0 for outer, inner in EYE_CORNERS]
    radii = _radii(RIM_REACH * ew)
    polars = np.stack([_polar(signs[s], c, radii) for c in centres for s in (1.0, -1.0)])
    paths = _trace(polars)
    for e, centre in enumerate(centres):
        # a dark rim or a bright (metal) one: whichever sign traces the stronger loop
        traced = [(*_pieces(polars[2 * e + k], paths[2 * e + k], centre), signs[s]) for k, s in enumerate((1.0, -1.0))]
        pieces, median, lines = max(traced, key=lambda t: t[1])
        rim = np.zeros(out.shape, np.uint8)
        for piece in pieces:
            cv2.polylines(rim, [np.round(piece).astype(np.int32)], False, 1, 2)
        near = cv2.dilate(rim, np.ones((5, 5), np.uint8)) > 0
        # the rim's full width where it is wider than the trace
        out[(rim > 0) | (near & (lines >= max(SKIN_TIMES, RIM_EVEN * median)))] = 1
    lines = signs[sign]
    between = _bridge_and_arms(look, lines.shape) & (lines * level >= max(KEEP * strength, SKIN_TIMES * level))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(between.astype(np.uint8), connectivity=8)
    long = np.zeros(n, bool)
    long[1:] = np.maximum(stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT]) >= MIN_PIECE * WORK_WIDTH
    out[long[labels]] = 1
    if not out.any():
        return None
    w, h = look.size
    full = cv2.resize(out * np.uint8(255), (w, h), interpolation=cv2.INTER_LINEAR)
    return full, look.origin


def _radii(reach: float) -> int:
    return max(int(reach), 4)


def _polar(lines: np.ndarray, centre: np.ndarray, radii: int) -> np.ndarray:
    """(ANGLES, radii) ``lines`` around ``centre``, one pixel per radius step; outside the image the samples
    are 0 (without WARP_FILL_OUTLIERS they are whatever was in memory)."""
    flags = cv2.WARP_POLAR_LINEAR | cv2.INTER_LINEAR | cv2.WARP_FILL_OUTLIERS
    return cv2.warpPolar(np.ascontiguousarray(lines, np.float32), (radii, ANGLES),
                         (float(centre[0]), float(centre[1])), float(radii), flags)


def _trace(polars: np.ndarray, jump: int = 3, penalty: float = 0.5) -> np.ndarray:
    """(n, ANGLES) radius per direction of the best path through each of ``polars`` (n, ANGLES, radii): the
    highest sum of lines, the radius moving at most ``jump`` pixels (at ``penalty`` each) from one direction
    to the next (dynamic programming, all n at once)."""
    n, angles, radii = polars.shape
    cost = penalty * np.abs(np.arange(-jump, jump + 1, dtype=np.float32))
    score = polars[:, 0].copy()
    back = np.zeros((n, angles, radii), np.int64)
    padded = np.full((n, radii + 2 * jump), -1e9, np.float32)  # beyond the radii: never chosen
    rows, index = np.arange(n)[:, None], np.arange(radii)[None, :]
    for a in range(1, angles):
        padded[:, jump:jump + radii] = score
        options = np.lib.stride_tricks.sliding_window_view(padded, 2 * jump + 1, axis=1) - cost  # (n, radii, steps)
        best = np.argmax(options, axis=2)
        back[:, a] = index + best - jump
        score = polars[:, a] + options[rows, index, best]
    path = np.zeros((n, angles), np.int64)
    path[:, -1] = np.argmax(score, axis=1)
    for a in range(angles - 1, 0, -1):
        path[:, a - 1] = back[rows[:, 0], a, path[:, a]]
    return path


def _pieces(polar: np.ndarray, path: np.ndarray, centre: np.ndarray) -> tuple[list[np.ndarray], float]:
    """One rim: the polylines of ``path`` (a radius per direction of ``polar``, lines in units of the skin's
    ridges) where its lines stand out (cut where they fall under ``SKIN_TIMES`` or half their median: behind
    a brow, a rimless edge), in the image's pixels around ``centre``; and the median of the lines along it
    (a rim mostly not there is left out whole)."""
    angles = len(path)
    along = polar[np.arange(angles), path]
    strong = along >= max(SKIN_TIMES, RIM_EVEN * float(np.median(along)))
    if strong.mean() < RIM_SEEN:
        return [], float(np.median(along))
    theta = np.arange(angles) * (2.0 * np.pi / angles)
    xy = np.column_stack([centre[0] + path * np.cos(theta), centre[1] + path * np.sin(theta)])
    pieces, current = [], []
    for a in range(angles):
        if strong[a]:
            current.append(xy[a])
        elif current:
            pieces.append(np.array(current))
            current = []
    if current:
        if pieces and strong[0]:  # the loop closes over angle 0
            pieces[0] = np.concatenate([np.array(current), pieces[0]])
        else:
            pieces.append(np.array(current))
    return [p for p in pieces if len(p) >= 3], float(np.median(along))


def _bridge_and_arms(look: _Look, shape: tuple[int, ...]) -> np.ndarray:
    """(h, w) bool: between the eyes' inner corners, from brow height to just below them (the bridge), and a
    strip at eye level from half an eye width beyond each outer corner out past the face's side (the arms).
    The rims are traced (:func:`_trace`), not looked for here: lid creases and crow's feet lie outside."""
    region = np.zeros(shape[:2], np.uint8)
    ew = look.eye_width
    for outer, inner in EYE_CORNERS:
        step = look.p[outer] - look.p[inner]
        start, side = look.p[outer] + 0.5 * step, look.p[outer] + 2.0 * step  # past the face's side
        half = 0.3 * ew
        strip = np.array([start + (0, -half), side + (0, -half), side + (0, half), start + (0, half)])
        cv2.fillPoly(region, [np.round(strip).astype(np.int32)], 1)
    a, b = look.p[EYE_CORNERS[0][1]], look.p[EYE_CORNERS[1][1]]
    bridge = np.array([a + (0, -0.9 * ew), b + (0, -0.9 * ew), b + (0, 0.3 * ew), a + (0, 0.3 * ew)])
    cv2.fillPoly(region, [np.round(bridge).astype(np.int32)], 1)
    return region > 0
