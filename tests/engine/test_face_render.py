"""One face in one frame: the surrogate takes the subject's skin tone in this frame's light."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import SAMPLE
from media import read_rgb

from deidstream.config import GeneratorConfig
from deidstream.engine.generator.aux import canonical_shape
from deidstream.engine.generator.compose import CHEEKS, EYES_AND_BROWS, SKIN, TONE_ANCHORS, Recipe, default_composer
from deidstream.engine.generator.face_render import FaceRenderer, Surrogate
from deidstream.engine.generator.facemodel import default_model
from deidstream.engine.generator.masks import interior_mask, polygons_mask
from deidstream.geometry.mesh import default_mesh

MESH = default_mesh()


@pytest.fixture(scope="module")
def faces(detector):
    from deidstream.tracking.landmarks import FaceLandmarker

    out = []
    with FaceLandmarker() as landmarker:
        for image in read_rgb(SAMPLE, limit=300)[::100]:
            found = detector.detect(image)
            points = landmarker.landmarks(image, found[:1])[0] if len(found) else None
            if points is not None:
                out.append((image, points))
    return out


def skin_colours(image: np.ndarray, points: np.ndarray, anchors=SKIN) -> np.ndarray:
    """(anchors, 3) median RGB of each patch of skin (by default the cheeks and the forehead)."""
    return np.array([np.median(image[polygons_mask([points[list(loop), :2]], image.shape[:2]) > 0], axis=0)
                     for loop in anchors], np.float32)


def renderer(match_tone: bool = True) -> FaceRenderer:
    config = GeneratorConfig()
    return FaceRenderer(default_model(), shading_sigma=config.shading_sigma, raster_px=config.raster_px,
                        match_tone=match_tone)


def surrogate_of(donor: int) -> Surrogate:
    composer = default_composer()
    return Surrogate(Recipe(donor), MESH.vertices.astype(np.float32), composer.texture(Recipe(donor)))


def worst_skin_error(faces, match_tone: bool) -> float:
    darkest = int(np.argmin(default_composer().bank.ita))  # the darkest donor, untoned, on a light-skinned woman
    surrogate, paint = surrogate_of(darkest), renderer(match_tone)
    errors = []
    for image, points in faces:
        out = image.copy()
        paint.paint(out, points, canonical_shape(points, MESH.vertices, MESH.weights), surrogate)
        errors.append(np.abs(skin_colours(out, points) - skin_colours(image, points)).max())
    return float(max(errors))


def test_the_surrogates_skin_takes_the_subjects_tone_in_this_frame(faces):
    assert len(faces) >= 2
    error = worst_skin_error(faces, match_tone=True)
    # measured 8 where a hand lies on a cheek (not passed in front here: the hand is taken for skin), 16 untoned
    assert error <= 8, f"a cheek or the forehead {error:.0f} grey levels off the subject's own"
    assert error <= 0.5 * worst_skin_error(faces, match_tone=False)


def test_the_surrogates_chin_follows_the_subjects_own(faces):
    """A shadow on the subject's chin (darker than her cheeks) darkens the surrogate's chin with it; a donor's
    chin does not keep its own shade (it read as another complexion below the lip)."""
    bank = default_composer().bank
    # a pale woman whose chin lies within ``agree`` of her cheeks' gain on this subject, shaded or not (with
    # a donor whose chin is lit quite unlike her cheeks, the shaded chin falls outside it and is taken for a
    # beard or a hand: the cheeks' gain holds there instead, by design)
    pale = int(np.flatnonzero([str(n).endswith("ethnicity_r1663_c1979.jpg") for n in bank.names])[0])
    surrogate, paint = surrogate_of(pale), renderer()
    chin = TONE_ANCHORS.index(next(a for a in TONE_ANCHORS if 18 in a))
    image, points = faces[0]
    shaded = image.copy()
    region = polygons_mask([points[list(TONE_ANCHORS[chin]), :2]], image.shape[:2]) > 0
    shaded[region] = (shaded[region] * 0.85).astype(np.uint8)
    outputs = []
    for frame in (image, shaded):
        out = frame.copy()
        paint.paint(out, points, canonical_shape(points, MESH.vertices, MESH.weights), surrogate)
        outputs.append(skin_colours(out, points, TONE_ANCHORS)[chin])
    darker_in = skin_colours(image, points, TONE_ANCHORS)[chin] - skin_colours(shaded, points, TONE_ANCHORS)[chin]
    darker_out = outputs[0] - outputs[1]
    assert np.all(np.abs(darker_out - darker_in) <= 0.35 * darker_in + 1), (darker_in, darker_out)


def _paint(image: np.ndarray, points: np.ndarray, surrogate: Surrogate, paint: FaceRenderer) -> np.ndarray:
    out = image.copy()
    paint.paint(out, points, canonical_shape(points, MESH.vertices, MESH.weights), surrogate)
    return out


def test_a_fold_on_the_subjects_cheek_shows_on_the_surrogates(faces):
    """The subject's own relief on the skin (a fold, the light on a cheekbone) is half this frame's, not only
    the donor's: a dark band across her cheek darkens the surrogate's cheek there, by more the more of her relief
    is taken (the donor's photo-lit relief alone read as smudges; all of hers kept her identity)."""
    image, points = faces[0]
    width = float(np.ptp(points[:, 0]))
    centre = points[list(CHEEKS[0]), :2].mean(0)
    band = np.zeros(image.shape[:2], np.uint8)
    half = np.array([0.1 * width, 0.0])
    cv2.line(band, tuple(np.round(centre - half).astype(int)), tuple(np.round(centre + half).astype(int)), 1,
             max(int(0.06 * width), 3))
    folded = image.copy()
    folded[band > 0] = (folded[band > 0] * 0.7).astype(np.uint8)
    surrogate = surrogate_of(3)

    def darkening(paint: FaceRenderer) -> float:
        plain, fold = (_paint(im, points, surrogate, paint) for im in (image, folded))
        return 1.0 - float(fold[band > 0].mean() / plain[band > 0].mean())

    # a band 6% of the face wide, 30% darker: measured 6% darker on the surrogate with none of her relief (the
    # tone anchors follow only what is wide), 8.5% with the default half, 11% with all of it
    none, default, full = darkening(FaceRenderer(default_model(), own_relief=0.0)), darkening(renderer()), \
        darkening(FaceRenderer(default_model(), own_relief=1.0))
    assert full >= 1.5 * none, (none, full)
    assert none + 0.3 * (full - none) <= default <= none + 0.7 * (full - none), (none, default, full)


def test_the_features_stay_the_donors(faces):
    """Eyes and brows, nose and mouth keep the donor's lines: the subject's relief there is taken only at a
    coarse scale and bounded, so the surrogate's eye region stays far from the subject's."""
    image, points = faces[0]
    surrogate = surrogate_of(3)
    region = polygons_mask([points[list(loop), :2] for loop in EYES_AND_BROWS], image.shape[:2]) > 0
    region &= interior_mask(points[:, :2], image.shape[:2]) == 0
    own = _paint(image, points, surrogate, renderer())[region].astype(np.float32)
    donor = _paint(image, points, surrogate, FaceRenderer(default_model(), own_relief=0.0))[region]
    from_subject = np.abs(own - image[region]).mean()
    from_donor = np.abs(own - donor).mean()
    assert from_donor < 0.5 * from_subject, (from_donor, from_subject)


def test_a_small_face_keeps_the_donors_relief(faces):
    """On a face under 100 px across the subject's own relief would be most of what a recogniser sees of
    them (crowd_1080p): it is not taken there."""
    image, points = faces[0]
    small = cv2.resize(image, None, fx=0.4, fy=0.4, interpolation=cv2.INTER_AREA)
    scaled = points * np.array([0.4, 0.4, 0.4], np.float32)
    assert np.ptp(scaled[:, 0]) < 100
    surrogate = surrogate_of(3)
    with_relief = _paint(small, scaled, surrogate, renderer())
    assert np.array_equal(with_relief, _paint(small, scaled, surrogate, FaceRenderer(default_model(), own_relief=0.0)))
    assert not np.array_equal(with_relief, small)


def test_the_subjects_lip_colour_is_read_from_their_views(faces):
    """The lips the composer colours the surrogate's with are the subject's own, read where the views show them."""
    from deidstream.engine.generator.masks import InteriorContours
    from deidstream.types import FaceView

    image, points = faces[0]
    contours = InteriorContours.from_mediapipe()
    lips = (polygons_mask([points[contours.outer_lips, :2]], image.shape[:2]) > 0) & \
        (polygons_mask([points[contours.inner_lips, :2]], image.shape[:2]) == 0)
    painted = image.copy()
    painted[lips] = (170, 40, 60)  # a deep red lipstick
    tone = default_composer().tone_of([FaceView(painted, points)])
    assert tone is not None and tone.lips is not None
    red = cv2.cvtColor(np.float32([[[170, 40, 60]]]) / 255.0, cv2.COLOR_RGB2LAB)[0, 0]
    assert np.allclose(tone.lips, red, atol=3.0), (tone.lips, red)
    skin = default_composer().tone_of([FaceView(image, points)]).mean
    hand = np.clip(cv2.cvtColor(skin.reshape(1, 1, 3).astype(np.float32), cv2.COLOR_LAB2RGB)[0, 0] * 255, 0, 255)
    for cover in ((40, 40, 44), hand):  # a microphone, a hand of her skin's colour: no lip colour
        covered = painted.copy()
        covered[lips] = cover
        assert default_composer().tone_of([FaceView(covered, points)]).lips is None


def test_a_subjects_moustache_is_read_from_their_views(faces):
    from deidstream.engine.generator.compose import MOUSTACHE
    from deidstream.types import FaceView

    image, points = faces[0]
    shaved = default_composer().tone_of([FaceView(image, points)]).hair
    assert shaved is not None and shaved[0] > -15  # the woman of the sample
    painted = image.copy()
    region = polygons_mask([points[list(MOUSTACHE), :2]], image.shape[:2]) > 0
    painted[region] = (painted[region] * 0.4).astype(np.uint8)
    assert default_composer().tone_of([FaceView(painted, points)]).hair[0] < shaved[0] - 15


def test_the_lips_of_a_large_face_are_drawn_as_a_full_size_raster_draws_them(faces):
    """Where shut lips meet, the texture jumps from one lip to the other; a UV map rasterised coarse and
    upsampled put that jump on its grid, a staircase along the line between the lips of a large face. Around the
    lips the render is the one a full-size raster gives."""
    from deidstream.engine.generator.aux import encode_aux
    from deidstream.engine.generator.fast import OUTER_LIPS, FastPath

    image, points = faces[0]
    pts = points.astype(np.float32) * np.float32(3.0)  # a face about 450 px wide
    upper, lower = [80, 81, 82, 13, 312, 311, 310], [88, 178, 87, 14, 317, 402, 318]
    pts[upper] = pts[lower] = (pts[upper] + pts[lower]) / 2  # lips pressed together
    shape = canonical_shape(pts, MESH.vertices, MESH.weights)
    aux = encode_aux(pts, shape, MESH.weights)
    texture = surrogate_of(0).texture
    coarse = FastPath(default_model(), raster_px=112).render(MESH.vertices.astype(np.float32), texture, aux)
    full = FastPath(default_model(), raster_px=2000).render(MESH.vertices.astype(np.float32), texture, aux)
    lips = polygons_mask([coarse.points[list(OUTER_LIPS), :2]], coarse.rgb.shape[:2],
                         offset=(coarse.crop.x0, coarse.crop.y0)) > 0
    assert lips.sum() > 2000
    assert np.abs(coarse.rgb - full.rgb)[lips].max(-1).mean() < 0.01
