"""dlib's 5-point face alignment model, read from dlib's own file and run in numpy.

E_id's descriptors hold on chips cut from the 5 points dlib's shape predictor
(``shape_predictor_5_face_landmarks.dat``, package ``face-recognition-models``) finds, and they
move with those points: a chip shifted by half a percent of its side moves a descriptor by about
0.05. MediaPipe's landmarks nearest the 5 points sit off them by an amount of each person's own
(chips cut from them: descriptors a median 0.082 from dlib's; a ridge map from all 468 landmarks,
fitted on the synthetic donors and clips, came no closer than a constant offset on held-out people,
0.066-0.072; that experiment is not kept), so the product runs dlib's model itself: a cascade of
regression trees (Kazemi and Sullivan, 2014) over grey-level differences of pixel pairs placed
relative to the current shape.
Started from the landmarks' box it gives descriptors a median 0.036 (p90 0.076) from those of
dlib's whole pipeline (its HOG box), on 643 faces of the shared data; on dlib's own box, dlib's
points exactly (benchmarks/bench_eid.py).

The model: an initial shape (5 points in the unit box), then per cascade level 800 feature pixels
(an anchor point of the shape and an offset, turned and scaled with the shape's similarity to the
initial one) and 500 trees of depth 4 (a split compares the difference of two feature pixels with
a threshold; a leaf adds a shape offset). Pixels are ``(r + g + b) // 3`` at the rounded
position, 0 outside the image; points come out rounded to whole pixels, as dlib's do.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deidstream.errors import ConfigError
from deidstream.networks.model_files import models_dir

log = logging.getLogger(__name__)
MODEL_FILE = "shape_predictor_5_face_landmarks.dat"
N_POINTS = 5


def _integers(data: bytes, path: Path) -> np.ndarray:
    """Every integer in ``data``: a dlib shape predictor file holds nothing else (a float is a
    mantissa and an exponent; see :mod:`deidstream.networks.dlib_format`)."""
    raw = np.frombuffer(data, np.uint8)
    steps = ((raw & 0x0F) + 1).astype(np.uint8).tobytes()  # from each byte, were it a control byte, to the next
    starts: list[int] = []
    append, pos, end = starts.append, 0, len(data)
    while pos < end:  # 3 million integers: the one loop in Python, kept to two operations
        append(pos)
        pos += steps[pos]
    at = np.array(starts, np.int64)
    control = raw[at]
    size = control & 0x0F
    if pos != end or (size == 0).any() or (size > 8).any() or (control & 0x70).any():
        raise ConfigError(f"{path}: not dlib's shape predictor (its bytes are not dlib's integers)")
    value = np.zeros(len(at), np.uint64)
    for k in range(int(size.max(initial=0))):  # little-endian bytes, as many as each control byte says
        longer = np.flatnonzero(size > k)
        value[longer] |= raw[at[longer] + 1 + k].astype(np.uint64) << np.uint64(8 * k)
    signed = value.astype(np.int64)
    return np.where(control & 0x80, -signed, signed)


class _Cursor:
    """Reads the integer stream in the order dlib wrote it, checking counts."""

    def __init__(self, values: np.ndarray, path: Path) -> None:
        self.values, self.pos, self.path = values, 0, path

    def take(self, n: int) -> np.ndarray:
        if n < 0 or self.pos + n > len(self.values):
            raise ConfigError(f"{self.path}: not dlib's shape predictor (it ends early)")
        out = self.values[self.pos:self.pos + n]
        self.pos += n
        return out

    def count(self, expected: int | None = None, what: str = "a count") -> int:
        n = int(self.take(1)[0])
        if n < 0 or (expected is not None and n != expected):
            raise ConfigError(f"{self.path}: not dlib's 5-point shape predictor: {what} is {n}"
                              + (f", expected {expected}" if expected is not None else ""))
        return n

    def floats(self, n: int) -> np.ndarray:
        pairs = self.take(2 * n).reshape(n, 2)
        return np.ldexp(pairs[:, 0].astype(np.float64), pairs[:, 1]).astype(np.float32)

    def column(self, n: int) -> np.ndarray:
        """A dlib ``matrix<float,0,1>`` of ``n`` values (dlib writes its sizes negated)."""
        rows, cols = (abs(int(v)) for v in self.take(2))
        if (rows, cols) != (n, 1):
            raise ConfigError(f"{self.path}: not dlib's 5-point shape predictor: a {rows}x{cols} matrix, "
                              f"expected {n}x1")
        return self.floats(n)


@dataclass(frozen=True, slots=True)
class ShapePredictor:
    """dlib's shape predictor: ``initial`` (5, 2) in the unit box; per level ``anchors`` (L, P),
    ``deltas`` (L, P, 2), ``splits`` (L, T, S) pixel pairs and ``thresholds``, ``leaves`` (L, T, S + 1, 5, 2)."""

    initial: np.ndarray
    anchors: np.ndarray
    deltas: np.ndarray
    first: np.ndarray
    second: np.ndarray
    thresholds: np.ndarray
    leaves: np.ndarray

    @property
    def depth(self) -> int:
        return int(np.log2(self.leaves.shape[2]))

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(n, 5, 2) points, dlib's order, of the faces in ``boxes`` (n, 4: x0, y0, x1, y1, rounded
        to whole pixels as dlib's rectangles are) of the RGB or grey ``image``; all faces at once."""
        image = np.asarray(image)
        boxes = np.floor(np.asarray(boxes, np.float64).reshape(-1, 4) + 0.5)
        n, (h, w) = len(boxes), image.shape[:2]
        flat = image.reshape(h * w, -1)
        origin, scale = boxes[:, None, :2], (boxes[:, 2:] - boxes[:, :2])[:, None]
        shape = np.repeat(self.initial[None].astype(np.float32), n, axis=0)
        levels, n_trees, n_splits = self.first.shape
        first, second = self.first.reshape(levels, -1), self.second.reshape(levels, -1)
        thresholds = self.thresholds.reshape(levels, -1)
        leaves = self.leaves.reshape(levels, -1, N_POINTS, 2)
        tree_split = np.arange(n_trees) * n_splits  # a tree's first split in a level's flat splits
        tree_leaf = np.arange(n_trees) * (n_splits + 1) - n_splits  # its first leaf, less the splits
        face_split = np.arange(n)[:, None] * (n_trees * n_splits)  # a face's first split decision
        centred = self.initial.astype(np.float64) - self.initial.mean(axis=0)
        for level in range(levels):
            m = _similarity(centred, shape)
            dx, dy = self.deltas[level, :, 0], self.deltas[level, :, 1]
            anchor = shape[:, self.anchors[level]]  # float32 throughout, as dlib computes the offsets
            x = (m[:, 0, :1] * dx + m[:, 0, 1:] * dy + anchor[..., 0]).astype(np.float64) * scale[..., 0]
            y = (m[:, 1, :1] * dx + m[:, 1, 1:] * dy + anchor[..., 1]).astype(np.float64) * scale[..., 1]
            col = np.floor(x + origin[..., 0] + 0.5).astype(np.int64)
            row = np.floor(y + origin[..., 1] + 0.5).astype(np.int64)
            inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
            found = flat[np.where(inside, row * w + col, 0)]
            grey = found.sum(axis=-1, dtype=np.int32) // 3 if found.shape[-1] == 3 else found[..., 0]
            pixels = np.where(inside, grey, 0).astype(np.float32)
            # every split of the level at once (7,500 comparisons), then each tree's path through them
            decisions = (pixels[:, first[level]] - pixels[:, second[level]] > thresholds[level]).ravel()
            node = np.zeros((n, n_trees), np.int64)
            for _ in range(self.depth):
                node = 2 * node + 2 - decisions[face_split + tree_split + node]
            # one leaf after another in float32, as dlib adds them: the cascade is chaotic enough that
            # a sum in another order moves 1 face in 10 by a pixel or more
            steps = np.concatenate([shape[:, None], leaves[level][tree_leaf + node]], axis=1)
            shape = np.cumsum(steps, axis=1, dtype=np.float32)[:, -1]
        return np.floor(shape.astype(np.float64) * scale + origin + 0.5)


def _similarity(centred: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(n, 2, 2) float32: the linear part of the least-squares similarity from the ``centred``
    points (k, 2) to each of ``dst`` (n, k, 2), without reflection (dlib's
    ``find_similarity_transform``). In 2-D, Umeyama's solution in closed form: scale times rotation
    is [[a, -b], [b, a]] with a = sum(s . d) / sum(s . s) and b = sum(s x d) / sum(s . s)."""
    d0 = dst.astype(np.float64)
    d0 -= d0.mean(axis=1, keepdims=True)
    norm = float((centred * centred).sum())
    a = (d0[..., 0] @ centred[:, 0] + d0[..., 1] @ centred[:, 1]) / norm
    b = (d0[..., 1] @ centred[:, 0] - d0[..., 0] @ centred[:, 1]) / norm
    return np.stack([a, -b, b, a], axis=1).reshape(-1, 2, 2).astype(np.float32)


def _trees(c: _Cursor, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``count`` trees of one level, all of the first one's size: (T, S) first and second pixels,
    (T, S) thresholds, (T, S + 1, 5, 2) leaves. A tree is its split count, (pixel, pixel, mantissa,
    exponent) per split, its leaf count and per leaf a 10 x 1 matrix (two sizes, 10 floats)."""
    splits = int(c.values[c.pos]) if c.pos < len(c.values) else -1
    if splits < 1:
        raise ConfigError(f"{c.path}: not dlib's shape predictor: a tree has {splits} splits")
    leaf = 2 + 4 * N_POINTS
    size = 2 + 4 * splits + (splits + 1) * leaf
    block = c.take(count * size).reshape(count, size)
    leaf_block = block[:, 2 + 4 * splits:].reshape(count, splits + 1, leaf)
    if ((block[:, 0] != splits).any() or (block[:, 1 + 4 * splits] != splits + 1).any()
            or (np.abs(leaf_block[..., :2]) != (2 * N_POINTS, 1)).any()):
        raise ConfigError(f"{c.path}: not dlib's 5-point shape predictor: its trees differ in shape")
    raw = block[:, 1:1 + 4 * splits].reshape(count, splits, 4)
    thresholds = np.ldexp(raw[..., 2].astype(np.float64), raw[..., 3]).astype(np.float32)
    values = leaf_block[..., 2:].reshape(count, splits + 1, 2 * N_POINTS, 2)
    leaves = np.ldexp(values[..., 0].astype(np.float64), values[..., 1]).astype(np.float32)
    return raw[..., 0], raw[..., 1], thresholds, leaves.reshape(count, splits + 1, N_POINTS, 2)


def _parse(path: Path) -> ShapePredictor:
    c = _Cursor(_integers(path.read_bytes(), path), path)
    c.count(1, "its version")
    initial = c.column(2 * N_POINTS).reshape(N_POINTS, 2)
    levels = c.count(what="the number of cascade levels")
    first, second, thresholds, leaves = [], [], [], []
    for _ in range(levels):
        trees = _trees(c, c.count(what="the number of trees"))
        first.append(trees[0])
        second.append(trees[1])
        thresholds.append(trees[2])
        leaves.append(trees[3])
    c.count(levels, "the number of anchor lists")
    anchors = [c.take(c.count(what="the number of feature pixels")) for _ in range(levels)]
    c.count(levels, "the number of delta lists")
    deltas = [c.floats(2 * c.count(len(a), "the number of deltas")).reshape(-1, 2) for a in anchors]
    if c.pos != len(c.values):
        raise ConfigError(f"{path}: not dlib's shape predictor ({len(c.values) - c.pos} values left over)")
    try:
        model = ShapePredictor(initial, np.stack(anchors), np.stack(deltas), np.stack(first), np.stack(second),
                               np.stack(thresholds), np.stack(leaves))
    except ValueError as exc:
        raise ConfigError(f"{path}: not dlib's shape predictor (its trees differ in size: {exc})") from exc
    pixels = model.deltas.shape[1]
    if model.anchors.max() >= N_POINTS or max(model.first.max(), model.second.max()) >= pixels:
        raise ConfigError(f"{path}: not dlib's 5-point shape predictor (an index is out of range)")
    return model


@functools.lru_cache(maxsize=4)
def _cached(path: Path, stamp: tuple[int, int]) -> ShapePredictor:
    """Parsed once per file version: from the user's cache when it holds this version (parsing dlib's
    3 million variable-length integers takes 0.8 s of every start), else from the file, then cached."""
    from deidstream.config.paths import cache_dir, cached_arrays

    def parsed() -> dict[str, np.ndarray]:
        model = _parse(path)
        log.info("read dlib's 5-point shape predictor from %s", path)
        return {name: getattr(model, name) for name in ShapePredictor.__slots__}

    arrays = cached_arrays(cache_dir() / "parsed" / f"{path.stem}-{stamp[1]}-{stamp[0]}.npz", parsed,
                           "the parsed shape predictor", lambda found: set(ShapePredictor.__slots__) <= set(found))
    model = ShapePredictor(**{name: arrays[name] for name in ShapePredictor.__slots__})
    return model


def load_shape_predictor(path: str | Path | None = None) -> ShapePredictor:
    """dlib's 5-point shape predictor from ``path`` (default: the ``face-recognition-models`` one),
    parsed once per process and file version."""
    path = Path(path) if path is not None else models_dir() / MODEL_FILE
    try:
        stat = path.resolve().stat()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read dlib's shape predictor: {exc.strerror or exc}") from exc
    return _cached(path.resolve(), (stat.st_mtime_ns, stat.st_size))
