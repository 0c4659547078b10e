"""Skin tone: a face's complexion in CIELab, and a donor texture toned to a subject's (colour, spread, lips)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MIN_SKIN_B = 6.0  # CIELab b* of about the palest skin under white light (shared clips outside the graded one: 5.7-21)


@dataclass(frozen=True, slots=True)
class SkinTone:
    """Mean and standard deviation of a face's skin in CIELab (L in [0, 100]); ``lips``: the median CIELab
    of their lips (None where no view showed them); ``hair``: how dark their upper lip and chin are against
    their skin (a moustache, a beard)."""

    mean: np.ndarray
    std: np.ndarray
    lips: np.ndarray | None = None
    hair: np.ndarray | None = None

    @property
    def ita(self) -> float:
        """Individual typology angle (degrees) for matching donors to: higher is lighter. A colour cast (a
        graded video's violet, a blue stage light) takes b* below what skin has under white light, and ITA
        past 90°, where every donor is about as far as every other (crowd_1080p: b* -15, ITA 134°, and a
        dark-skinned donor ranked fifth for a pale boy); b* is held at ``MIN_SKIN_B`` at least, so lightness
        decides there."""
        return ita_of(np.array([self.mean[0], self.mean[1], max(float(self.mean[2]), MIN_SKIN_B)]))


def ita_of(lab: np.ndarray) -> float:
    """ITA° (Chardon et al. 1991) of a CIELab colour, ``atan2(L* - 50, b*)``: higher is lighter; a colour
    that is not skin (b* < 0, blue) lands outside ±90°."""
    return float(np.degrees(np.arctan2(lab[0] - 50.0, lab[2])))


def ita_difference(a: float, b: float) -> float:
    """|a - b| of two ITA angles in degrees, the short way round: two blue-lit faces at -170 and 170 degrees
    are 20 apart, not 340."""
    return float(abs((a - b + 180.0) % 360.0 - 180.0))


def toned(texture: np.ndarray, skin: np.ndarray, tone: SkinTone, own_colour: np.ndarray, least: float = 0.4,
          reach: float = 2.5, floor: float = 3.0) -> np.ndarray:
    """``texture`` with its skin's Lab mean moved to ``tone``'s, and its colour variation (a*, b*) narrowed to
    the subject's where the subject's is narrower (down to ``least``): the donor's features and their
    lightness contrast in the subject's complexion. A donor's flushed cheeks and dark sockets keep their
    hue otherwise, and on a pale or colour-graded subject turn into red blotches and green shadows once
    the frame's light is put on (at render time).

    The skin's colour (a*, b*) moves in proportion to each texel's lightness against the skin's: a dark
    beard, brow or nostril keeps its own colour near black instead of taking the whole shift (on a subject
    filmed with a blue cast, a donor's moustache turned a saturated navy: crowd_1080p).

    Where ``own_colour`` (T, T) weighs 1 (the eyes, brows and lips: their colour is their own) a texel keeps its
    colour's offset from the skin's; elsewhere that offset is held, softly, within ``reach`` times the subject's
    own colour spread (at least ``floor``): a donor's red nose tip or chin, photographed in warm light, is no
    colour the subject's face has in footage whose grade leaves every patch of skin one colour (crowd_1080p:
    a* spread 1.3), and showed as red streaks down a turned boy's nose."""
    lab = cv2.cvtColor(np.clip(texture, 0.0, 1.0).astype(np.float32), cv2.COLOR_RGB2LAB)
    own = skin_tone(texture[skin])
    narrow = np.clip(tone.std / np.maximum(own.std, 1e-3), least, 1.0).astype(np.float32)
    lightness = lab[..., :1] - own.mean[0] + tone.mean[0]
    before = np.clip(lab[..., :1] / max(float(own.mean[0]), 1.0), 0.0, 1.0)
    after = np.clip(lightness / max(float(tone.mean[0]), 1.0), 0.0, 1.0)
    offset = (lab[..., 1:] - own.mean[1:] * before) * narrow[1:]
    limit = max(reach * float(np.hypot(*tone.std[1:])), floor)
    size = np.maximum(np.sqrt((offset * offset).sum(-1, keepdims=True)), 1e-6)
    kept = own_colour[..., None]
    offset *= kept + (1.0 - kept) * (limit * np.tanh(size / limit) / size)
    colour = offset + tone.mean[1:] * after
    lab = np.concatenate([lightness, colour], axis=-1).astype(np.float32)
    return np.clip(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB), 0.0, 1.0)


def lips_coloured(texture: np.ndarray, lips: np.ndarray, colour: np.ndarray, feather: float = 1.5) -> np.ndarray:
    """``texture`` with its lips' median colour (a*, b*) moved to ``colour``'s, their lightness and lines the
    donor's: lip colour says little of who someone is, and a donor's pale pink lips turned lavender on a
    warm-lit subject (stage_multi_person_cuts) while a subject's lipstick vanished."""
    lab = cv2.cvtColor(np.clip(texture, 0.0, 1.0).astype(np.float32), cv2.COLOR_RGB2LAB)
    shift = (np.asarray(colour, np.float32) - median_lab(texture[lips]))[1:]
    weight = np.maximum(lips, cv2.GaussianBlur(lips.astype(np.float32), (0, 0), feather))[..., None]
    lab[..., 1:] += weight * shift
    return np.clip(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB), 0.0, 1.0)


def median_lab(rgb: np.ndarray) -> np.ndarray:
    """Median CIELab (L* 0-100) of (..., 3) RGB: float in [0, 1], or uint8."""
    scale = np.float32(1 / 255) if rgb.dtype == np.uint8 else np.float32(1)
    lab = cv2.cvtColor(np.clip(rgb.reshape(1, -1, 3).astype(np.float32) * scale, 0.0, 1.0), cv2.COLOR_RGB2LAB)
    return np.median(lab.reshape(-1, 3), axis=0)


def skin_tone(rgb: np.ndarray) -> SkinTone:
    """Mean and spread in CIELab of (..., 3) float RGB skin in [0, 1]."""
    lab = cv2.cvtColor(np.clip(rgb, 0.0, 1.0).reshape(1, -1, 3).astype(np.float32), cv2.COLOR_RGB2LAB).reshape(-1, 3)
    return SkinTone(lab.mean(0), lab.std(0))
