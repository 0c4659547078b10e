"""Vectorised triangle rasteriser: which triangle covers each pixel, and where inside it.

The generator needs, for every pixel of a face crop, the visible mesh triangle and the
barycentric coordinates of the pixel centre in it (to interpolate UVs, and to unwrap a photo
into UV space). There is no per-triangle Python loop: every (triangle, pixel row) pair is
expanded into the run of pixel centres between the triangle's edges on that row, all at once
in numpy, and a depth buffer (``np.minimum.at``) keeps the nearest surface, so a nose in front of a
cheek at 60° yaw hides it. Pixel ``(x, y)`` has its centre at integer coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Inclusive edge test: pixels exactly on a shared edge belong to both triangles, and the depth
# test picks one, so no hole opens along an edge.
_EDGE_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class Raster:
    """The covered pixels only (a renderer gathers and scatters them): ``pixels`` (k,) flat
    indices ``y * width + x``, each once; ``triangles`` (k,) the visible triangle there;
    ``bary`` (k, 3) float32 barycentric weights of the pixel centre in it."""

    height: int
    width: int
    pixels: np.ndarray
    triangles: np.ndarray
    bary: np.ndarray

    @property
    def covered(self) -> np.ndarray:
        """(h, w) bool."""
        out = np.zeros(self.height * self.width, bool)
        out[self.pixels] = True
        return out.reshape(self.height, self.width)

    def triangle_map(self) -> np.ndarray:
        """(h, w) int32 visible triangle, -1 where none."""
        out = np.full(self.height * self.width, -1, np.int32)
        out[self.pixels] = self.triangles
        return out.reshape(self.height, self.width)

    def interpolate(self, values: np.ndarray, triangles: np.ndarray) -> np.ndarray:
        """Per-vertex ``values`` (n, c) interpolated at the covered pixels: (k, c)."""
        corners = triangles[self.triangles]
        out = self.bary[:, 0:1] * values[corners[:, 0]]
        out += self.bary[:, 1:2] * values[corners[:, 1]]
        out += self.bary[:, 2:3] * values[corners[:, 2]]
        return out


def signed_areas(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Twice the signed 2D area of each triangle (positive = clockwise on screen, y down)."""
    a, b, c = (points[triangles[:, k], :2].astype(np.float64) for k in range(3))
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])


def rasterize(
    points: np.ndarray, triangles: np.ndarray, height: int, width: int, *, front_sign: float = 0.0,
) -> Raster:
    """See :func:`_rasterize`."""
    return _rasterize(points, triangles, height, width, front_sign, None)[0]


def rasterize_attributes(
    points: np.ndarray, triangles: np.ndarray, height: int, width: int, values: np.ndarray, *,
    front_sign: float = 0.0,
) -> tuple[Raster, np.ndarray]:
    """Per-vertex ``values`` (n, c) interpolated at the covered pixels, (k, c), straight from
    each triangle's attribute plane (no barycentrics: the renderer's hot path). The returned
    raster has no ``bary``."""
    raster, attrs = _rasterize(points, triangles, height, width, front_sign, values)
    return raster, attrs  # type: ignore[return-value]


def _rasterize(
    points: np.ndarray, triangles: np.ndarray, height: int, width: int, front_sign: float,
    attributes: np.ndarray | None,
) -> tuple[Raster, np.ndarray | None]:
    """Rasterise ``points`` (n, 2|3: x, y pixels and depth, larger = farther) into an h×w grid.

    ``front_sign`` > 0 keeps only triangles with positive :func:`signed_areas` (< 0 only
    negative; 0 keeps both): back-facing triangles of a turned head are culled.
    """
    points = np.asarray(points, np.float64)
    depth = points[:, 2] if points.shape[1] > 2 else np.zeros(len(points))
    area = signed_areas(points, triangles)
    keep = np.abs(area) > 1e-12
    if front_sign:
        keep &= np.sign(area) == np.sign(front_sign)
    tri_ids = np.flatnonzero(keep)
    corners = points[triangles[tri_ids], :2]  # (m, 3, 2)

    # Scanlines: one (triangle, row) pair per pixel row a triangle crosses, then the run of
    # pixel centres between its left and right edges on that row.
    y0 = np.clip(np.ceil(corners[..., 1].min(1) - _EDGE_EPS), 0, height).astype(np.int64)
    y1 = np.clip(np.floor(corners[..., 1].max(1) + _EDGE_EPS), -1, height - 1).astype(np.int64)
    rows_per_tri = np.maximum(y1 - y0 + 1, 0)
    pair_tri = np.repeat(np.arange(len(tri_ids)), rows_per_tri)
    pair_y = y0[pair_tri] + _ramp(rows_per_tri)
    xa, xb = _row_span(corners[pair_tri], pair_y.astype(np.float64))
    x_start = np.clip(np.ceil(xa - _EDGE_EPS), 0, width).astype(np.int64)
    x_end = np.clip(np.floor(xb + _EDGE_EPS), -1, width - 1).astype(np.int64)
    run = np.maximum(x_end - x_start + 1, 0)
    pix_pair = np.repeat(np.arange(len(pair_tri)), run)
    px = x_start[pix_pair] + _ramp(run)
    py = pair_y[pix_pair]
    local = pair_tri[pix_pair]

    # Per triangle, w0, w1 and depth are affine in (x, y): gather 9 coefficients per pixel
    # instead of the corners, and compute barycentrics only for the pixels that win the depth test.
    planes = _plane_coefficients(corners, area[tri_ids], depth[triangles[tri_ids]])
    pxf = px.astype(np.float32)
    pyf = py.astype(np.float32)
    zc = planes[:, 6:9][local]
    z = zc[:, 0] * pxf + zc[:, 1] * pyf + zc[:, 2]
    pix = py * width + px
    zbuf = np.full(height * width, np.inf, np.float32)
    np.minimum.at(zbuf, pix, z)
    win = np.flatnonzero(z <= zbuf[pix])
    owner = np.full(height * width, -1, np.int64)
    owner[pix[win]] = win  # one winner per pixel, also where depths tie
    won = owner[pix[win]] == win
    keep = win[won]
    local, pxf, pyf, pix = local[keep], pxf[keep], pyf[keep], pix[keep]
    if attributes is not None:
        (a0, a1, a2) = (attributes[triangles[tri_ids, k]].astype(np.float32) for k in range(3))
        d0, d1 = a0 - a2, a1 - a2
        c = planes[:, :6, None]
        coef = np.stack([d0 * c[:, 0] + d1 * c[:, 3], d0 * c[:, 1] + d1 * c[:, 4],
                         d0 * c[:, 2] + d1 * c[:, 5] + a2], axis=1)[local]  # (k, 3, C): per x, per y, constant
        values = coef[:, 0] * pxf[:, None]
        values += coef[:, 1] * pyf[:, None]
        values += coef[:, 2]
        return Raster(height, width, pix, tri_ids[local].astype(np.int32), np.zeros((0, 3), np.float32)), values
    wc = planes[:, :6][local]
    w0 = wc[:, 0] * pxf + wc[:, 1] * pyf + wc[:, 2]
    w1 = wc[:, 3] * pxf + wc[:, 4] * pyf + wc[:, 5]
    w = np.stack([w0, w1, 1.0 - w0 - w1], axis=1)
    np.clip(w, 0.0, 1.0, out=w)
    w /= w.sum(1, keepdims=True)
    return Raster(height, width, pix, tri_ids[local].astype(np.int32), w), None



def _plane_coefficients(corners: np.ndarray, area: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """(m, 9) float32: w0 = c0 x + c1 y + c2, w1 = c3 x + c4 y + c5, z = c6 x + c7 y + c8."""
    (ax, ay), (bx, by), (cx, cy) = (corners[:, k].T for k in range(3))
    inv = 1.0 / area
    # w0 = ((bx - x)(cy - y) - (cx - x)(by - y)) / area, expanded; w1 likewise with (c, a).
    c0, c1, c2 = (by - cy) * inv, (cx - bx) * inv, (bx * cy - cx * by) * inv
    c3, c4, c5 = (cy - ay) * inv, (ax - cx) * inv, (cx * ay - ax * cy) * inv
    za, zb, zc = depth.T
    c6 = c0 * za + c3 * zb + (-c0 - c3) * zc
    c7 = c1 * za + c4 * zb + (-c1 - c4) * zc
    c8 = c2 * za + c5 * zb + (1.0 - c2 - c5) * zc
    return np.stack([c0, c1, c2, c3, c4, c5, c6, c7, c8], axis=1).astype(np.float32)


def _ramp(lengths: np.ndarray) -> np.ndarray:
    """0, 1, ..., n_i - 1 for each run length n_i, concatenated."""
    total = int(lengths.sum())
    starts = np.cumsum(lengths) - lengths
    return np.arange(total) - np.repeat(starts, lengths)


def _row_span(corners: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Leftmost and rightmost x where the horizontal line at ``y`` crosses each triangle."""
    lo = np.full(len(y), np.inf)
    hi = np.full(len(y), -np.inf)
    for a, b in ((0, 1), (1, 2), (2, 0)):  # three edges, each vectorised over all pairs
        ax, ay, bx, by = corners[:, a, 0], corners[:, a, 1], corners[:, b, 0], corners[:, b, 1]
        crosses = (np.minimum(ay, by) - _EDGE_EPS <= y) & (y <= np.maximum(ay, by) + _EDGE_EPS)
        dy = by - ay
        flat = np.abs(dy) < 1e-12
        t = np.where(flat, 0.0, (y - ay) / np.where(flat, 1.0, dy)).clip(0.0, 1.0)
        x = ax + t * (bx - ax)
        for xe in (x, np.where(flat, bx, x)):  # a flat edge spans both its ends
            lo = np.where(crosses, np.minimum(lo, xe), lo)
            hi = np.where(crosses, np.maximum(hi, xe), hi)
    return lo, hi
