"""Eye and mouth-interior masks from MediaPipe's contours, on real frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import SAMPLE

from deidstream.engine.generator.masks import InteriorContours, edge_loops, face_oval_mask, interior_mask, polygons_mask

CLIP = SAMPLE
CLOSED_MOUTH, OPEN_MOUTH = 0, 306  # frames of CLIP: lips together / laughing with teeth showing, no hands


@pytest.fixture(scope="module")
def faces() -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """frame index -> (RGB frame, (468, 2) full-frame FaceMesh landmarks in pixels)."""
    import av
    import mediapipe as mp

    frames = {}
    with av.open(str(CLIP)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i in (CLOSED_MOUTH, OPEN_MOUTH):
                frames[i] = f.to_ndarray(format="rgb24")
            if i >= OPEN_MOUTH:
                break
    out = {}
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1) as fm:
        for i, img in frames.items():
            h, w = img.shape[:2]
            found = fm.process(img).multi_face_landmarks
            assert found, f"no face found in frame {i} of {CLIP}"
            out[i] = img, np.array([(p.x * w, p.y * h) for p in found[0].landmark[:468]])
    return out


def _segments_cross(poly: np.ndarray) -> bool:
    """Whether any two non-adjacent edges of a closed polygon properly intersect."""
    a, b = poly, np.roll(poly, -1, axis=0)
    n = len(poly)

    def orient(p, q, r):
        cross = (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1]) - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0])
        return np.sign(cross)

    i, j = np.triu_indices(n, k=2)
    keep = ~((i == 0) & (j == n - 1))  # the first and last edges share a vertex
    i, j = i[keep], j[keep]
    d1, d2 = orient(a[i], b[i], a[j]), orient(a[i], b[i], b[j])
    d3, d4 = orient(a[j], b[j], a[i]), orient(a[j], b[j], b[i])
    return bool(((d1 * d2 < 0) & (d3 * d4 < 0)).any())


def test_contours_come_from_mediapipe_as_closed_loops():
    c = InteriorContours.from_mediapipe()
    assert c is InteriorContours.from_mediapipe()  # built once
    for loop in (c.left_eye, c.right_eye, c.inner_lips, c.face_oval):
        assert len(set(loop.tolist())) == len(loop) and loop.max() < 468
    assert {13, 14, 78, 308} <= set(c.inner_lips.tolist())  # inner lip midpoints and corners
    assert not {0, 17, 61, 291} & set(c.inner_lips.tolist())  # outer lip midpoints and corners
    assert {33, 133} <= set(c.right_eye.tolist()) and {263, 362} <= set(c.left_eye.tolist())


@pytest.mark.parametrize(
    "edges,error",
    [
        ({(0, 1), (1, 2), (2, 0)}, None),
        ({(0, 1), (1, 2)}, ValueError),  # open chain
        ({(0, 1), (1, 2), (2, 0), (0, 3), (3, 4), (4, 0)}, ValueError),  # figure eight
    ],
)
def test_edge_loops_refuse_what_is_not_closed_loops(edges, error):
    if error is None:
        assert [loop.tolist() for loop in edge_loops(edges)] == [[0, 1, 2]]
    else:
        with pytest.raises(error):
            edge_loops(edges)


def test_loops_are_simple_polygons_on_real_faces(faces):
    c = InteriorContours.from_mediapipe()
    for _, pts in faces.values():
        for name in ("left_eye", "right_eye", "inner_lips", "face_oval"):
            poly = pts[getattr(c, name)]
            assert not _segments_cross(poly), name
        assert abs(cv2.contourArea(pts[c.face_oval].astype(np.float32))) > 100 * abs(
            cv2.contourArea(pts[c.left_eye].astype(np.float32)))


def test_eyes_lie_inside_the_face_and_apart(faces):
    c = InteriorContours.from_mediapipe()
    img, pts = faces[OPEN_MOUTH]
    shape = img.shape[:2]
    oval = face_oval_mask(pts, shape)
    left = polygons_mask([pts[c.left_eye]], shape)
    right = polygons_mask([pts[c.right_eye]], shape)
    assert left.sum() > 0 and right.sum() > 0
    assert not (left & right).any()
    assert not (left & ~oval).any() and not (right & ~oval).any()
    # the subject's left eye is on the image's right
    assert np.nonzero(left)[1].mean() > np.nonzero(right)[1].mean()
    # the interior mask holds both eyes (and a little margin)
    both = interior_mask(pts, shape, dilate_px=0.0)
    assert ((left | right) <= both).all()


def test_open_mouth_gives_a_mouth_mask_and_a_closed_one_almost_none(faces):
    c = InteriorContours.from_mediapipe()
    areas = {}
    for i, (img, pts) in faces.items():
        mask = interior_mask(pts, img.shape[:2])
        lips = polygons_mask([pts[c.inner_lips]], img.shape[:2], dilate_px=2.0)
        areas[i] = int((mask & lips).astype(bool).sum())
    assert areas[OPEN_MOUTH] > 1000  # a laughing mouth on a 215 px wide face
    assert areas[CLOSED_MOUTH] < areas[OPEN_MOUTH] / 20
    # without the openness gate, the sliver MediaPipe leaves between closed lips would be kept
    img, pts = faces[CLOSED_MOUTH]
    lips = polygons_mask([pts[c.inner_lips]], img.shape[:2])
    sliver = interior_mask(pts, img.shape[:2], min_mouth_opening=0.0) & lips
    assert sliver.astype(bool).sum() > areas[CLOSED_MOUTH] + 50


def test_offset_and_dilation(faces):
    img, pts = faces[OPEN_MOUTH]
    full = interior_mask(pts, img.shape[:2], dilate_px=0.0)
    ys, xs = np.nonzero(full)
    x0, y0 = int(xs.min()) - 5, int(ys.min()) - 5
    crop = interior_mask(pts, (ys.max() - y0 + 6, xs.max() - x0 + 6), offset=(x0, y0), dilate_px=0.0)
    assert np.array_equal(crop, full[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]])
    grown = interior_mask(pts, img.shape[:2], dilate_px=3.0)
    assert (full <= grown).all() and grown.astype(bool).sum() > 1.2 * full.astype(bool).sum()
    far = interior_mask(pts + 10_000, img.shape[:2])  # off the frame: empty, no error
    assert not far.any()


@pytest.mark.parametrize(
    "landmarks,shape,kwargs",
    [
        (np.zeros((10, 2)), (10, 10), {}),
        (np.zeros((468,)), (10, 10), {}),
        (np.zeros((468, 2)), (0, 10), {}),
        (np.zeros((468, 2)), (10, 10), {"dilate_px": -1.0}),
    ],
)
def test_masks_refuse_bad_input(landmarks, shape, kwargs):
    with pytest.raises(ValueError):
        interior_mask(landmarks, shape, **kwargs)


def test_478_points_with_z_are_accepted(faces):
    img, pts = faces[OPEN_MOUTH]
    with_iris = np.concatenate([np.c_[pts, np.zeros(468)], np.zeros((10, 3))])
    assert np.array_equal(interior_mask(with_iris, img.shape[:2]), interior_mask(pts, img.shape[:2]))
