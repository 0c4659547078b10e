"""Masks of the hands in front of each face, so a surrogate is drawn behind them.

MediaPipe Hands runs on a square crop around each face (``crop_scale`` times the box, resized to
``crop_size``): a small face's hands reach the model at a usable scale, and only hands near the
face are searched. A face with a track id gets a Hands instance of its own in tracking mode: it
follows last frame's hand and runs the palm detector only when it has none. That matters: a palm
that lies on a face is hard to detect, and the full palm model finds one in about a tenth of such
frames on its own (benchmarks/bench_hands.py). Faces without a track id share a static instance
with the lite models, whose palm detector finds far more of them. Instances of tracks that end
are closed.

The mask is built from the 21 landmarks, not from a hull or a colour blob, either of which keeps
the face between the fingers: a filled palm polygon (wrist and the five MCP joints) and one
capsule per finger bone, radii in proportion to the hand's size. Landmarks alone miss the rims
of wide fingers or spill past thin ones, so GrabCut settles each rim: thin capsules are sure
hand, middle ones likely hand, anything past the widest never hand. Errors lean small, as
privacy asks: a mask too large keeps real face pixels, one too small paints the surrogate over
the rim of a finger. A face without a hand gets an empty mask (the surrogate covers everything).

A false hand is the costly error: it keeps the face it lies on. The palm detector takes profile
faces for hands and tracking then holds on to them, confidently (stage clip: a woman's cheek kept
for 30 frames), so faces turned past ``max_turn``, or without landmarks where the caller has
them (FaceMesh fails on profiles), get no hands, and a weak landmark presence ends a hand.

Masks cover the face box (times ``region_scale``), where the surrogate is drawn, and come back
with their offset: cheaper than a full-frame mask per face.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from deidstream.native import native_stderr_silenced
from deidstream.types import FaceDetections

log = logging.getLogger(__name__)

N_HAND_LANDMARKS = 21
WRIST, MIDDLE_MCP = 0, 9
PALM = (0, 1, 5, 9, 13, 17)  # wrist, thumb CMC and the four MCP joints
NOSE_TIP, CHEEK_RIGHT, CHEEK_LEFT = 1, 234, 454  # face-mesh landmarks (image left and right cheek edges)
# Finger bones (joint pairs), each with its width relative to a finger's base: the thumb is thicker,
# the little finger and the fingertips thinner.
BONES = (
    ((1, 2), 1.15), ((2, 3), 1.05), ((3, 4), 0.95),
    ((5, 6), 1.0), ((6, 7), 0.92), ((7, 8), 0.85),
    ((9, 10), 1.0), ((10, 11), 0.92), ((11, 12), 0.85),
    ((13, 14), 0.95), ((14, 15), 0.88), ((15, 16), 0.82),
    ((17, 18), 0.85), ((18, 19), 0.8), ((19, 20), 0.75),
)
_SUBPIXEL = 4  # cv2 drawing with 4 fractional bits
_MIN_SAMPLES = 64  # pixels GrabCut's colour models need on each side


@dataclass(frozen=True, slots=True)
class Occluder:
    """Hand pixels in front of one face: ``mask`` (h, w) uint8, 255 on a hand, over the region whose
    top-left corner is ``offset`` (x, y) in the frame; ``hands_found`` hands were seen near the face."""

    mask: np.ndarray
    offset: tuple[int, int]
    hands_found: int

    @property
    def region(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the mask in frame pixels."""
        x, y = self.offset
        return x, y, x + int(self.mask.shape[1]), y + int(self.mask.shape[0])

    def full(self, height: int, width: int) -> np.ndarray:
        """The mask on a (height, width) frame, zero outside the region."""
        out = np.zeros((height, width), np.uint8)
        x0, y0, x1, y1 = self.region
        out[y0:y1, x0:x1] = self.mask
        return out


def hand_size(points: np.ndarray) -> float:
    """Wrist to middle-finger MCP, in 3D where z is given (MediaPipe gives z in x's scale), so a hand
    tilted towards the camera keeps its size.

    >>> hand_size(np.array([[0, 0, 0]] + [[3, 4, 0]] * 20, float))
    5.0
    """
    return float(np.linalg.norm(points[MIDDLE_MCP] - points[WRIST]))


def turn(face: np.ndarray) -> float:
    """How far a face (468 face-mesh landmarks) is turned: the nose tip's offset from the middle of the
    cheek edges, in half cheek widths. 0 frontal; past about 1 the nose is beyond a cheek (a profile).

    >>> face = np.zeros((468, 3)); face[CHEEK_RIGHT, 0], face[CHEEK_LEFT, 0], face[NOSE_TIP, 0] = 0, 100, 80
    >>> turn(face)
    0.6
    """
    half = abs(float(face[CHEEK_LEFT, 0] - face[CHEEK_RIGHT, 0])) / 2
    return abs(float(face[NOSE_TIP, 0]) - float(face[CHEEK_LEFT, 0] + face[CHEEK_RIGHT, 0]) / 2) / max(half, 1e-3)


def hand_mask(points: np.ndarray, shape: tuple[int, int], *, radius: float) -> np.ndarray:
    """(h, w) uint8 mask of one hand from its (21, 2 or 3) landmarks in the mask's pixels: the palm
    polygon and a capsule per finger bone, ``radius`` times the hand's size (times the bone's factor).

    >>> pts = np.zeros((21, 3)); pts[:, 0] = np.arange(21) * 2; pts[:, 1] = 10
    >>> m = hand_mask(pts, (20, 50), radius=0.1)
    >>> int(m[10, 20]), int(m[2, 20]), int(m[10, 45])
    (255, 0, 0)
    """
    mask = np.zeros(shape, np.uint8)
    size = hand_size(points)
    xy = np.round(np.asarray(points, np.float64)[:, :2] * (1 << _SUBPIXEL)).astype(np.int32)
    cv2.fillPoly(mask, [xy[list(PALM)]], 255, cv2.LINE_8, _SUBPIXEL)
    for (a, b), factor in BONES:
        thickness = max(1, int(round(2 * radius * size * factor)))
        cv2.line(mask, tuple(map(int, xy[a])), tuple(map(int, xy[b])), 255, thickness, cv2.LINE_8, _SUBPIXEL)
    return mask


def settle_rims(image: np.ndarray, sure: np.ndarray, likely: np.ndarray, limit: np.ndarray, context: np.ndarray,
                *, scale: float = 0.5) -> np.ndarray:
    """Boolean hand mask from GrabCut on ``image`` (h, w, 3 RGB): ``sure`` is kept, pixels outside ``limit``
    never are; ``likely`` starts as probable hand, the rest of ``context`` as probable background, all
    else as background. Runs at ``scale`` (GrabCut's cost grows with the pixels; its colour models do
    not need them all). Without enough pixels on either side it returns ``likely & limit``."""
    ys, xs = np.nonzero(context)
    if not len(ys) or not sure.any():
        return likely & limit
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    seed = np.full((y1 - y0, x1 - x0), cv2.GC_BGD, np.uint8)
    seed[context[y0:y1, x0:x1]] = cv2.GC_PR_BGD
    seed[likely[y0:y1, x0:x1]] = cv2.GC_PR_FGD
    seed[sure[y0:y1, x0:x1]] = cv2.GC_FGD
    crop = image[y0:y1, x0:x1]
    if scale != 1.0 and min(crop.shape[:2]) * scale >= 8:
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        seed = cv2.resize(seed, (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_NEAREST)
    hand = (seed == cv2.GC_FGD) | (seed == cv2.GC_PR_FGD)
    if hand.sum() < _MIN_SAMPLES or (~hand).sum() < _MIN_SAMPLES:
        return likely & limit
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut seeds its colour models with k-means: the same frame, the same mask
    cv2.grabCut(np.ascontiguousarray(crop), seed, None, bgd, fgd, 1, cv2.GC_INIT_WITH_MASK)
    found = ((seed == cv2.GC_FGD) | (seed == cv2.GC_PR_FGD)).astype(np.uint8)
    if found.shape != (y1 - y0, x1 - x0):
        found = cv2.resize(found, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
    out = np.zeros_like(sure)
    out[y0:y1, x0:x1] = found > 0
    return (out & limit) | sure


class HandOccluders:
    """Hand masks per face. ``complexity`` picks MediaPipe's lite (0) or full (1) models for tracked
    faces (faces without a track id use ``static_complexity``); ``radii`` are the finger capsules'
    radii as shares of the hand's size (wrist to middle MCP): sure hand, likely hand, at most hand.
    Without ``refine`` the mask is the likely capsules as they are (no GrabCut). ``min_detection`` is the
    palm detector's threshold, ``min_presence`` the landmark model's (is this still a hand?). Faces with
    landmarks turned past ``max_turn`` (see :func:`turn`), or without landmarks where the others have them,
    get no hands: on profiles the palm detector takes the face itself for a hand (benchmarks/bench_hands.py,
    the stage clip)."""

    def __init__(
        self,
        *,
        complexity: int = 1,
        static_complexity: int = 0,
        crop_scale: float = 2.2,
        crop_size: int = 256,
        region_scale: float = 1.0,
        radii: tuple[float, float, float] = (0.03, 0.07, 0.15),
        refine: bool = True,
        refine_scale: float = 0.5,
        min_detection: float = 0.5,
        min_presence: float = 0.7,
        max_turn: float = 0.8,
        max_tracked: int = 8,
        max_hands: int = 2,
    ) -> None:
        if {complexity, static_complexity} - {0, 1} or crop_size < 64 or crop_scale < 1.0 or region_scale < 1.0:
            raise ValueError(f"expected complexities 0 or 1, crop_size >= 64, crop_scale >= 1 and region_scale >= 1, "
                             f"got {complexity}, {static_complexity}, {crop_size}, {crop_scale}, {region_scale}")
        if not 0.0 < radii[0] <= radii[1] <= radii[2] <= 0.5 or not 0.0 < refine_scale <= 1.0:
            raise ValueError(f"expected 0 < sure <= likely <= limit <= 0.5 and 0 < refine_scale <= 1, got {radii}, "
                             f"{refine_scale}")
        if max_tracked < 0 or max_hands < 1:
            raise ValueError(f"expected max_tracked >= 0 and max_hands >= 1, got {max_tracked}, {max_hands}")
        self.complexity = complexity
        self.static_complexity = static_complexity
        self.crop_scale = crop_scale
        self.crop_size = crop_size
        self.region_scale = region_scale
        self.radii = radii
        self.refine = refine
        self.refine_scale = refine_scale
        self.min_detection = min_detection
        self.min_presence = min_presence
        self.max_turn = max_turn
        self.max_tracked = max_tracked
        self.max_hands = max_hands
        self._static = self._new_hands(static=True)
        self._per_track: dict[int, object] = {}

    def _new_hands(self, *, static: bool) -> object:
        import mediapipe as mp  # heavy import kept local so the package imports fast

        with native_stderr_silenced():
            hands = mp.solutions.hands.Hands(
                static_image_mode=static, max_num_hands=self.max_hands,
                model_complexity=self.static_complexity if static else self.complexity,
                min_detection_confidence=self.min_detection, min_tracking_confidence=self.min_presence)
            hands.process(np.zeros((self.crop_size, self.crop_size, 3), np.uint8))  # start-up chatter
        return hands

    @property
    def tracked(self) -> list[int]:
        """Track ids that hold a Hands instance of their own."""
        return sorted(self._per_track)

    def close(self) -> None:
        for hands in [self._static, *self._per_track.values()]:
            hands.close()  # type: ignore[attr-defined]
        self._per_track.clear()

    def __enter__(self) -> HandOccluders:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def occluders(self, image: np.ndarray, faces: FaceDetections,
                  in_view: Iterable[int] | None = None) -> list[Occluder]:
        """One :class:`Occluder` per face of ``image`` ((H, W, 3) uint8 RGB). Call once per frame: the Hands
        instances of tracks no longer in view (``in_view``, by default the tracks of ``faces``) are closed, so a
        caller that looks at a face only on some frames keeps its hand tracking between them."""
        found = self.hands(image, faces, in_view)
        return [self.occluder(image, box, hands) for box, hands in zip(faces.xyxy, found)]

    def occluder(self, image: np.ndarray, box: np.ndarray, hands: list[np.ndarray]) -> Occluder:
        """The mask of ``hands`` (frame-pixel landmarks, as :meth:`hands` gives them) over one face's region."""
        x0, y0, x1, y1 = self.region(box, image.shape[0], image.shape[1])
        shape = (y1 - y0, x1 - x0)
        if not hands or not all(shape):
            return Occluder(np.zeros(shape, np.uint8), (x0, y0), len(hands))
        local = [pts - np.array([x0, y0, 0], np.float32) for pts in hands]
        sure, likely, limit = self.radii
        radii = (sure, likely, limit, 2 * limit) if self.refine else (likely,)
        masks = [np.zeros(shape, bool) for _ in radii]
        for pts in local:
            for m, r in zip(masks, radii):
                m |= hand_mask(pts, shape, radius=r) > 0
        mask = settle_rims(image[y0:y1, x0:x1], *masks, scale=self.refine_scale) if self.refine else masks[0]
        return Occluder(mask.astype(np.uint8) * 255, (x0, y0), len(hands))

    def region(self, box: np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) integer region of a face's mask: its box times ``region_scale``, in the frame."""
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        hw, hh = (box[2] - box[0]) * self.region_scale / 2, (box[3] - box[1]) * self.region_scale / 2
        x0, y0 = min(width, max(0, int(np.floor(cx - hw)))), min(height, max(0, int(np.floor(cy - hh))))
        x1, y1 = min(width, int(np.ceil(cx + hw))), min(height, int(np.ceil(cy + hh)))
        return x0, y0, max(x0, x1), max(y0, y1)

    def hands(self, image: np.ndarray, faces: FaceDetections,
              in_view: Iterable[int] | None = None) -> list[list[np.ndarray]]:
        """Per face, the (21, 3) float32 landmarks of each hand found near it: x and y in frame pixels, z in
        the same units. Closes the Hands instances of tracks not among ``faces``, and of turned faces
        (a hand they followed may be the face itself)."""
        ids = faces.track_id if faces.track_id is not None else [None] * len(faces)
        # With landmarks given, a face FaceMesh could not fit (often a profile) counts as turned too.
        meshed = faces.landmarks is not None
        turned = [meshed and (face is None or turn(face) > self.max_turn) for face in faces.landmark_list()]
        live = {int(i) for i, off in zip(ids, turned) if i is not None and not off}
        if in_view is not None:
            live |= {int(t) for t in in_view} - {int(i) for i, off in zip(ids, turned) if i is not None and off}
        for gone in set(self._per_track) - live:
            self._per_track.pop(gone).close()  # type: ignore[attr-defined]
            log.debug("hand tracking of face track %d closed", gone)
        return [[] if off else self._find(image, box, self._hands_for(tid))
                for box, tid, off in zip(faces.xyxy, ids, turned)]

    def _hands_for(self, track_id: int | None) -> object:
        if track_id is None:
            return self._static
        track_id = int(track_id)
        if track_id not in self._per_track:
            if len(self._per_track) >= self.max_tracked:
                return self._static
            self._per_track[track_id] = self._new_hands(static=False)
            log.debug("hand tracking of face track %d started", track_id)
        return self._per_track[track_id]

    def _find(self, image: np.ndarray, box: np.ndarray, hands: object) -> list[np.ndarray]:
        size = self.crop_size
        side = max(box[2] - box[0], box[3] - box[1]) * self.crop_scale
        if side < 4:
            return []
        k = size / side
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        warp = np.array([[k, 0, size / 2 - cx * k], [0, k, size / 2 - cy * k]], np.float32)
        crop = cv2.warpAffine(image, warp, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        result = hands.process(crop).multi_hand_landmarks  # type: ignore[attr-defined]
        out = []
        for hand in result or []:
            pts = np.array([(p.x, p.y, p.z) for p in hand.landmark], np.float32) * size
            pts[:, 0] = (pts[:, 0] - warp[0, 2]) / k
            pts[:, 1] = (pts[:, 1] - warp[1, 2]) / k
            pts[:, 2] /= k
            out.append(pts)
        return out
