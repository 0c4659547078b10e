"""The rasteriser and the UV atlas: coverage without holes, the nearest surface wins, UVs map back."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from deidstream.engine.generator.facemodel import default_model
from deidstream.engine.generator.raster import rasterize, signed_areas
from deidstream.engine.generator.uvmap import UVAtlas


def _square(z: float, x0: float = 2.0, x1: float = 12.0) -> tuple[np.ndarray, np.ndarray]:
    pts = np.array([[x0, x0, z], [x1, x0, z], [x1, x1, z], [x0, x1, z]], np.float64)
    return pts, np.array([[0, 1, 2], [0, 2, 3]])


def test_two_triangles_cover_a_square_exactly_once():
    pts, tris = _square(1.0)
    r = rasterize(pts, tris, 16, 16)
    cov = r.covered
    assert cov.sum() == 11 * 11  # pixel centres 2..12 inclusive in both axes
    assert cov[2:13, 2:13].all()
    assert len(np.unique(r.pixels)) == len(r.pixels)
    np.testing.assert_allclose(r.bary.sum(1), 1.0, atol=1e-6)


def test_nearer_surface_wins_whatever_the_order():
    far, tris = _square(5.0, 0.0, 15.0)
    near, _ = _square(1.0, 4.0, 8.0)
    pts = np.vstack([far, near])
    both = np.vstack([tris, tris + 4])
    for order in (both, both[::-1]):
        tri_map = rasterize(pts, order, 16, 16).triangle_map()
        inner = tri_map[4:9, 4:9]
        assert np.isin(order[inner.ravel()], [4, 5, 6, 7]).all()


def test_back_faces_are_culled_on_request():
    pts, tris = _square(1.0)
    sign = np.sign(signed_areas(pts, tris))[0]
    assert rasterize(pts, tris, 16, 16, front_sign=sign).covered.sum() > 0
    assert rasterize(pts, tris, 16, 16, front_sign=-sign).covered.sum() == 0


def test_triangle_outside_the_grid_draws_nothing():
    pts = np.array([[-30.0, -30, 0], [-20, -30, 0], [-20, -20, 0]])
    assert rasterize(pts, np.array([[0, 1, 2]]), 8, 8).covered.sum() == 0


@pytest.mark.parametrize("yaw", [-60, -45, 0, 45, 60])
def test_face_mesh_has_no_holes_when_turned(yaw):
    import cv2

    model = default_model()
    mesh = model.mesh
    v = mesh.vertices @ Rotation.from_euler("y", yaw, degrees=True).as_matrix().T
    v = (v - v.mean(0)) * (200.0 / np.ptp(mesh.vertices[:, 0])) + np.array([128.0, 128.0, 0.0])
    front = np.sign(np.median(signed_areas(mesh.uvs, mesh.triangles)))
    cov = rasterize(v, mesh.triangles, 256, 256, front_sign=front).covered.astype(np.uint8)
    contours, _ = cv2.findContours(cov, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(cov)
    cv2.drawContours(filled, contours, -1, 1, -1)
    assert len(contours) == 1
    assert int(filled.sum()) - int(cov.sum()) == 0  # no uncovered pixel inside the silhouette
    assert cov.sum() > 20000


def test_mesh_loads_in_landmark_order_with_uvs_inside_the_unit_square():
    mesh = default_model().mesh
    assert mesh.vertices.shape == (468, 3)
    assert mesh.triangles.shape == (898, 3)
    assert mesh.triangles.min() == 0 and mesh.triangles.max() == 467
    assert (mesh.uvs >= 0).all() and (mesh.uvs <= 1).all()
    # landmark order: 1 and 4 are the nose tip (nearest the camera), 152 the chin (lowest), 33 / 263 the eye corners
    assert mesh.vertices[:, 2].argmin() in (1, 4)
    assert mesh.vertices[:, 1].argmax() == 152
    assert mesh.vertices[33, 0] < mesh.vertices[263, 0]


def test_unwrap_then_resample_returns_the_image():
    """A texture unwrapped from a photo and mapped back lands on the same pixels."""
    model = default_model()
    mesh = model.mesh
    atlas = UVAtlas(mesh.uvs, mesh.triangles, 256)
    rng = np.random.default_rng(0)
    image = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    import cv2

    image = cv2.resize(image, (320, 320), interpolation=cv2.INTER_CUBIC)
    pts = (mesh.vertices - mesh.vertices.mean(0)) * 12.0 + np.array([160.0, 160.0, 0.0])
    u = atlas.unwrap(image, pts)
    assert u.weight[atlas.mask].mean() > 0.5
    # sample the texture at the UV of each frontal-facing vertex: the photo's colour at that vertex
    seen = u.weight[(mesh.uvs[:, 1] * 255).astype(int), (mesh.uvs[:, 0] * 255).astype(int)] > 0.6
    tex = u.texture[(mesh.uvs[seen, 1] * 256 - 0.5).round().astype(int).clip(0, 255),
                    (mesh.uvs[seen, 0] * 256 - 0.5).round().astype(int).clip(0, 255)]
    photo = image[pts[seen, 1].astype(int), pts[seen, 0].astype(int)] / 255.0
    assert np.abs(tex - photo).mean() < 0.06


@pytest.mark.parametrize("yaw", [0, 50])
def test_unwrapping_part_of_the_layout_reads_those_texels_as_a_whole_unwrap_does(yaw):
    """A skin-tone read unwraps only the texels it needs; they must be the whole unwrap's, the rest unseen.
    Worked out on a smaller face, what hides what still agrees on nearly every texel of a turned face."""
    import cv2

    mesh = default_model().mesh
    atlas = UVAtlas(mesh.uvs, mesh.triangles, 256)
    rng = np.random.default_rng(1)
    image = cv2.resize((rng.random((60, 60, 3)) * 255).astype(np.uint8), (480, 480), interpolation=cv2.INTER_CUBIC)
    v = mesh.vertices @ Rotation.from_euler("y", yaw, degrees=True).as_matrix().T
    pts = (v - v.mean(0)) * (360.0 / np.ptp(mesh.vertices[:, 0])) + np.array([240.0, 240.0, 0.0])
    part = np.zeros((256, 256), bool)
    part[60:200, 30:220] = True
    whole = atlas.unwrap(image, pts)
    some = atlas.unwrap(image, pts, atlas.texels(part))
    inside = part & atlas.mask
    np.testing.assert_array_equal(some.texture[inside], whole.texture[inside])
    np.testing.assert_array_equal(some.weight[inside], whole.weight[inside])
    assert not some.weight[~part].any() and not some.texture[~part].any()
    coarse = atlas.unwrap(image, pts, atlas.texels(part), visibility_px=128)
    seen, seen_coarse = whole.weight[inside] > 0.5, coarse.weight[inside] > 0.5
    assert seen.sum() > 1000
    assert np.mean(seen == seen_coarse) > 0.98
