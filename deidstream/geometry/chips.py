"""Aligned face chips cut the way dlib cuts them for its face descriptor network.

E_id was trained on chips from ``dlib.get_face_chips(image, shapes, 150, 0.25)``, so its
descriptors hold only on chips of that geometry. dlib fits a similarity transform (Umeyama, least
squares) from its mean-face template of the 5 alignment points, padded by 0.25 of the face on every
side, to the face's 5 points; the chip is then the square of side ``150 * scale - 1`` pixels around
the transformed chip centre, rotated, sampled at 150 x 150 points from corner to corner. So the
chip's pixels are spaced ``(150 * scale - 1) / 149`` apart, not ``scale``, and sit half a chip
pixel off the fitted transform (a zoom of up to 0.7 % and a shift that E_id's weights expect).
A face whose chip would shrink more than about 2x is first halved on dlib's image pyramid (a
5-tap [1 4 6 4 1] filter, truncated to integers, whose pixel ``i`` sits at ``2 i + 2`` while dlib
maps it as ``2 i + 2.5`` across and ``2 i + 1.5`` down), as often as needed. The chip is sampled
bilinearly, truncated to integers, and black where a sample's 2x2 neighbourhood leaves the image.

All of this is reproduced, with ``cv2.warpAffine`` doing the sampling (on 643 real faces: 0.06
grey levels from dlib's chips on average, descriptors 0.004 apart at the median). One difference
is kept on purpose: dlib cuts the pyramid once for all the faces of a call, so its chip of a
large face depends slightly on the other faces; here each face is cut on its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    import torch

CHIP_SIZE = 150
CHIP_PADDING = 0.25
# dlib's mean face (get_face_chip_details), in its 5-point order: the outer and inner corner of the
# eye on the image's right, the outer and inner corner of the other eye, the base of the nose.
DLIB5_TEMPLATE = np.array([(0.8595674595992, 0.2134981538014), (0.6460604764104, 0.2289674387677),
                           (0.1205750620789, 0.2137274526848), (0.3340850613712, 0.2290642403242),
                           (0.4901123135679, 0.6277975316475)])
# MediaPipe face-mesh landmarks nearest dlib's 5 points, in dlib's order (measured on real frames).
MEDIAPIPE_FOR_DLIB5 = (263, 362, 33, 133, 2)
_PYRAMID_SHIFT = np.array([1.25, 0.75])  # dlib's pyramid_down<2>: point p of a level is p / 2 - this below


def _similarity(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares similarity transforms (Umeyama) from ``src`` (k, 2) to each of ``dst`` (n, k, 2):
    (n, 2, 2) matrices and (n, 2) translations, with dlib's rule against reflections."""
    ms, md = src.mean(axis=0), dst.mean(axis=1)
    s0, d0 = src - ms, dst - md[:, None]
    sigma = float((s0 ** 2).sum(axis=1).mean())
    cov = np.einsum("nki,kj->nij", d0, s0) / len(src)
    u, d, vt = np.linalg.svd(cov)
    flip = np.ones_like(d)
    flip[np.linalg.det(cov) < 0, 1] = -1.0  # numpy orders d descending: flip the smaller axis
    rotation = u @ (flip[:, :, None] * vt)
    scale = (d * flip).sum(axis=1) / sigma if sigma > 0 else np.ones(len(dst))
    matrix = scale[:, None, None] * rotation
    return matrix, md - np.einsum("nij,j->ni", matrix, ms)


def chip_rects(points: np.ndarray, *, size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> np.ndarray:
    """dlib's chip of each face (``get_face_chip_details``): (n, 5) rows of the rectangle's left,
    top, right, bottom (before rotation, in image pixels) and its rotation angle in radians.

    The template itself, moved by 7 pixels: the chip's first pixel sits half a pixel further in.

    >>> r = chip_rects((DLIB5_TEMPLATE * 100 + 7)[None], size=100, padding=0.0)
    >>> [round(float(v), 3) for v in r[0, :4]], bool(abs(r[0, 4]) < 1e-9)
    ([7.5, 7.5, 106.5, 106.5], True)
    """
    points = np.asarray(points, np.float64)
    if points.ndim != 3 or points.shape[1:] != (5, 2):
        raise ValueError(f"expected points of shape (n, 5, 2), got {points.shape}")
    template = (padding + DLIB5_TEMPLATE) / (2 * padding + 1) * size
    matrix, shift = _similarity(template, points)
    centre = np.einsum("nij,j->ni", matrix, np.full(2, size / 2.0)) + shift
    scale = np.hypot(matrix[:, 0, 0], matrix[:, 1, 0])
    half = (size * scale - 1) / 2  # dlib's centered_drect takes one pixel off the side
    return np.column_stack([centre - half[:, None], centre + half[:, None], np.arctan2(matrix[:, 1, 0],
                                                                                       matrix[:, 0, 0])])


def _corners(rect: np.ndarray, angle: float) -> np.ndarray:
    """The rectangle's top-left, top-right, bottom-left and bottom-right corners rotated about its centre."""
    left, top, right, bottom = rect
    centre = np.array([(left + right) / 2, (top + bottom) / 2])
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    corners = np.array([(left, top), (right, top), (left, bottom), (right, bottom)])
    return (corners - centre) @ rot.T + centre


def _rect_down(rect: np.ndarray) -> np.ndarray:
    return rect / 2 - np.tile(_PYRAMID_SHIFT, 2)


def _area(rect: np.ndarray) -> float:
    return float((rect[2] - rect[0] + 1) * (rect[3] - rect[1] + 1))


def _pyramid_down(level: np.ndarray) -> np.ndarray:
    """dlib's pyramid_down<2> on integer-valued float32 pixels: the [1 4 6 4 1] filter both ways,
    every other pixel from the third, truncated; (h - 3) // 2 x (w - 3) // 2 pixels."""
    h, w = level.shape[:2]
    rows, cols = (h - 3) // 2, (w - 3) // 2
    if h <= 8 or w <= 8:
        return np.zeros((0, 0, *level.shape[2:]), np.float32)
    return np.floor(cv2.pyrDown(level)[1:1 + rows, 1:1 + cols])  # exact: sums of integers / 256


def _cut(image: np.ndarray, rect: np.ndarray, angle: float, size: int) -> np.ndarray:
    """One chip of ``size`` x ``size`` pixels from ``rect`` rotated by ``angle`` (dlib's extract_image_chips)."""
    pixels = size * size
    depth, down = 0, _rect_down(rect)
    while _area(down) > pixels:
        down, depth = _rect_down(down), depth + 1
    grow = 2.0
    for _ in range(depth):
        grow = grow * 2 + 2
    corners = _corners(rect, angle)
    x0, y0 = np.maximum(corners.min(axis=0) - grow, 0)
    x1, y1 = np.minimum(corners.max(axis=0) + grow, (image.shape[1] - 1, image.shape[0] - 1))
    x0, y0, x1, y1 = (int(np.floor(v + 0.5)) for v in (x0, y0, x1, y1))  # lround, as dlib rounds the box
    chip = np.zeros((size, size, *image.shape[2:]), np.float32)
    if x1 < x0 or y1 < y0:
        return chip
    level = image[y0:y1 + 1, x0:x1 + 1].astype(np.float32)
    local = rect - np.array([x0, y0, x0, y0], np.float64)
    while _area(_rect_down(local)) > pixels:
        level, local = _pyramid_down(level), _rect_down(local)
    if min(level.shape[:2]) < 2:
        return chip
    tl, tr, bl, br = _corners(local, angle)
    to_level = np.column_stack([(tr - tl) / (size - 1), (bl - tl) / (size - 1), tl])
    cv2.warpAffine(level, to_level, (size, size), chip, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                   borderMode=cv2.BORDER_REPLICATE)
    h, w = level.shape[:2]
    samples = np.array([tl, tr, bl, br])
    if samples.min() < 0 or samples[:, 0].max() >= w - 1 or samples[:, 1].max() >= h - 1:
        chip[~_inside(to_level, size, w, h)] = 0
    return chip


def _inside(to_level: np.ndarray, size: int, w: int, h: int) -> np.ndarray:
    """(size, size) mask of the samples whose 2x2 neighbourhood lies in a w x h image, from the exact
    coordinates: dlib leaves the others black (cv2 decides on coordinates rounded to 1/32 pixel)."""
    g = np.arange(size, dtype=np.float64)
    x = np.floor(to_level[0, 0] * g[None, :] + to_level[0, 1] * g[:, None] + to_level[0, 2])
    y = np.floor(to_level[1, 0] * g[None, :] + to_level[1, 1] * g[:, None] + to_level[1, 2])
    return (x >= 0) & (y >= 0) & (x + 1 < w) & (y + 1 < h)


def face_chips(image: np.ndarray, points: np.ndarray, *, size: int = CHIP_SIZE,
               padding: float = CHIP_PADDING) -> np.ndarray:
    """(n, size, size, 3) uint8 chips of ``image`` (h, w, 3) for faces with dlib-style 5 points
    ``points`` (n, 5, 2): x, y of the two corners of each eye and the base of the nose, in
    ``DlibRecognizer.points`` order. Same channel order as ``image`` (E_id wants RGB)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (h, w, 3) uint8 image, got {image.shape} {image.dtype}")
    rects = chip_rects(points, size=size, padding=padding)
    chips = np.zeros((len(rects), size, size, 3), np.uint8)
    for i, row in enumerate(rects):
        # dlib truncates its bilinear samples (within 0-255: weights sum to 1); the offset keeps integers whole
        chips[i] = _cut(image, row[:4], float(row[4]), size) + 1e-3
    return chips


def mediapipe_dlib5(landmarks: np.ndarray) -> np.ndarray:
    """dlib's 5 alignment points (n, 5, 2) from MediaPipe face-mesh landmarks (n, 468 or 478, 2 or 3)."""
    landmarks = np.asarray(landmarks)
    if landmarks.ndim != 3 or landmarks.shape[1] <= max(MEDIAPIPE_FOR_DLIB5) or landmarks.shape[2] < 2:
        raise ValueError(f"expected MediaPipe landmarks of shape (n, 468 or 478, 2 or 3), got {landmarks.shape}")
    return landmarks[:, MEDIAPIPE_FOR_DLIB5, :2].astype(np.float64)


def face_chips_from_mediapipe(image: np.ndarray, landmarks: np.ndarray, *, size: int = CHIP_SIZE,
                              padding: float = CHIP_PADDING) -> np.ndarray:
    """:func:`face_chips` aligned by MediaPipe landmarks (n, 468 or 478, 2 or 3) in image pixels,
    through the landmarks nearest dlib's 5 points, so faces need no dlib shape predictor."""
    return face_chips(image, mediapipe_dlib5(landmarks), size=size, padding=padding)


def chips_tensor(chips: np.ndarray) -> torch.Tensor:
    """(n, 3, h, w) float32 tensor of (n, h, w, 3) uint8 chips, 0-255, what E_id takes. Its memory
    stays channels-last (no copy of the layout), the fast layout for the network on CPU."""
    import torch

    chips = np.asarray(chips)
    if chips.ndim != 4 or chips.shape[3] != 3:
        raise ValueError(f"expected chips of shape (n, h, w, 3), got {chips.shape}")
    return torch.from_numpy(np.ascontiguousarray(chips)).permute(0, 3, 1, 2).float()
