"""Box arithmetic shared by the detector, the tracker and the anonymisers (xyxy, float pixels)."""

from __future__ import annotations

import numpy as np


def landmark_box(points: np.ndarray) -> np.ndarray:
    """dlib-detector-like square box (x0, y0, x1, y1) from (n, 2+) face landmarks: a square at the
    centre of their extent with side sqrt(w * h) matches dlib's HOG box (median offset 2 % of the
    face, side ratio 0.98), the box dlib's 5-point alignment model expects.

    >>> landmark_box(np.array([[0.0, 0.0], [40.0, 10.0], [20.0, 90.0]])).tolist()
    [-10.0, 15.0, 50.0, 75.0]
    """
    lo, hi = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
    centre, side = (lo + hi) / 2, float(np.sqrt(np.prod(hi - lo)))
    return np.concatenate([centre - side / 2, centre + side / 2]).astype(np.float32)


def extent_iou(points: np.ndarray, box: np.ndarray) -> float:
    """IoU of the extent of (n, 2+) landmarks with a (4,) box: low when they describe another face.

    >>> round(extent_iou(np.array([[0.0, 0.0], [2.0, 2.0]]), np.array([1.0, 0.0, 3.0, 2.0])), 3)
    0.333
    """
    lo, hi = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
    return float(iou_matrix(np.array([[*lo, *hi]]), np.asarray(box)[None])[0, 0])


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (n, 4) and (m, 4) boxes.

    >>> float(iou_matrix(np.array([[0, 0, 2, 2]]), np.array([[1, 0, 3, 2]]))[0, 0])
    0.3333333432674408
    """
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    inter = _intersection(a, b)
    area_a = _area(a)[:, None]
    area_b = _area(b)[None, :]
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)


def containment_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over the smaller box's area: 1 when one box lies inside the other."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    inter = _intersection(a, b)
    smaller = np.minimum(_area(a)[:, None], _area(b)[None, :])
    return np.where(smaller > 0, inter / np.maximum(smaller, 1e-9), 0.0).astype(np.float32)


def share_inside(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)): the share of each box of ``a`` that lies inside each box of ``b``."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    area = _area(a)[:, None]
    return np.where(area > 0, _intersection(a, b) / np.maximum(area, 1e-9), 0.0).astype(np.float32)


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    return np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def union_clusters(xyxy: np.ndarray, score: np.ndarray, iou: float, contain: float = 0.7) -> list[np.ndarray]:
    """Greedy clustering by score: each cluster holds the best remaining box and every box that
    overlaps it (IoU above ``iou`` or mostly inside it). Returns index arrays, best first."""
    order = np.argsort(-score, kind="stable")
    overlap = np.maximum(iou_matrix(xyxy, xyxy) > iou, containment_matrix(xyxy, xyxy) > contain)
    taken = np.zeros(len(score), bool)
    clusters = []
    for i in order:
        if taken[i]:
            continue
        members = np.flatnonzero(overlap[i] & ~taken)
        taken[members] = True
        clusters.append(np.concatenate([[i], members[members != i]]))
    return clusters


def expand(xyxy: np.ndarray, margin: float, top: float = 0.0) -> np.ndarray:
    """Widen boxes by ``margin`` of their size on each side and ``top`` more upwards."""
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    w = xyxy[:, 2] - xyxy[:, 0]
    h = xyxy[:, 3] - xyxy[:, 1]
    return np.stack(
        [xyxy[:, 0] - margin * w, xyxy[:, 1] - (margin + top) * h, xyxy[:, 2] + margin * w, xyxy[:, 3] + margin * h],
        axis=1,
    )


def scale_about_centre(xyxy: np.ndarray, factor: np.ndarray | float) -> np.ndarray:
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    factor = np.broadcast_to(np.asarray(factor, np.float32), (len(xyxy),))
    cx = (xyxy[:, 0] + xyxy[:, 2]) / 2
    cy = (xyxy[:, 1] + xyxy[:, 3]) / 2
    hw = (xyxy[:, 2] - xyxy[:, 0]) / 2 * factor
    hh = (xyxy[:, 3] - xyxy[:, 1]) / 2 * factor
    return np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=1)


def pixel_bounds(box: np.ndarray, width: int, height: int) -> tuple[int, int, int, int] | None:
    """Integer slice bounds covering every pixel the box touches, clipped to the frame.

    The end is exclusive and rounded up, so the last row and column of a face are covered.
    >>> pixel_bounds(np.array([-3.0, 2.5, 9.1, 20.0]), 8, 10)
    (0, 2, 8, 10)
    """
    x0 = max(0, int(np.floor(box[0])))
    y0 = max(0, int(np.floor(box[1])))
    x1 = min(width, int(np.ceil(box[2])))
    y1 = min(height, int(np.ceil(box[3])))
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def rotate_boxes_to_stored(xyxy: np.ndarray, rotation: int, stored_w: int, stored_h: int) -> np.ndarray:
    """Map boxes found on the upright view ``np.rot90(stored, rotation // 90)`` back to stored pixels."""
    k = (rotation // 90) % 4
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    x0, y0, x1, y1 = xyxy.T
    if k == 0:
        out = (x0, y0, x1, y1)
    elif k == 1:  # upright(x, y) = stored(W - 1 - y, x) for a 90° counter-clockwise turn
        out = (stored_w - y1, x0, stored_w - y0, x1)
    elif k == 2:
        out = (stored_w - x1, stored_h - y1, stored_w - x0, stored_h - y0)
    else:
        out = (y0, stored_h - x1, y1, stored_h - x0)
    return np.stack(out, axis=1).astype(np.float32)


def rotate_points_to_stored(points: np.ndarray, rotation: int, stored_w: int, stored_h: int) -> np.ndarray:
    """Same mapping as :func:`rotate_boxes_to_stored` for (..., 2) points."""
    k = (rotation // 90) % 4
    p = np.asarray(points, np.float32)
    x, y = p[..., 0], p[..., 1]
    if k == 0:
        return p
    if k == 1:
        return np.stack([stored_w - y, x], axis=-1)
    if k == 2:
        return np.stack([stored_w - x, stored_h - y], axis=-1)
    return np.stack([y, stored_h - x], axis=-1)
