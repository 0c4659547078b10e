"""The viewer measures and the rank-1 attack on known inputs: numbers a wrong formula would miss."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from deidstream.evaluation import viewer
from deidstream.evaluation.attack import gallery_images, load_gallery, rank1_hits
from deidstream.geometry.mesh import default_mesh


def patch(rgb, size=16):
    return np.full((size, size, 3), rgb, np.uint8)


def test_ita_orders_skin_tones_and_flags_blue():
    grey = viewer.ita(patch((200, 200, 200)))
    assert grey == pytest.approx(90.0, abs=1.0)  # b* = 0, L* > 50
    light, tan, brown, dark = (viewer.ita(patch(c)) for c in ((236, 200, 180), (198, 134, 66), (141, 85, 36),
                                                               (90, 56, 38)))
    # Chardon's bands: very light > 55, tan 10-28, brown -30-10, dark < -30
    assert light > 55 and 10 < tan < 28 and -30 < brown < 10 and dark < -30
    assert abs(viewer.ita(patch((60, 90, 220)))) > 90  # b* < 0: not a skin tone at all
    lab = cv2.cvtColor(np.float32([[[198 / 255, 134 / 255, 66 / 255]]]), cv2.COLOR_RGB2LAB)[0, 0]
    assert tan == pytest.approx(np.degrees(np.arctan((lab[0] - 50) / lab[2])), abs=1e-3)


def test_ita_difference_goes_the_short_way_round():
    assert viewer.ita_difference(30.0, 12.0) == pytest.approx(18.0)
    assert viewer.ita_difference(12.0, 30.0) == pytest.approx(18.0)
    # two blue-lit faces either side of 180 degrees are close, not 340 apart (crowd_1080p's scene)
    assert viewer.ita_difference(-171.0, 170.0) == pytest.approx(19.0)
    assert viewer.ita_difference(100.0, -100.0) == pytest.approx(160.0)
    assert viewer.ita_difference(45.0, 45.0) == 0.0


def test_skin_share_counts_pixels_in_the_gamut():
    assert viewer.skin_share(patch((224, 172, 150))) == 1.0
    assert viewer.skin_share(patch((120, 80, 60))) == 1.0
    assert viewer.skin_share(patch((60, 90, 220))) == 0.0
    half = np.concatenate([patch((224, 172, 150)), patch((60, 200, 60))], axis=1)
    assert viewer.skin_share(half) == 0.5


def test_sharpness_falls_with_blur():
    rng = np.random.default_rng(0)
    texture = cv2.resize(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), (64, 64), interpolation=cv2.INTER_NEAREST)
    blurred = cv2.GaussianBlur(texture, (0, 0), 3)
    assert viewer.sharpness(blurred) < 0.2 * viewer.sharpness(texture)
    assert viewer.sharpness(patch((128, 128, 128))) == 0.0


def test_openness_ratios_on_the_canonical_face():
    points = default_mesh().vertices.copy()
    ear, mouth = viewer.eye_aspect_ratio(points), viewer.mouth_opening(points)
    assert 0.15 < ear < 0.4 and 0.05 < mouth < 0.4
    shut = points.copy()
    for _, _, (a, b), (c, d) in viewer.EYES:
        shut[[a, c], 1] = shut[[b, d], 1]  # upper lids onto the lower ones
    assert viewer.eye_aspect_ratio(shut) == pytest.approx(0.0, abs=1e-6)
    wide = points.copy()
    wide[viewer.MOUTH[1], 1] += 3 * abs(points[viewer.MOUTH[1], 1] - points[viewer.MOUTH[0], 1])
    assert viewer.mouth_opening(wide) > 3 * mouth


def test_pearson_is_nan_safe():
    assert viewer.pearson([0.1, 0.2], [0.1, 0.2]) is None  # too few
    assert viewer.pearson([0.1, None, 0.3, 0.2, float("nan")], [0.2, 0.5, 0.6, 0.4, 0.1]) == pytest.approx(1.0)
    assert viewer.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert viewer.pearson([1, 2, 3], [5, 5, 5]) is None  # no variation


def test_openness_is_followed_within_each_person_and_not_judged_where_the_input_stays_still():
    rng = np.random.default_rng(0)
    blinks = list(rng.choice([0.08, 0.3], 12) + rng.normal(0, 0.005, 12))
    # two people; each surrogate's eyes are narrower than its subject's for good, and blink with them
    original = blinks + [b + 0.25 for b in blinks]
    output = [b + 0.05 for b in blinks] + [b - 0.1 for b in blinks]
    people = [0] * 12 + [1] * 12
    r, spread, error = viewer.following(original, output, people)
    assert r == pytest.approx(1.0) and spread > 0.05 and error == pytest.approx(0.0, abs=1e-9)
    assert viewer.pearson(original, output) < 0.5  # pooled, the offsets between people pull it down
    # a mouth shut throughout: no correlation to read, and an output that stays shut too differs by nothing
    shut = list(rng.normal(0.005, 0.001, 12))
    r, spread, error = viewer.following(shut, [v + 0.002 for v in shut], [0] * 12)
    assert r is None and spread < viewer.MIN_OPENNESS_SPREAD and error < 0.001
    # ...while one that opens and shuts on its own shows in the difference
    r, _, error = viewer.following(shut, list(rng.choice([0.0, 0.3], 12)), [0] * 12)
    assert r is None and error > 0.05
    assert viewer.following([0.1, None], [0.1, 0.2], [0, 0]) == (None, None, None)


def test_skin_patch_is_the_band_below_the_eyes():
    image = np.zeros((100, 100, 3), np.uint8)
    image[42:62, 22:78] = 255  # x 15-85 %, y 42-62 % of the box below
    box = np.array([10, 0, 90, 100], np.float32)
    p = viewer.skin_patch(image, box)
    assert p.shape[:2] == (20, 56) and p.min() == 255
    assert viewer.skin_patch(image, np.array([0, 0, 6, 6], np.float32)) is None


def test_rank1_hits_need_the_own_template_nearest():
    rng = np.random.default_rng(1)
    people = rng.normal(size=(2, 128)).astype(np.float32)
    labels = np.array([0, 0, 1, 1])
    originals = people[labels] + 0.01 * rng.normal(size=(4, 128)).astype(np.float32)
    distractors = rng.normal(size=(50, 128)).astype(np.float32)
    assert rank1_hits(originals, labels, originals, distractors).all()
    swapped = originals[[2, 3, 0, 1]]  # each face now looks like the other person
    assert not rank1_hits(swapped, labels, originals, distractors).any()
    near_distractor = distractors[[0, 1, 2, 3]] + 0.01
    assert not rank1_hits(near_distractor, labels, originals, distractors).any()
    assert rank1_hits(originals[:0], labels[:0], originals[:0], distractors).shape == (0,)


def test_gallery_is_described_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("DEIDSTREAM_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "faces"
    folder.mkdir()
    cv2.imwrite(str(folder / "blank.png"), np.full((120, 120, 3), 128, np.uint8))
    shared = tmp_path / "shared"
    (shared / "donors/lfw_2000/a").mkdir(parents=True)
    (shared / "identities/x").mkdir(parents=True)
    assert list(gallery_images(shared)) == ["donors/lfw_2000", "identities"]
    gallery = load_gallery(folder)
    assert gallery.images == 1 and len(gallery.descriptors) == 0  # no face in a blank image
    cached = list((tmp_path / "cache").glob("gallery-*.npz"))
    assert len(cached) == 1
    assert load_gallery(folder).facts() == gallery.facts()
