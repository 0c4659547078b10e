"""Multi-band compositing of a rendered face crop into the frame."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from deidstream.engine.generator.compositor import Compositor, RenderedFace
from deidstream.errors import ConfigError


def disc(h: int, w: int, radius: float, centre: tuple[float, float] | None = None) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    cx, cy = centre if centre is not None else (w / 2, h / 2)
    return ((xx - cx) ** 2 + (yy - cy) ** 2 < radius**2).astype(np.float32)


def texture(h: int, w: int, seed: int) -> np.ndarray:
    """Smooth shading plus pixel noise: something with both low and high frequencies."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    shade = 60 + 100 * (xx / w) + 40 * np.sin(yy / 17.0)
    return np.clip(shade[..., None] + rng.normal(0, 20, (h, w, 3)) + rng.uniform(-30, 30, 3), 0, 255).astype(np.uint8)


def test_zero_alpha_leaves_the_frame_bit_identical():
    frame = texture(240, 320, 0)
    before = frame.copy()
    face = RenderedFace(texture(128, 128, 1), np.zeros((128, 128), np.float32), 50, 40)
    assert Compositor().apply(frame, face) is frame
    assert np.array_equal(frame, before)


@pytest.mark.parametrize("shape,levels", [((256, 256), 4), ((97, 131), 3), ((40, 33), 1)])
def test_full_alpha_gives_the_render_inside(shape, levels):
    """Deeper inside the face than the blend reaches, the render is all there is (small faces get fewer levels)."""
    h, w = shape
    frame = texture(300, 400, 0)
    render = texture(h, w, 1)
    radius = 0.45 * min(h, w)
    Compositor(colour_match=False).apply(frame, RenderedFace(render, disc(h, w, radius), 100, 20))
    inner = disc(h, w, radius - Compositor(levels=levels).reach_px - 1).astype(bool)
    assert inner.sum() >= 9
    got = frame[20 : 20 + h, 100 : 100 + w][inner].astype(int)
    assert np.abs(got - render[inner]).max() <= 3


def test_float_and_uint8_renders_agree():
    frame_a, frame_b = texture(200, 200, 0), texture(200, 200, 0)
    render = texture(150, 150, 1)
    alpha = cv2.GaussianBlur(disc(150, 150, 55), (0, 0), 3)
    comp = Compositor()
    comp.apply(frame_a, RenderedFace(render, alpha, 20, 30))
    comp.apply(frame_b, RenderedFace(render.astype(np.float32) / 255, alpha, 20, 30))
    assert np.abs(frame_a.astype(int) - frame_b).max() <= 1


@pytest.mark.parametrize("x0,y0", [(-60, -40), (300, 180), (-30, 200), (250, -90)])
def test_crop_over_the_frame_edge_reaches_the_last_row_and_column(x0, y0):
    frame = texture(240, 320, 0)
    before = frame.copy()
    render = np.full((128, 128, 3), (250, 20, 200), np.uint8)
    Compositor(colour_match=False).apply(frame, RenderedFace(render, np.ones((128, 128), np.float32), x0, y0))
    inside = np.zeros(frame.shape[:2], bool)
    inside[max(y0, 0) : y0 + 128, max(x0, 0) : x0 + 128] = True
    assert inside.any()
    assert (frame[inside] == (250, 20, 200)).all()  # every covered pixel, the frame's last row/column included
    assert np.array_equal(frame[~inside], before[~inside])


def test_crop_entirely_outside_the_frame_is_a_no_op():
    frame = texture(100, 100, 0)
    before = frame.copy()
    Compositor().apply(frame, RenderedFace(texture(50, 50, 1), np.ones((50, 50), np.float32), 100, -10))
    assert np.array_equal(frame, before)


def _max_gradient(image: np.ndarray) -> float:
    gy, gx = np.gradient(image[..., 0].astype(np.float64))
    return float(np.hypot(gx, gy).max())


def test_no_seam_at_the_alpha_boundary():
    frame = np.full((300, 400, 3), (60, 80, 100), np.uint8)
    render = np.full((256, 256, 3), (200, 150, 120), np.uint8)
    face = RenderedFace(render, disc(256, 256, 90), 70, 20)  # a hard-edged alpha
    step = 200 - 60
    blended = Compositor(colour_match=False).apply(frame.copy(), face)
    pasted = Compositor(levels=1, feather_px=0.0, colour_match=False).apply(frame.copy(), face)
    assert (blended[148, 198] == (200, 150, 120)).all() and (blended[0, 0] == (60, 80, 100)).all()
    # the step is spread over many pixels, not cut at the mask's edge
    assert _max_gradient(blended) < 0.05 * step
    assert _max_gradient(pasted) > 0.25 * step
    row = blended[148, 70:326, 0].astype(int)
    assert (np.diff(row[:128]) >= 0).all() and (np.diff(row[128:]) <= 0).all()  # monotone, no ringing


def test_pixels_beyond_the_reach_are_unchanged():
    frame = texture(400, 400, 0)
    before = frame.copy()
    alpha = disc(300, 300, 30)
    comp = Compositor()
    comp.apply(frame, RenderedFace(texture(300, 300, 1), alpha, 50, 50))
    distance = cv2.distanceTransform((1 - alpha).astype(np.uint8), cv2.DIST_C, 3)  # chessboard distance
    far = np.zeros(frame.shape[:2], bool)
    far[50:350, 50:350] = distance > comp.reach_px
    far[:50] = far[350:] = True
    far[:, :50] = far[:, 350:] = True
    changed = (frame != before).any(axis=-1)
    assert not changed[far].any()
    assert changed[50:350, 50:350][distance <= 1].mean() > 0.9


def test_holes_keep_the_frames_detail():
    """Eye and mouth openings (zero alpha inside the support) show the frame's detail, not the render's."""
    frame = texture(256, 256, 0)
    render = texture(256, 256, 1)
    alpha = disc(256, 256, 110) * (1 - disc(256, 256, 14, (100, 110))) * (1 - disc(256, 256, 14, (156, 110)))
    out = Compositor(colour_match=False).apply(frame.copy(), RenderedFace(render, alpha, 0, 0))
    eye = disc(256, 256, 6, (100, 110)).astype(bool) | disc(256, 256, 6, (156, 110)).astype(bool)
    skin = disc(256, 256, 40, (128, 170)).astype(bool)

    def detail(image: np.ndarray) -> np.ndarray:
        image = image.astype(np.float32)
        return image - cv2.GaussianBlur(image, (0, 0), 2.0)

    d_out, d_frame, d_render = detail(out), detail(frame), detail(render)
    assert np.corrcoef(d_out[eye].ravel(), d_frame[eye].ravel())[0, 1] > 0.9
    assert np.corrcoef(d_out[skin].ravel(), d_render[skin].ravel())[0, 1] > 0.9


def test_colour_matching_moves_the_render_towards_the_frame():
    frame = texture(256, 256, 0)
    render = np.clip(texture(256, 256, 1).astype(int) + (70, -40, 10), 0, 255).astype(np.uint8)
    alpha = cv2.GaussianBlur(disc(256, 256, 100), (0, 0), 2)
    inner = disc(256, 256, 60).astype(bool)
    plain = Compositor(colour_match=False).apply(frame.copy(), RenderedFace(render, alpha, 0, 0))
    matched = Compositor().apply(frame.copy(), RenderedFace(render, alpha, 0, 0))
    target = frame[inner].mean(axis=0)
    assert np.abs(matched[inner].mean(axis=0) - target).max() < 6
    assert np.abs(plain[inner].mean(axis=0) - target).max() > 30


def test_colour_matching_leaves_a_matching_render_alone():
    frame = texture(256, 256, 0)
    alpha = cv2.GaussianBlur(disc(256, 256, 100), (0, 0), 2)
    out = Compositor().apply(frame.copy(), RenderedFace(frame.copy(), alpha, 0, 0))
    assert np.abs(out.astype(int) - frame).max() <= 2


@pytest.mark.parametrize(
    "kwargs,error",
    [
        ({"levels": 0}, ConfigError),
        ({"levels": 9}, ConfigError),
        ({"feather_px": -1.0}, ConfigError),
        ({"levels": 3, "feather_px": 0.0}, None),
    ],
)
def test_compositor_configuration_is_checked(kwargs, error):
    if error is None:
        Compositor(**kwargs)
    else:
        with pytest.raises(error, match="expected"):
            Compositor(**kwargs)


@pytest.mark.parametrize(
    "rgb,alpha",
    [
        (np.zeros((10, 10), np.uint8), np.zeros((10, 10), np.float32)),
        (np.zeros((10, 10, 3), np.int32), np.zeros((10, 10), np.float32)),
        (np.zeros((10, 10, 3), np.uint8), np.zeros((10, 11), np.float32)),
    ],
)
def test_rendered_face_is_validated(rgb, alpha):
    with pytest.raises(ValueError, match="expected"):
        RenderedFace(rgb, alpha, 0, 0)


def test_frame_must_be_uint8_rgb():
    face = RenderedFace(np.zeros((8, 8, 3), np.uint8), np.ones((8, 8), np.float32), 0, 0)
    with pytest.raises(ValueError, match="expected"):
        Compositor().apply(np.zeros((20, 20, 3), np.float32), face)


def test_scratch_arrays_are_reused_across_crop_sizes():
    comp = Compositor(colour_match=False)
    results = []
    for size in (200, 64, 131, 200):
        frame = texture(300, 300, 0)
        render = texture(size, size, 1)
        comp.apply(frame, RenderedFace(render, disc(size, size, 0.4 * size), 10, 10))
        fresh = texture(300, 300, 0)
        Compositor(colour_match=False).apply(fresh, RenderedFace(render, disc(size, size, 0.4 * size), 10, 10))
        results.append(np.array_equal(frame, fresh))
    assert all(results)
