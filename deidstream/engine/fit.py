"""How well a surrogate keeps its subject's look: the lock's choice and M_c's training share one measure.

A point of fit is what changing the apparent sex costs. Age counts twice: as E_id's attribute model reads
the render, and as the donor's age band was labelled (the model's age is rough: alone it let teens stand in
for people of forty). Skin counts too: the donor whose skin is nearest the subject's needs the least colour
shift, and a large one leaves the donor's lips, creases and stubble in another complexion's colours; and so
does the skin tone of the render's cheeks and nose in the person's own views (ITA°: the toning matches the
skin's mean, but a donor's relief, nose, shadows and stubble move the tone a viewer reads). So does facial
hair (how dark the upper lip and chin are against the skin): a moustache the subject does not have, or none
where they have one, changes how they look.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deidstream.config import LockConfig


@dataclass(frozen=True, slots=True)
class Subject:
    """What the lock reads of a person: P(female), apparent age in years, age band, skin ITA° and facial
    hair (upper lip and chin against the skin), the last two None where no view showed them."""

    female: float
    age: float
    band: int
    ita: float | None = None
    hair: np.ndarray | None = None


def attribute_fit(config: LockConfig, subject: Subject, out_female: np.ndarray, out_age: np.ndarray,
                  donor_band: np.ndarray, donor_ita: np.ndarray, tone_off: np.ndarray,
                  donor_hair: np.ndarray | None) -> np.ndarray:
    """Fit of candidates (arrays broadcast together; ``donor_hair`` (..., 2), NaN where unread): 1 for a
    render of the subject's apparent sex, age and tone; each mismatch costs its share of a point."""
    cfg = config
    donor_band = np.asarray(donor_band, np.float64)  # an unsigned band index less the subject's would wrap
    fit = 1.0 - np.abs(out_female - subject.female) - np.abs(out_age - subject.age) / 40.0
    fit = fit - np.abs(donor_band - subject.band) * cfg.band_weight
    if subject.ita is not None:
        fit = fit - np.maximum(np.abs(donor_ita - subject.ita) - cfg.skin_tolerance, 0.0) / cfg.skin_mismatch
    fit = fit - np.maximum(tone_off - cfg.tone_tolerance, 0.0) / cfg.tone_mismatch
    if subject.hair is not None and donor_hair is not None:
        off = np.maximum(np.abs(donor_hair - subject.hair) - cfg.hair_tolerance, 0.0).sum(axis=-1)
        fit = fit - np.nan_to_num(off, nan=0.0) / cfg.hair_mismatch
    return np.asarray(fit, np.float64)


def mapped_score(config: LockConfig, fit: np.ndarray, predicted: np.ndarray, keyed: np.ndarray) -> np.ndarray:
    """How M_c's lock ranks donors from predictions alone: the search's trade-off (fit, a little margin over τ) on
    the predicted distance, a donor predicted under ``tau + mapped_margin`` pushed down by ``mapped_fail`` per unit
    short (it would likely fail verification), and the key's affinity for the person (``keyed``, unit variance per
    donor) weighing ``key_weight``: another key turns near-ties another way. A heavier key weighs against keeping
    the person's look; admitting only the half of the donors the key favours (as the search's key decides which it
    judges) let a move as small as two looks at one person change their first donor in half the cases."""
    cfg = config
    short = np.maximum(cfg.tau + cfg.mapped_margin - predicted, 0.0)
    return fit + np.minimum(predicted - cfg.tau, 0.2) - cfg.mapped_fail * short + cfg.key_weight * keyed
