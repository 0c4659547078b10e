"""What a viewer sees of a face, measured the same way on the original and on the output.

A surrogate should stay the same kind of person (apparent sex, skin tone), look like skin, be as
sharp as the footage around it, and blink and speak when the subject does. Each measure is taken on
the face dlib found in the original, at the same place in both frames:

- apparent sex: P(female) of the shipped attribute model on each side's descriptor;
- skin tone: ITA° (individual typology angle, Chardon et al. 1991), ``atan2(L* - 50, b*)`` in degrees
  from OpenCV's CIELab of float RGB in [0, 1], medians over the skin a viewer judges tone by: both cheeks
  below the eyes and the middle of the forehead, outlined by the original's face mesh and read at the same
  pixels of both frames (the surrogate is drawn in the subject's pose). Higher is lighter; a face that is
  not skin-coloured (b* < 0, blue) lands outside ±90° (atan2 keeps the quadrant). Where the mesh finds no
  face in the original, the band of the face box below the eyes stands in (``ita_band_faces`` counts
  them): it also holds the nose's shading and the top of a moustache, which are not skin tone;
- skin colour difference: CIE76 ΔE*ab between the same two median CIELab colours: unlike ITA, which swings
  by tens of degrees for a small change of a dim face (L* near 50), it is the colour difference a viewer sees;
- skin-coloured share: the fraction of the skin patch inside a skin gamut in YCrCb (Chai & Ngan 1999,
  widened for dark and warm-lit skin);
- off-colour share: the fraction of the face's lit skin (cheeks, forehead, nose, upper lip, chin and jaw, from the
  original's mesh; pixels at least ``LIT_SHARE`` of the side's median L*) whose colour (a*, b*) lies farther
  from that side's median than all but ``OFF_COLOUR_PERCENTILE``% of the original's do (at least
  ``OFF_COLOUR_FLOOR``): patches no part of the subject's face has, such as a red streak down a nose, grey
  bands or blue lips spread onto the skin. A face is *patchy* when the output's share is at least twice the
  original's plus ``PATCHY_EXCESS``;
- sharpness: variance of the Laplacian of the grey face box;
- openness: eye aspect ratio and mouth opening ratio from MediaPipe's face mesh on each side; whether the
  output follows the input is judged within each person (their own mean taken off both sides: a surrogate's
  eyes may be narrower than the subject's for good), as a correlation where the person blinks or speaks
  (their openness spreads at least ``MIN_OPENNESS_SPREAD``: pooled over people, or over a mouth that stays
  shut, a correlation measures the measurement's noise) and as the mean difference left.

The skin-coloured share is taken on the band of the dlib box below the eyes and above the mouth (cheeks and
nose), where paint would show: dlib's HOG box runs from the forehead to the chin, with the eyes above 40 % of its
height and the mouth below 62 %.
"""

from __future__ import annotations

import cv2
import numpy as np

from deidstream.engine.generator.compose import (
    CHEEKS,
    CHIN,
    FOREHEAD,
    JAWS,
    MOUSTACHE,
    NOSE,
    SKIN,
)
from deidstream.engine.generator.tone import ita_difference, ita_of, median_lab
from deidstream.geometry.boxes import pixel_bounds
from deidstream.tracking.attributes import AttributeModel
from deidstream.tracking.landmarks import FaceLandmarker
from deidstream.types import FaceDetections

SKIN_PATCH = (0.15, 0.42, 0.85, 0.62)  # x0, y0, x1, y1 as fractions of the face box: cheeks and nose
CR_RANGE = (133, 180)  # skin gamut in 8-bit YCrCb; Chai & Ngan's 133-173 / 77-127, widened as in the brief
CB_RANGE = (77, 135)
ITA_CLOSE = 10.0  # degrees: a skin tone this close reads as the same tone
MIN_PATCH = 4  # pixels on a side; smaller patches give no skin numbers
MIN_SERIES = 3  # faces needed for an openness correlation
# the spread (std about each person's own mean) of an input's eye aspect ratio or mouth opening below which the
# face did not blink or speak enough to tell whether the output follows it: a mouth shut throughout reads 0.001
# (portrait_s18), eyes that never close 0.009 (talking_head_2), blinks 0.05-0.06 and speech 0.07
MIN_OPENNESS_SPREAD = 0.02
# MediaPipe face-mesh indices: eye corners and two vertical pairs per eye; inner lip mid-points and corners
EYES = ((33, 133, (160, 144), (158, 153)), (362, 263, (385, 380), (387, 373)))
MOUTH = (13, 14, 78, 308)
MIN_SKIN_PIXELS = 24
FACE_SKIN = (*CHEEKS, FOREHEAD, *NOSE, MOUSTACHE, CHIN, *JAWS)  # where the off-colour share is read
LIT_SHARE = 0.6  # darker pixels (brows, nostrils, a beard, deep shadow) carry no skin colour to judge
OFF_COLOUR_PERCENTILE = 95.0
OFF_COLOUR_FLOOR = 4.0  # a*, b* units: below this, colour differences are compression noise on a graded face
PATCHY_EXCESS = 0.05
MIN_FACE_SKIN_PIXELS = 100


def skin_patch(image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """(h, w, 3) uint8 pixels of ``SKIN_PATCH`` of the face box, or None when it is too small."""
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = x1 - x0, y1 - y0
    fx0, fy0, fx1, fy1 = SKIN_PATCH
    sub = np.array([x0 + fx0 * w, y0 + fy0 * h, x0 + fx1 * w, y0 + fy1 * h], np.float32)
    bounds = pixel_bounds(sub, image.shape[1], image.shape[0])
    if bounds is None or min(bounds[2] - bounds[0], bounds[3] - bounds[1]) < MIN_PATCH:
        return None
    return image[bounds[1]:bounds[3], bounds[0]:bounds[2]]


def ita(patch: np.ndarray) -> float:
    """ITA° of an RGB uint8 patch: medians of L* and b* (robust to a stray highlight or shadow)."""
    return ita_of(median_lab(patch))


def skin_lab(image: np.ndarray, points: np.ndarray) -> np.ndarray | None:
    """Median CIELab (L* 0-100) of the skin a viewer judges tone by (compose's ``SKIN``: both cheeks below the
    eyes and the middle of the forehead) inside a face's mesh ``points``, None when too few pixels."""
    mask = _mesh_mask(image.shape, points, SKIN)
    if int(mask.sum()) < MIN_SKIN_PIXELS:
        return None
    return median_lab(image[mask > 0])


def off_colour(original: np.ndarray, output: np.ndarray, points: np.ndarray) -> tuple[float, float] | None:
    """(original's, output's) off-colour share of the face with the original's mesh ``points`` (see the module's
    docstring), None when too little skin shows."""
    mask = _mesh_mask(original.shape, points, FACE_SKIN)
    if int(mask.sum()) < MIN_FACE_SKIN_PIXELS:
        return None
    spread_o, spread_a = (_colour_spread(side[mask > 0]) for side in (original, output))
    if len(spread_o) < MIN_SKIN_PIXELS or len(spread_a) < MIN_SKIN_PIXELS:
        return None
    limit = max(float(np.percentile(spread_o, OFF_COLOUR_PERCENTILE)), OFF_COLOUR_FLOOR)
    return float((spread_o > limit).mean()), float((spread_a > limit).mean())


def _mesh_mask(shape: tuple[int, ...], points: np.ndarray, loops: tuple[tuple[int, ...], ...]) -> np.ndarray:
    """(h, w) uint8, 1 inside the face-mesh ``loops`` of ``points``, each corner rounded to a whole pixel."""
    mask = np.zeros(shape[:2], np.uint8)
    for loop in loops:
        cv2.fillPoly(mask, [np.round(points[list(loop), :2]).astype(np.int32)], 1)
    return mask


def _colour_spread(pixels: np.ndarray) -> np.ndarray:
    """Each lit pixel's (a*, b*) distance from the lit pixels' median, of (n, 3) uint8 RGB ``pixels``."""
    lab = cv2.cvtColor(pixels.reshape(1, -1, 3).astype(np.float32) * np.float32(1 / 255), cv2.COLOR_RGB2LAB)[0]
    lit = lab[lab[:, 0] >= LIT_SHARE * np.median(lab[:, 0])][:, 1:]
    return np.linalg.norm(lit - np.median(lit, axis=0), axis=1) if len(lit) else lit[:, 0]


def patchy(off_original: float, off_output: float) -> bool:
    """Whether the output shows colour patches the original's face does not."""
    return off_output >= 2.0 * off_original + PATCHY_EXCESS


def skin_share(patch: np.ndarray) -> float:
    """Fraction of the patch's pixels inside the YCrCb skin gamut."""
    ycc = cv2.cvtColor(np.ascontiguousarray(patch), cv2.COLOR_RGB2YCrCb).reshape(-1, 3)
    cr, cb = ycc[:, 1], ycc[:, 2]
    inside = (cr >= CR_RANGE[0]) & (cr <= CR_RANGE[1]) & (cb >= CB_RANGE[0]) & (cb <= CB_RANGE[1])
    return float(inside.mean())


def sharpness(box_pixels: np.ndarray) -> float:
    """Variance of the Laplacian of the grey box (blur lowers it, noise and detail raise it)."""
    grey = cv2.cvtColor(np.ascontiguousarray(box_pixels), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def eye_aspect_ratio(points: np.ndarray) -> float:
    """Mean over both eyes of (two lid-to-lid heights) / (2 x corner-to-corner width) (Soukupová & Čech 2016)."""
    p = points[:, :2]
    ratios = [(np.linalg.norm(p[a] - p[b]) + np.linalg.norm(p[c] - p[d])) / (2 * np.linalg.norm(p[o] - p[i]) + 1e-6)
              for o, i, (a, b), (c, d) in EYES]
    return float(np.mean(ratios))


def mouth_opening(points: np.ndarray) -> float:
    """Inner-lip gap over the inner mouth width."""
    p = points[:, :2]
    top, bottom, left, right = MOUTH
    return float(np.linalg.norm(p[top] - p[bottom]) / (np.linalg.norm(p[left] - p[right]) + 1e-6))


def following(original: list[float | None], output: list[float | None],
              people: list[int]) -> tuple[float | None, float | None, float | None]:
    """How an output's openness follows the input's, each person's own mean taken off both sides: the
    correlation (None where the input's spread is under ``MIN_OPENNESS_SPREAD`` or the series is short), the
    input's spread, and the mean absolute difference left (0: it moves exactly as the input). Faces without
    a reading on both sides are left out."""
    rows = np.array([(p, x, y) for x, y, p in zip(original, output, people) if x is not None and y is not None],
                    np.float64).reshape(-1, 3)
    rows = rows[np.isfinite(rows).all(axis=1)]
    if len(rows) < MIN_SERIES:
        return None, None, None
    centred = rows[:, 1:].copy()
    for person in np.unique(rows[:, 0]):
        mine = rows[:, 0] == person
        centred[mine] -= centred[mine].mean(axis=0)
    spread = float(centred[:, 0].std())
    error = float(np.abs(centred[:, 1] - centred[:, 0]).mean())
    r = pearson(list(centred[:, 0]), list(centred[:, 1])) if spread >= MIN_OPENNESS_SPREAD else None
    return r, spread, error


def pearson(a: list[float | None], b: list[float | None]) -> float | None:
    """Correlation of the pairs where both are finite; None with fewer than ``MIN_SERIES`` or no variation."""
    pairs = np.array([(x, y) for x, y in zip(a, b) if x is not None and y is not None], np.float64).reshape(-1, 2)
    pairs = pairs[np.isfinite(pairs).all(axis=1)]
    if len(pairs) < MIN_SERIES or pairs[:, 0].std() < 1e-9 or pairs[:, 1].std() < 1e-9:
        return None
    return float(np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1])


class Openness:
    """Eye and mouth openness of faces at known boxes, from MediaPipe's face mesh (searched afresh in every
    crop: sampled frames are far apart). dlib's boxes are tighter than MediaPipe's, hence the wider crop."""

    def __init__(self, crop_scale: float = 2.0) -> None:
        self._marker = FaceLandmarker(crop_scale=crop_scale, max_tracked=0)

    def close(self) -> None:
        self._marker.close()

    def measure(self, image: np.ndarray, boxes: np.ndarray) -> list[tuple[float, float, np.ndarray] | None]:
        """(eye aspect ratio, mouth opening, mesh points) per box, None where the mesh finds no face."""
        if not len(boxes):
            return []
        found = self._marker.landmarks(image, FaceDetections(np.asarray(boxes, np.float32), np.ones(len(boxes))))
        return [None if pts is None else (eye_aspect_ratio(pts), mouth_opening(pts), pts) for pts in found]


def face_measures(original: np.ndarray, output: np.ndarray, box: np.ndarray, mesh: np.ndarray | None) -> dict:
    """Skin tone and colour, skin share and sharpness of one face on both sides (None where unmeasurable).
    ``mesh``: the original's face-mesh points, which place the skin both sides are read at."""
    out: dict = dict.fromkeys(("ita_original", "ita_output", "ita_band", "skin_delta_e", "skin_share_original",
                               "skin_share_output", "sharpness_original", "sharpness_output", "off_colour_original",
                               "off_colour_output"))
    pa, pb = skin_patch(original, box), skin_patch(output, box)
    if pa is not None and pb is not None:
        out |= {"skin_share_original": skin_share(pa), "skin_share_output": skin_share(pb)}
    la, lb = (None, None) if mesh is None else (skin_lab(original, mesh), skin_lab(output, mesh))
    if mesh is not None and (off := off_colour(original, output, mesh)) is not None:
        out |= {"off_colour_original": off[0], "off_colour_output": off[1]}
    if la is not None and lb is not None:
        out |= {"ita_original": ita_of(la), "ita_output": ita_of(lb), "ita_band": False,
                "skin_delta_e": float(np.linalg.norm(la - lb))}
    elif pa is not None and pb is not None:
        out |= {"ita_original": ita(pa), "ita_output": ita(pb), "ita_band": True}
    bounds = pixel_bounds(np.asarray(box, np.float32), original.shape[1], original.shape[0])
    if bounds is not None and min(bounds[2] - bounds[0], bounds[3] - bounds[1]) >= MIN_PATCH:
        x0, y0, x1, y1 = bounds
        out |= {"sharpness_original": sharpness(original[y0:y1, x0:x1]),
                "sharpness_output": sharpness(output[y0:y1, x0:x1])}
    return out


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


class ViewerMeasures:
    """All of the above for the faces of one frame pair: ``FaceRecord`` fields per face."""

    def __init__(self, attributes: AttributeModel | None = None) -> None:
        self.attributes = attributes or AttributeModel.load()
        self.openness = Openness()

    def close(self) -> None:
        self.openness.close()

    def faces(self, original: np.ndarray, output: np.ndarray, boxes: np.ndarray, d_original: np.ndarray,
              d_output: np.ndarray) -> list[dict]:
        fem_o, fem_a = self.attributes.female(d_original), self.attributes.female(d_output)
        age_o, age_a = self.attributes.age(d_original), self.attributes.age(d_output)
        open_o, open_a = self.openness.measure(original, boxes), self.openness.measure(output, boxes)
        out = []
        for i, box in enumerate(boxes):
            m = face_measures(original, output, box, None if open_o[i] is None else open_o[i][2])
            ita_o, ita_a = m["ita_original"], m["ita_output"]
            sharp_o, sharp_a = m["sharpness_original"], m["sharpness_output"]
            out.append({
                "female_original": _r(fem_o[i], 3), "female_output": _r(fem_a[i], 3),
                "sex_agrees": bool((fem_o[i] > 0.5) == (fem_a[i] > 0.5)),
                "age_original": _r(age_o[i], 1), "age_output": _r(age_a[i], 1),
                "ita_original": _r(ita_o, 2), "ita_output": _r(ita_a, 2),
                "delta_ita": None if ita_o is None else _r(ita_difference(ita_a, ita_o), 2),
                "ita_band": m["ita_band"],
                "skin_share_original": _r(m["skin_share_original"]), "skin_share_output": _r(m["skin_share_output"]),
                "sharpness_original": _r(sharp_o, 2), "sharpness_output": _r(sharp_a, 2),
                "sharpness_ratio": None if sharp_o is None else _r(sharp_a / max(sharp_o, 1e-6)),
                "eye_original": None if open_o[i] is None else _r(open_o[i][0]),
                "eye_output": None if open_a[i] is None else _r(open_a[i][0]),
                "mouth_original": None if open_o[i] is None else _r(open_o[i][1]),
                "mouth_output": None if open_a[i] is None else _r(open_a[i][1]),
                "skin_delta_e": _r(m["skin_delta_e"], 2),
                "off_colour_original": _r(m["off_colour_original"]), "off_colour_output": _r(m["off_colour_output"]),
            })
        return out


def viewer_summary(faces: list) -> dict:
    """Clip-level numbers of the viewer measures of ``faces`` (``FaceRecord``s)."""
    sex = [f.sex_agrees for f in faces if f.sex_agrees is not None]
    ages = [abs(f.age_output - f.age_original) for f in faces if f.age_original is not None]
    ita_d = [f.delta_ita for f in faces if f.delta_ita is not None]
    delta_e = [f.skin_delta_e for f in faces if f.skin_delta_e is not None]
    shares = [(f.skin_share_original, f.skin_share_output) for f in faces if f.skin_share_original is not None]
    share_in = sum(a for a, _ in shares)
    sharp = [f.sharpness_ratio for f in faces if f.sharpness_ratio is not None]
    off = [(f.off_colour_original, f.off_colour_output) for f in faces if f.off_colour_original is not None]
    people = [f.identity for f in faces]
    eye = following([f.eye_original for f in faces], [f.eye_output for f in faces], people)
    mouth = following([f.mouth_original for f in faces], [f.mouth_output for f in faces], people)
    return {
        "sex_agreement": _r(np.mean(sex)) if sex else None,
        "mean_abs_age_difference": _r(np.mean(ages), 1) if ages else None,
        "mean_abs_delta_ita": _r(np.mean(ita_d), 2) if ita_d else None,
        "ita_within_10": _r(np.mean(np.array(ita_d) <= ITA_CLOSE)) if ita_d else None,
        "ita_band_faces": sum(bool(f.ita_band) for f in faces if f.delta_ita is not None),
        "median_skin_delta_e": _r(np.median(delta_e), 2) if delta_e else None,
        "p90_skin_delta_e": _r(np.percentile(delta_e, 90), 2) if delta_e else None,
        "skin_share_original": _r(share_in / len(shares)) if shares else None,
        "skin_share_ratio": _r(sum(b for _, b in shares) / share_in) if shares and share_in > 0 else None,
        "sharpness_ratio": _r(np.median(sharp)) if sharp else None,
        "off_colour_original": _r(np.mean([o for o, _ in off])) if off else None,
        "off_colour_output": _r(np.mean([a for _, a in off])) if off else None,
        "patchy_faces": _r(np.mean([patchy(o, a) for o, a in off])) if off else None,
        "eye_openness_correlation": _r(eye[0], 3),
        "eye_openness_spread": _r(eye[1], 3),
        "eye_openness_error": _r(eye[2], 3),
        "mouth_openness_correlation": _r(mouth[0], 3),
        "mouth_openness_spread": _r(mouth[1], 3),
        "mouth_openness_error": _r(mouth[2], 3),
        "openness_faces": sum(f.eye_original is not None and f.eye_output is not None for f in faces),
    }
