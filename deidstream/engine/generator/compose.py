"""A surrogate's texture, assembled from donors in UV space and toned to its subject's skin.

A recipe names a base donor (skin, cheeks, forehead, jaw) and the donors of the parts that carry most of a
face's identity (eyes and brows, nose, mouth); the parts are blended into the base across a Laplacian
pyramid, so seams fall between frequencies instead of along an edge. The result is toned to the subject:
its skin's mean and spread in Lab move to the subject's (measured on their best views), so apparent skin
tone is kept while the features are the donors'. The lips take the subject's own colour (lipstick stays,
and a donor's pale pink lips do not turn lavender under a warm stage light), their lines the donor's. A
fourth channel says how much of the texture is drawn: it fades to nothing toward the mesh border (temples,
hairline, jaw), where the subject's own hair and outline stay, and where donors' hair would otherwise
show. A fifth says where the skin is not a feature (1 away from the eyes and brows, nose and lips): there
the render takes half the subject's own relief.

Before toning, the donor's mid-scale relief outside the features (folds, hollows, strands of hair, the
shadows of the photo's own light: detail 4-32 texels across, a 60th to an 8th of the face) is halved in
lightness. The frame gives the render its light, so the donor's would be a second light: dark sockets and a
darker band over the cheeks and nose (talking_d9), grey smudges on a pale cheek (portrait_s32). Skin texture,
the features and their contrast stay the donor's.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from deidstream.config.paths import cache_dir, cached_arrays
from deidstream.engine.generator.donors import DonorBank
from deidstream.engine.generator.lips import LipParting
from deidstream.engine.generator.masks import InteriorContours, texel_mask
from deidstream.engine.generator.tone import SkinTone, lips_coloured, median_lab, skin_tone, toned
from deidstream.engine.generator.uvmap import UVAtlas
from deidstream.geometry.mesh import CanonicalMesh
from deidstream.types import FaceView

TONE_VISIBILITY_PX = 128  # a skin-tone read works out what hides what on a face this wide (a median colour)
HAIR_READING = 1  # names the cached reads of the donors' facial hair: a new way of reading it needs a new number
# MediaPipe landmark indices of each part's region (both eyes with their brows, the nose, the lips).
EYES_AND_BROWS = (
    (70, 63, 105, 66, 107, 55, 193, 245, 128, 121, 120, 119, 118, 117, 111, 35, 124, 46, 53, 52, 65),
    (300, 293, 334, 296, 336, 285, 417, 465, 357, 350, 349, 348, 347, 346, 340, 265, 353, 276, 283, 282, 295),
)
NOSE = ((168, 193, 245, 188, 174, 198, 209, 49, 64, 98, 97, 2, 326, 327, 294, 279, 429, 420, 399, 412, 465, 417),)
MOUTH = ((57, 186, 92, 165, 167, 164, 393, 391, 322, 410, 287, 273, 335, 406, 313, 18, 83, 182, 106, 43),)
PARTS = {"eyes": EYES_AND_BROWS, "nose": NOSE, "mouth": MOUTH}
# the skin a viewer judges tone by: the cheek below each eye
CHEEKS = ((117, 118, 101, 36, 206, 207, 187, 123), (346, 347, 330, 266, 426, 427, 411, 352))
FOREHEAD = (67, 109, 10, 338, 297, 299, 9, 69)
# brows as MediaPipe draws them, each as one loop (upper edge, then lower edge back)
BROWS = ((70, 63, 105, 66, 107, 55, 65, 52, 53, 46), (300, 293, 334, 296, 336, 285, 295, 282, 283, 276))
# where facial hair grows: the upper lip up to the nose (moustache) and the chin below the lip
MOUSTACHE = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 327, 326, 2, 97, 98)
CHIN = (182, 83, 18, 313, 406, 421, 200, 201)
JAWS = ((132, 58, 172, 136, 150, 169, 210, 214, 192, 213, 147), (361, 288, 397, 365, 379, 394, 430, 434, 416, 433, 376))
# the skin the tone is measured and matched on: the cheeks and the middle of the forehead
SKIN = (*CHEEKS, FOREHEAD)
# the skin a render's colour is anchored to in each frame: besides the cheeks and forehead, the chin below
# the lip and each side of the jaw (a donor's baked-in shadow there reads as another complexion)
TONE_ANCHORS = (*SKIN, CHIN, *JAWS)
PREPARED_KEPT = 48  # recipes whose untoned texture a composer remembers (1 MB each at 256 texels)


@dataclass(frozen=True, slots=True)
class Recipe:
    """Which donor gives what: ``base`` the skin and everything not in a part; ``parts`` part → donor."""

    base: int
    parts: tuple[tuple[str, int], ...] = ()

    def donors(self) -> tuple[int, ...]:
        return (self.base, *(d for _, d in self.parts))


class Composer:
    """Textures of recipes on one UV layout: ``texture(recipe, tone)`` → (T, T, 5) float32: RGB, alpha, and
    the weight of the subject's own skin relief."""

    def __init__(self, bank: DonorBank, mesh: CanonicalMesh, *, rim: float = 0.09, feather: float = 0.035,
                 levels: int = 4, hair_band: float = 0.22, forehead: tuple[float, float] = (0.12, 0.14),
                 relief_levels: tuple[int, ...] = (2, 3, 4), relief_kept: float = 0.5) -> None:
        self.bank = bank
        self.relief_levels = relief_levels
        self.relief_kept = relief_kept
        size = bank.albedo.shape[1]
        self.atlas = UVAtlas(mesh.uvs, mesh.triangles, size)
        self.parting = LipParting(mesh.uvs, size)
        self.levels = levels
        uv = mesh.uvs * size
        self.regions = {name: _region(uv, loops, size, feather * size) for name, loops in PARTS.items()}
        self.skin = _region(uv, SKIN, size, 0.0) > 0.5
        self.lips = _lips(uv, size)
        self.hair_regions = [_filled(uv, loop, size) > 0 for loop in (MOUSTACHE, CHIN)]
        self._tone_texels = self.atlas.texels(np.logical_or.reduce([self.skin, self.lips, *self.hair_regions]))
        self._donor_hair: np.ndarray | None = None  # (D, 2), NaN where unread
        self._prepared_cache: OrderedDict[Recipe, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        inside = cv2.distanceTransform(self.atlas.mask.astype(np.uint8), cv2.DIST_L2, 5)
        ramp = np.clip(inside / max(rim * size, 1.0), 0.0, 1.0)
        # the upper forehead is the subject's own too: donors' fringes and hairlines lie there, and it
        # carries little of a face's identity
        top = np.clip((np.arange(size, dtype=np.float32)[:, None] / size - forehead[0]) / forehead[1], 0.0, 1.0)
        ramp = np.minimum(ramp, np.broadcast_to(top, ramp.shape))
        self.alpha = (ramp * ramp * (3.0 - 2.0 * ramp)).astype(np.float32)
        band = np.clip(inside / max(hair_band * size, 1.0), 0.0, 1.0)
        self._inner = (band * band * (3.0 - 2.0 * band)).astype(np.float32)
        self._features = np.clip(sum(self.regions.values()), 0.0, 1.0).astype(np.float32)
        self._own_colour = _own_colour(uv, size, self.lips)
        self._own_skin = np.clip(1.0 - 1.5 * self._features, 0.0, 1.0).astype(np.float32)
        self._relief_area = cv2.GaussianBlur((1.0 - self._features) * (self.atlas.mask > 0), (0, 0),
                                             4.0).astype(np.float32)
        # where a bright, grey speck is no feature: everywhere on the face but the eyes and the mouth
        self._speck_area = ((self.atlas.mask > 0) & (np.clip(self.regions["eyes"] + self.regions["mouth"], 0.0, 1.0)
                                                     < 0.2)).astype(np.uint8)

    def texture(self, recipe: Recipe, tone: SkinTone | None = None) -> np.ndarray:
        base, alpha = self._prepared(recipe)
        if tone is not None:
            base = toned(base, self.skin, tone, self._own_colour)
            if tone.lips is not None:
                base = lips_coloured(base, self.lips, tone.lips)
        return np.dstack([base, alpha, self._own_skin]).astype(np.float32)

    def _prepared(self, recipe: Recipe) -> tuple[np.ndarray, np.ndarray]:
        """The recipe's colours before toning and its drawn weight: the same for every subject, so the last
        ``PREPARED_KEPT`` are remembered (a lock judges a donor for each person of a run; live relocks)."""
        if (kept := self._prepared_cache.get(recipe)) is not None:
            self._prepared_cache.move_to_end(recipe)
            return kept
        base = _without_specks(self.bank.texture(recipe.base), self._speck_area)
        alpha = self.alpha * self._not_hair(base)
        for part, donor in recipe.parts:
            piece = _match_mean(self.bank.texture(donor), base, self.regions[part])
            base = _pyramid_blend(piece, base, self.regions[part], self.levels)
        if self.relief_kept < 1.0:
            base = _relief_scaled(base, self._relief_area, self.relief_levels, self.relief_kept)
        base.flags.writeable = False  # shared by every texture made from it
        alpha.flags.writeable = False
        self._prepared_cache[recipe] = (base, alpha)
        if len(self._prepared_cache) > PREPARED_KEPT:
            self._prepared_cache.popitem(last=False)
        return base, alpha

    def _not_hair(self, texture: np.ndarray, spread: float = 2.5) -> np.ndarray:
        """(T, T) weight, near 0 where a texel outside the features is far from the donor's own skin colour
        (hair over the forehead or temples, background at the border): the subject's own shows there."""
        lab = cv2.cvtColor(texture, cv2.COLOR_RGB2LAB)
        skin = lab[self.skin]
        z = (lab - skin.mean(0)) / np.maximum(skin.std(0), np.array([4.0, 2.0, 2.0], np.float32))
        far = np.sqrt((z * z).sum(-1)) / spread
        weight = np.exp(-np.maximum(far - 1.0, 0.0) ** 2 * 4.0).astype(np.float32)
        weight = np.maximum(weight, self._inner)  # hair lies in the outer band only
        weight = np.maximum(weight, self._features)
        return cv2.GaussianBlur(cv2.erode(weight, np.ones((5, 5), np.uint8)), (0, 0), 3.0)

    def hair(self, texture: np.ndarray, seen: np.ndarray | None = None) -> np.ndarray | None:
        """(2,) how much darker (L*, negative) the upper lip and the chin are than the cheeks and forehead in a
        UV ``texture``, over the texels ``seen``: a moustache or a beard reads -20 to -45, shaved skin -4 to -14.
        None where a region shows too few texels."""
        masks = [m if seen is None else m & seen for m in (self.skin, *self.hair_regions)]
        if any(np.count_nonzero(m) <= 20 for m in masks):
            return None
        # only the texels read go to Lab: the whole texture took 30 ms, three times per lock
        read = np.logical_or.reduce(masks)
        pixels = np.clip(texture[read], 0.0, 1.0).astype(np.float32)[None]  # one row: no thread pool for 1-px rows
        lightness = np.zeros(read.shape, np.float32)
        lightness[read] = cv2.cvtColor(pixels, cv2.COLOR_RGB2LAB)[0, :, 0]
        medians = [np.median(lightness[m]) for m in masks]
        return np.array(medians[1:], np.float32) - np.float32(medians[0])

    def donor_hair(self, donor: int) -> np.ndarray | None:
        """``hair`` of a donor's texture. Every lock orders all donors by it: all are read at once and, for a
        bank loaded from a file, kept in the user's cache (reading all 126 takes 0.57 s: a process's first lock of
        talking_head_1's man takes 0.50 s reading them, 0.31 s with them cached)."""
        if self._donor_hair is None:
            self._donor_hair = self._all_donor_hair()
        found = self._donor_hair[donor]
        return None if np.isnan(found).any() else found.copy()

    def _all_donor_hair(self) -> np.ndarray:
        def read() -> dict[str, np.ndarray]:
            return {"hair": np.array([np.full(2, np.nan, np.float32) if (h := self.hair(self.bank.texture(d))) is None
                                      else h for d in range(len(self.bank))], np.float32).reshape(-1, 2)}

        source = self.bank.source
        if source is None:
            return read()["hair"]
        stat = source.stat()
        regions = hashlib.sha256(np.packbits(np.stack([self.skin, *self.hair_regions])).tobytes()).hexdigest()
        name = f"{source.stem}-hair{HAIR_READING}-{stat.st_size}-{stat.st_mtime_ns}-{regions[:12]}.npz"
        saved = cache_dir() / "derived" / name
        return cached_arrays(saved, read, "the donors' facial hair",
                             lambda found: found.get("hair", np.zeros(0)).shape == (len(self.bank), 2))["hair"]

    def tone_of(self, views: list[FaceView], darker: float = 5.0) -> SkinTone | None:
        """The subject's skin tone over their views (texels each view sees well), None without any; how dark
        their upper lip and chin are (``hair``); the colour of their lips where those read as lips: at least
        as red as their skin (not a grey microphone) and ``darker`` L* darker (not a hand). A stage light
        leaves lips little redder than skin (1.3 a*)."""
        samples, lips, hair = [], [], []
        for view in views:
            unwrapped = self.atlas.unwrap(view.image, view.points, self._tone_texels, TONE_VISIBILITY_PX)
            visible = unwrapped.weight > 0.5
            if (self.skin & visible).sum() > 20:
                samples.append(unwrapped.texture[self.skin & visible])
            if (self.lips & visible).sum() > 20:
                lips.append(unwrapped.texture[self.lips & visible])
            if (dark := self.hair(unwrapped.texture, visible)) is not None:
                hair.append(dark)
        if not samples:
            return None
        tone = skin_tone(np.concatenate(samples))
        colour = median_lab(np.concatenate(lips)) if lips else None
        if colour is None or colour[1] < tone.mean[1] or colour[0] > tone.mean[0] - darker:
            colour = None
        return SkinTone(tone.mean, tone.std, colour, np.median(hair, axis=0) if hair else None)


def _filled(uv: np.ndarray, loop: tuple[int, ...] | np.ndarray, size: int) -> np.ndarray:
    """(T, T) uint8, 1 inside the polygon of ``loop``'s landmarks on the UV layout."""
    return texel_mask(uv[list(loop)], size)


def _own_colour(uv: np.ndarray, size: int, lips: np.ndarray, margin: int = 2) -> np.ndarray:
    """(T, T) float32 in [0, 1]: the texels whose colour is their own when a texture is toned (``toned``): the
    eyes (their lids' lines, lashes, irises), the brows and the lips, ``margin`` texels out, feathered. Not the
    skin around the eyes: a donor's warm eye sockets showed as red beside a turned boy's nose (crowd_1080p)."""
    contours = InteriorContours.from_mediapipe()
    mask = lips.astype(np.uint8)
    for loop in (contours.left_eye, contours.right_eye, *BROWS):
        mask |= _filled(uv, loop, size)
    grown = cv2.dilate(mask, np.ones((2 * margin + 1,) * 2, np.uint8)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(grown, (0, 0), margin * 0.75), 0.0, 1.0)


def _lips(uv: np.ndarray, size: int) -> np.ndarray:
    """(T, T) bool: the texels between the outer and the inner lip line, a texel in from both."""
    contours, ring = InteriorContours.from_mediapipe(), np.ones((3, 3), np.uint8)
    outer, inner = _filled(uv, contours.outer_lips, size), _filled(uv, contours.inner_lips, size)
    return (cv2.erode(outer, ring) > 0) & (cv2.dilate(inner, ring) == 0)


def _without_specks(texture: np.ndarray, area: np.ndarray, lift: float = 10.0, grey: float = 0.7) -> np.ndarray:
    """``texture`` with bright grey specks painted over from the skin around them: an earring, a strand of
    the photo's background at the cheek, a specular glint. Each is brighter than the skin around it by
    ``lift`` L* and has under ``grey`` of its chroma: no skin colour in any light, and a white blob on
    the surrogate's cheek wherever it falls (the frame's own glints come with its light)."""
    u8 = np.clip(texture * 255.0 + 0.5, 0, 255).astype(np.uint8)
    local = cv2.GaussianBlur(cv2.medianBlur(u8, 21).astype(np.float32) * np.float32(1 / 255), (0, 0), 4.0)
    lab, around = cv2.cvtColor(texture, cv2.COLOR_RGB2LAB), cv2.cvtColor(local, cv2.COLOR_RGB2LAB)
    chroma, chroma_around = np.hypot(lab[..., 1], lab[..., 2]), np.hypot(around[..., 1], around[..., 2])
    specks = ((lab[..., 0] - around[..., 0] > lift) & (chroma < grey * chroma_around)).astype(np.uint8) & area
    if not specks.any():
        return texture
    specks = cv2.dilate(specks, np.ones((5, 5), np.uint8))
    return cv2.inpaint(u8, specks, 4, cv2.INPAINT_TELEA).astype(np.float32) * np.float32(1 / 255)


def _region(uv: np.ndarray, loops: tuple[tuple[int, ...], ...], size: int, feather: float) -> np.ndarray:
    """(T, T) float32 in [0, 1]: the filled hulls of ``loops``, feathered by ``feather`` texels."""
    mask = np.zeros((size, size), np.uint8)
    for loop in loops:
        hull = cv2.convexHull(np.round(uv[list(loop)]).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 255)
    soft = mask.astype(np.float32) / 255.0
    if feather > 0:
        soft = cv2.GaussianBlur(soft, (0, 0), feather)
        soft = np.clip(soft * 2.0, 0.0, 1.0)  # full inside the hull, fading outside it
    return soft


def _match_mean(piece: np.ndarray, base: np.ndarray, region: np.ndarray) -> np.ndarray:
    """``piece`` with its mean colour under ``region`` moved to ``base``'s there: a part keeps its
    shapes and lines, the base's complexion."""
    w = region[..., None]
    shift = (base * w).sum((0, 1)) / max(float(w.sum()), 1e-6) - (piece * w).sum((0, 1)) / max(float(w.sum()), 1e-6)
    return np.clip(piece + shift, 0.0, 1.0)


def _pyramid_blend(top: np.ndarray, bottom: np.ndarray, weight: np.ndarray, levels: int) -> np.ndarray:
    """Laplacian-pyramid blend of ``top`` over ``bottom`` by ``weight`` (each band by a smoothed weight)."""
    gw = [weight.astype(np.float32)]
    for _ in range(levels):
        gw.append(cv2.pyrDown(gw[-1]))
    out = None
    lt, lb = _laplacian(top, levels), _laplacian(bottom, levels)
    for level in range(levels, -1, -1):
        w = gw[level][..., None]
        band = lt[level] * w + lb[level] * (1.0 - w)
        out = band if out is None else cv2.pyrUp(out, dstsize=band.shape[1::-1]) + band
    return np.clip(out, 0.0, 1.0)


def _relief_scaled(texture: np.ndarray, area: np.ndarray, levels: tuple[int, ...], kept: float) -> np.ndarray:
    """``texture`` with the lightness detail of Laplacian ``levels`` scaled by ``kept`` where ``area`` is 1."""
    lab = cv2.cvtColor(np.clip(texture, 0.0, 1.0).astype(np.float32), cv2.COLOR_RGB2LAB)
    bands = _laplacian(lab[..., 0], max(levels) + 1)
    out = bands[-1]
    for level in range(len(bands) - 2, -1, -1):
        band = bands[level]
        if level in levels:
            weight = cv2.resize(area, band.shape[1::-1], interpolation=cv2.INTER_AREA)
            band = band * (1.0 - (1.0 - kept) * weight)
        out = cv2.pyrUp(out, dstsize=band.shape[1::-1]) + band
    lab[..., 0] = out
    return np.clip(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB), 0.0, 1.0)


def _laplacian(image: np.ndarray, levels: int) -> list[np.ndarray]:
    gauss = [image.astype(np.float32)]
    for _ in range(levels):
        gauss.append(cv2.pyrDown(gauss[-1]))
    bands = [g - cv2.pyrUp(gauss[i + 1], dstsize=g.shape[1::-1]) for i, g in enumerate(gauss[:-1])]
    return bands + [gauss[-1]]


@cache
def default_composer() -> Composer:
    from deidstream.engine.generator.donors import default_donors
    from deidstream.geometry.mesh import default_mesh

    return Composer(default_donors(), default_mesh())
