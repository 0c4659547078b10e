"""Box geometry: rotation mapping, clipping, clustering."""

from __future__ import annotations

import numpy as np
import pytest

from deidstream.geometry.boxes import rotate_boxes_to_stored, rotate_points_to_stored, share_inside, union_clusters
from deidstream.tracking.detector import tile_grid


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_boxes_found_upright_map_back_to_stored_pixels(rotation):
    stored = np.zeros((60, 100), np.uint8)
    stored[10:25, 70:90] = 1  # rows 10-24, columns 70-89
    upright = np.rot90(stored, rotation // 90)
    ys, xs = np.nonzero(upright)
    found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    back = rotate_boxes_to_stored(found, rotation, stored_w=100, stored_h=60)
    assert back.tolist() == [[70, 10, 90, 25]]
    corners = rotate_points_to_stored(found[:, :2], rotation, 100, 60)
    assert corners[0].tolist() in ([70, 10], [90, 10], [70, 25], [90, 25])


def test_clusters_merge_overlaps_and_keep_separate_faces():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [2, 2, 6, 6]], np.float32)
    clusters = union_clusters(boxes, np.array([0.9, 0.8, 0.7, 0.6]), iou=0.3)
    assert sorted(sorted(c.tolist()) for c in clusters) == [[0, 1, 3], [2]]


def test_tiles_cover_the_frame_with_overlap():
    tiles = tile_grid(1920, 1080, 720, 0.25)
    cover = np.zeros((1080, 1920), bool)
    for x0, y0, x1, y1 in tiles:
        cover[y0:y1, x0:x1] = True
    assert cover.all()
    assert all(x1 - x0 == 720 and y1 - y0 == 720 for x0, y0, x1, y1 in tiles)


def test_share_inside_is_the_part_of_each_box_another_holds():
    judged = np.array([[10, 10, 20, 20], [0, 0, 4, 4]], np.float32)
    covered = np.array([[0, 0, 30, 30], [15, 10, 40, 20], [100, 100, 200, 200]], np.float32)
    share = share_inside(judged, covered)
    assert share.shape == (2, 3)
    np.testing.assert_allclose(share[0], [1.0, 0.5, 0.0])
    np.testing.assert_allclose(share[1], [1.0, 0.0, 0.0])
    # not symmetric: of the big box, the small one holds little
    np.testing.assert_allclose(share_inside(covered[:1], judged[:1])[0, 0], 100 / 900, rtol=1e-6)
