"""The natural identity space: donor textures, recipes, skin tone and the texture's own alpha."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from deidstream.engine.generator.compose import Recipe, SkinTone, default_composer, toned
from deidstream.engine.generator.donors import AGE_BANDS, default_donors


@pytest.fixture(scope="module")
def composer():
    return default_composer()


def test_the_shipped_donors_are_labelled_adults_of_both_sexes():
    bank = default_donors()
    assert len(bank) >= 150
    assert set(bank.sex) == {"f", "m"} and min((bank.sex == "f").sum(), (bank.sex == "m").sum()) >= 50
    assert set(AGE_BANDS[a] for a in bank.age) <= set("tymo"), "no children among the donors"
    assert bank.albedo.shape[1:] == (256, 256, 3) and bank.shapes.shape[1:] == (468, 3)
    young_women = bank.matching(True, AGE_BANDS.index("y"), age_tolerance=1)
    assert len(young_women) >= 24 and set(bank.sex[young_women]) == {"f"}


def test_a_texture_is_a_donors_face_with_an_alpha_that_leaves_the_border_to_the_subject(composer):
    texture = composer.texture(Recipe(0))
    assert texture.shape == (256, 256, 4) and texture.dtype == np.float32
    rgb, alpha = texture[..., :3], texture[..., 3]
    mask = composer.atlas.mask
    inside = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    assert alpha[~mask].max() == 0.0, "nothing is drawn outside the mesh"
    assert alpha[(inside > 0) & (inside < 3)].max() < 0.2, "the border is the subject's own"
    assert np.median(alpha[composer.skin]) > 0.95, "the cheeks and mid-forehead are the surrogate's"
    assert np.abs(rgb[mask] - composer.bank.texture(0)[mask]).max() < 1e-6, "untoned: the donor's own texels"


def test_toning_moves_the_skin_to_the_subjects_complexion_and_keeps_the_features(composer):
    bank = composer.bank
    dark = int(np.argmin(bank.ita))
    texture = bank.texture(dark)
    light = SkinTone(np.array([75.0, 10.0, 14.0], np.float32), np.array([5.0, 2.0, 3.0], np.float32))
    out = toned(texture, composer.skin, light)
    lab = cv2.cvtColor(out, cv2.COLOR_RGB2LAB)[composer.skin]
    assert np.allclose(lab.mean(0), light.mean, atol=2.5)
    # the features stay: the texture's detail (its grey levels' local structure) correlates with the donor's
    grey_in = cv2.Laplacian(cv2.cvtColor(texture, cv2.COLOR_RGB2GRAY), cv2.CV_32F)[composer.skin]
    grey_out = cv2.Laplacian(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY), cv2.CV_32F)[composer.skin]
    assert np.corrcoef(grey_in, grey_out)[0, 1] > 0.8


def test_a_part_from_another_donor_changes_that_region_only(composer):
    base, other = 0, 1
    mixed = composer.texture(Recipe(base, (("nose", other),)))[..., :3]
    plain = composer.texture(Recipe(base))[..., :3]
    region = composer.regions["nose"]
    changed = np.abs(mixed - plain).mean(-1)
    assert changed[region > 0.9].mean() > 3 * changed[(region < 0.01) & composer.atlas.mask].mean()
