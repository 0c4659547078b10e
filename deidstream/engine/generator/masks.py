"""Masks of the face parts that stay the subject's own: the eye openings and the mouth interior.

The morphable mesh has no holes at the eyes or the mouth, so gaze and speech survive only if
the pixels between the eyelids and inside the inner lips are kept from the frame. The contours
come from MediaPipe's own landmark index sets (``face_mesh_connections``), which are unordered
edge sets; they are walked into closed loops once, on first use. The lips set holds two loops
(outer and inner lip line); the inner one is told apart by topology alone (it lies further from
the face oval in MediaPipe's mesh tesselation), so no reference coordinates are needed.

>>> INTERIOR = InteriorContours.from_mediapipe()
>>> len(INTERIOR.left_eye), len(INTERIOR.right_eye), len(INTERIOR.inner_lips), len(INTERIOR.face_oval)
(16, 16, 20, 36)
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

_SHIFT = 4  # sub-pixel bits for cv2.fillPoly
_PIXEL_CENTRE = 0.5  # landmark coordinate of a pixel's centre (MediaPipe); OpenCV draws with centres at integers
_N_MESH = 468
# the inner lip loop's opening (see :func:`opening`) from which the subject's own mouth interior is kept: lips
# together read about 0.002 in the pipeline's landmarks (portrait_s18, every 3rd frame: at most 0.003) and 0.037
# in a face mesh run on a whole 640 px frame (the sample's first); lips parted in speech 0.04-0.1
MOUTH_SHUT = 0.04


def edge_loops(edges: Iterable[tuple[int, int]]) -> list[np.ndarray]:
    """Closed loops of an edge set in which every vertex has exactly two neighbours.

    Each loop starts at its smallest index and goes on to that vertex's smaller neighbour, so the
    order is deterministic.

    >>> [loop.tolist() for loop in edge_loops({(3, 1), (1, 2), (2, 3), (7, 8), (8, 9), (9, 7)})]
    [[1, 2, 3], [7, 8, 9]]
    """
    neighbours: dict[int, list[int]] = {}
    for a, b in edges:
        neighbours.setdefault(int(a), []).append(int(b))
        neighbours.setdefault(int(b), []).append(int(a))
    odd = {v: len(n) for v, n in neighbours.items() if len(n) != 2}
    if odd:
        raise ValueError(f"expected every vertex to have two neighbours (closed loops), got degrees {odd}")
    loops, seen = [], set()
    for start in sorted(neighbours):
        if start in seen:
            continue
        loop, prev, cur = [start], start, min(neighbours[start])
        while cur != start:
            loop.append(cur)
            a, b = neighbours[cur]
            prev, cur = cur, (b if a == prev else a)
        seen.update(loop)
        loops.append(np.array(loop, np.int32))
    return loops


def _hops_from(sources: Iterable[int], edges: Iterable[tuple[int, int]]) -> dict[int, int]:
    """Breadth-first hop count from a vertex set over an edge graph."""
    graph: dict[int, list[int]] = {}
    for a, b in edges:
        graph.setdefault(a, []).append(b)
        graph.setdefault(b, []).append(a)
    hops = dict.fromkeys(sources, 0)
    frontier = list(hops)
    while frontier:
        nxt = []
        for v in frontier:
            for u in graph.get(v, ()):
                if u not in hops:
                    hops[u] = hops[v] + 1
                    nxt.append(u)
        frontier = nxt
    return hops


@dataclass(frozen=True, slots=True)
class InteriorContours:
    """Ordered landmark indices of closed contours: eyelid openings (the subject's left and right,
    as MediaPipe names them), inner lip line, face oval and outer lip line."""

    left_eye: np.ndarray
    right_eye: np.ndarray
    inner_lips: np.ndarray
    face_oval: np.ndarray
    outer_lips: np.ndarray

    @classmethod
    def from_mediapipe(cls) -> InteriorContours:
        return _from_mediapipe()

    @property
    def openings(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The loops kept from the frame: both eyes and the mouth."""
        return self.left_eye, self.right_eye, self.inner_lips


@functools.cache
def _from_mediapipe() -> InteriorContours:
    from mediapipe.python.solutions import face_mesh_connections as fmc

    def one_loop(name: str) -> np.ndarray:
        loops = edge_loops(getattr(fmc, name))
        if len(loops) != 1:
            raise ValueError(f"expected one closed loop in {name}, got {len(loops)}")
        return loops[0]

    oval = one_loop("FACEMESH_FACE_OVAL")
    lips = edge_loops(fmc.FACEMESH_LIPS)
    if len(lips) != 2:
        raise ValueError(f"expected two lip loops (outer, inner) in FACEMESH_LIPS, got {len(lips)}")
    hops = _hops_from(oval.tolist(), fmc.FACEMESH_TESSELATION)
    inner, outer = sorted(lips, key=lambda loop: -np.mean([hops[int(v)] for v in loop]))
    return InteriorContours(one_loop("FACEMESH_LEFT_EYE"), one_loop("FACEMESH_RIGHT_EYE"), inner, oval, outer)


def _check_landmarks(landmarks_xy: np.ndarray) -> np.ndarray:
    pts = np.asarray(landmarks_xy, np.float64)
    if pts.ndim != 2 or pts.shape[0] < _N_MESH or pts.shape[1] < 2:
        raise ValueError(f"expected landmarks of shape (>= {_N_MESH}, 2 or 3), got {pts.shape}")
    return pts[:, :2]


def opening(polygon: np.ndarray) -> float:
    """How open a contour is, scale-free: its mean width (2 area / perimeter) over its length (perimeter / 2).

    About 0.002-0.04 for lips together (MediaPipe leaves a sliver), 0.2-0.3 for a laughing mouth or an open eye.

    >>> round(opening(np.array([[0, 0], [100, 0], [100, 4], [0, 4]], np.float64)), 3)
    0.037
    """
    perimeter = cv2.arcLength(polygon.astype(np.float32), closed=True)
    return 0.0 if perimeter == 0 else 4.0 * abs(cv2.contourArea(polygon.astype(np.float32))) / perimeter**2


def polygons_mask(
    polygons: Sequence[np.ndarray],
    shape: tuple[int, int],
    *,
    offset: tuple[float, float] = (0.0, 0.0),
    dilate_px: float = 0.0,
) -> np.ndarray:
    """(h, w) uint8 0/255 mask of filled polygons, grown by ``dilate_px`` (any real radius).

    Polygons are in frame pixels as MediaPipe gives them (normalised x size: pixel (i, j) covers
    [i, i+1) x [j, j+1)). Mask pixel (0, 0) is frame pixel ``offset``: for a crop, pass its top-left
    (x0, y0) in the frame. Only the polygons' bounding box is worked on, so a full-frame mask costs
    no more than a crop's.
    """
    h, w = int(shape[0]), int(shape[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"expected a positive mask shape, got {shape}")
    if dilate_px < 0:
        raise ValueError(f"expected dilate_px >= 0, got {dilate_px}")
    mask = np.zeros((h, w), np.uint8)
    origin = np.asarray(offset, np.float64) + _PIXEL_CENTRE
    polys = [np.asarray(p, np.float64) - origin for p in polygons if len(p) >= 3]
    if not polys:
        return mask
    pad = int(np.ceil(dilate_px)) + 2
    lo = np.floor(np.min([p.min(axis=0) for p in polys], axis=0)).astype(int) - pad
    hi = np.ceil(np.max([p.max(axis=0) for p in polys], axis=0)).astype(int) + pad + 1
    bx0, by0 = max(lo[0], 0), max(lo[1], 0)
    bx1, by1 = min(hi[0], w), min(hi[1], h)
    if bx0 >= bx1 or by0 >= by1:
        return mask
    roi = np.zeros((by1 - by0, bx1 - bx0), np.uint8)
    scale = 1 << _SHIFT
    fixed = [np.round((p - (bx0, by0)) * scale).astype(np.int32) for p in polys]
    cv2.fillPoly(roi, fixed, 255, lineType=cv2.LINE_8, shift=_SHIFT)
    if dilate_px > 0:
        distance = cv2.distanceTransform(cv2.bitwise_not(roi), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        roi = np.where(distance <= dilate_px, np.uint8(255), np.uint8(0))
    mask[by0:by1, bx0:bx1] = roi
    return mask


def texel_mask(polygon: np.ndarray, size: int) -> np.ndarray:
    """(size, size) uint8, 1 inside ``polygon`` (texel coordinates of a UV layout, rounded to whole texels: the
    regions the composer reads and blends a texture by)."""
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(np.asarray(polygon)).astype(np.int32)], 1)
    return mask


def interior_mask(
    landmarks_xy: np.ndarray,
    shape: tuple[int, int],
    *,
    offset: tuple[float, float] = (0.0, 0.0),
    dilate_px: float = 1.0,
    min_opening: float = 0.06,
    min_mouth_opening: float = MOUTH_SHUT,
    contours: InteriorContours | None = None,
) -> np.ndarray:
    """(h, w) uint8 0/255 mask of both eye openings and the mouth interior, from (>= 468, 2|3) landmarks
    (frame pixels; ``offset`` as in :func:`polygons_mask`).

    An eye less open than ``min_opening`` (see :func:`opening`: a blink), or a mouth less open than
    ``min_mouth_opening`` (lips together), is left out: its sliver would only cut a line of the subject's lids
    or lips through the surrogate's.
    """
    pts = _check_landmarks(landmarks_xy)
    loops = (contours or InteriorContours.from_mediapipe()).openings
    least = (min_opening, min_opening, min_mouth_opening)
    polygons = [pts[loop] for loop, gate in zip(loops, least) if opening(pts[loop]) >= gate]
    return polygons_mask(polygons, shape, offset=offset, dilate_px=dilate_px)


def face_oval_mask(
    landmarks_xy: np.ndarray,
    shape: tuple[int, int],
    *,
    offset: tuple[float, float] = (0.0, 0.0),
    dilate_px: float = 0.0,
    contours: InteriorContours | None = None,
) -> np.ndarray:
    """(h, w) uint8 0/255 mask inside MediaPipe's face oval."""
    pts = _check_landmarks(landmarks_xy)
    oval = (contours or InteriorContours.from_mediapipe()).face_oval
    return polygons_mask([pts[oval]], shape, offset=offset, dilate_px=dilate_px)
